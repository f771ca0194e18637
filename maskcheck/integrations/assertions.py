"""Assertions for users' own tests: padding must not change what a model computes.

    import maskcheck

    def test_tagger_ignores_padding():
        model = build_tagger()
        x = np.array([[5, 7, 9, 0, 0], [3, 0, 0, 0, 0]])        # post-padded with 0
        maskcheck.assert_padding_invariant(model, x, lengths=[3, 1])

Both assertions run the dynamic engine (`maskcheck.probe`): they perturb only
the padded region of `x` (or of `y`) while holding the mask fixed and raise
`PaddingLeakError`, an `AssertionError`, when a valid output (or the loss)
changes. The message names the layer where the leak starts, the sample, the
position, the padding side and the size of the change.

Importing this module loads only the standard library and `maskcheck.finding`;
Keras loads when an assertion runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PaddingLeakError", "assert_padding_invariant", "assert_loss_ignores_padding"]


class PaddingLeakError(AssertionError):
    """Padding changed what a model computes for real positions, or its loss.

    Attributes:
        leak: the `maskcheck.probe.Leak` found (layer, layer_class, path,
            sample, position, padding, max_abs_diff, output, kind).
    """

    def __init__(self, message: str, leak: Any = None) -> None:
        super().__init__(message)
        self.leak = leak


# Tracebacks and pytest's failure lines name it by its public path, as they always have
# (``E   maskcheck.assertions.PaddingLeakError: ...``); that path imports this module.
PaddingLeakError.__module__ = "maskcheck.assertions"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


#: What changed, by the Leak's kind.
_WHAT = {
    "outputs": "valid outputs change when only padded values change (mask held fixed)",
    "loss": "the loss changes when only padded labels or padded inputs change",
    "gradients": "the gradients of the trainable weights change when only padded labels or inputs change",
    "loss-raises": "the compiled loss raises on the output's mask (and computes without it): "
                   "the model cannot train",
}


def format_leak(leak: Any, *, model_name: str, atol: float, rtol: float) -> str:
    """The few lines of a PaddingLeakError: what changed, where it starts, by how much."""
    layer = getattr(leak, "layer", None)
    layer_class = getattr(leak, "layer_class", None)
    path = tuple(getattr(leak, "path", ()) or ())
    kind = getattr(leak, "kind", "outputs")
    if layer:
        where = f"layer {layer!r}" + (f" ({layer_class})" if layer_class else "")
        if len(path) > 1:
            where += f", path {'/'.join(path)}"
    else:
        where = "no single layer (the model as a whole)"
    position = getattr(leak, "position", None)
    at = f"sample {getattr(leak, 'sample', '?')}"
    if position is not None and position >= 0:
        at += f", position {position}"
    output = getattr(leak, "output", None)
    if output:
        at += f" of output {output!r}"
    padding = getattr(leak, "padding", None)
    if padding:
        at += f", {padding}-padding"
    return "\n".join([
        f"model {model_name!r}: {_WHAT.get(kind, kind + ' change when only padding changes')}",
        f"  leak starts at: {where}" if kind == "outputs" else f"  reaches loss:   {where}",
        f"  largest change: {at}" if kind == "outputs" else f"  padded at:      {at}",
        f"  size of change: max |diff| = {_fmt(getattr(leak, 'max_abs_diff', '?'))} "
        f"(allowed: atol {_fmt(atol)} + rtol {_fmt(rtol)} * |reference|)",
        "  run maskcheck.check(model), or `maskcheck` on the saved model, for the cause and a fix",
    ])


def assert_padding_invariant(model: Any, x: Any, mask: Any = None, lengths: Any = None,
                             padding: str = "post", training: bool = False, *,
                             atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0,
                             device: str = "auto") -> None:
    """Assert that changing padded values, mask held fixed, leaves valid outputs unchanged.

    Args:
        model: a Keras model (Functional, Sequential or subclassed).
        x: one padded batch, as the model takes it (array, list or dict).
        mask: boolean (batch, time) array, True at real positions. Default: derived
            from `lengths`, else from the model (pad id 0 under `mask_zero`, `Masking`).
        lengths: real length of each sample, as an alternative to `mask`.
        padding: where `x` is padded: "post" (at the end) or "pre" (at the start).
        training: run the model in training mode (batch statistics, dropout off).
        atol, rtol: tolerances of the comparison of valid outputs.
        seed: seed of the perturbation; results are deterministic for a seed.
        device: where the probe runs: "auto" (GPU if TensorFlow sees one), "cpu", "gpu".

    Raises:
        PaddingLeakError: naming the layer where the leak starts, the sample, the
            position, the padding side and the size of the change.
        maskcheck.probe.ProbeError: (a ValueError) the model cannot be probed:
            no mask can be found, its forward pass raises, ...
        maskcheck.UnsupportedBackendError: Keras runs on another backend than TensorFlow.

    Example:
        >>> maskcheck.assert_padding_invariant(model, x, lengths=[3, 1])
    """
    __tracebackhide__ = True
    from maskcheck.backends import require_tensorflow
    from maskcheck.probe import find_leak

    require_tensorflow(what="maskcheck.assert_padding_invariant")

    leak = find_leak(model, x, mask=mask, lengths=lengths, padding=padding, training=training,
                     atol=atol, rtol=rtol, seed=seed, device=device)
    if leak is not None:
        raise PaddingLeakError(format_leak(
            leak, model_name=getattr(model, "name", type(model).__name__),
            atol=atol, rtol=rtol), leak)


def assert_loss_ignores_padding(model: Any, x: Any, y: Any, mask: Any = None, lengths: Any = None,
                                padding: str = "post", *, atol: float = 1e-5, rtol: float = 1e-4,
                                seed: int = 0, device: str = "auto") -> None:
    """Assert that the compiled loss ignores padded labels and padded inputs.

    Args:
        model: a compiled Keras model.
        x, y: one padded batch of inputs and labels.
        mask, lengths, padding: which positions are padding, as in
            `assert_padding_invariant`.
        atol, rtol: tolerances of the loss comparison.
        seed: seed of the perturbation.
        device: where the probe runs, as in `assert_padding_invariant`.

    Raises:
        PaddingLeakError: naming where padding reaches the loss, the sample, the
            position, the padding side and the size of the change.
        maskcheck.UnsupportedBackendError: Keras runs on another backend than TensorFlow.
    """
    __tracebackhide__ = True
    from maskcheck.backends import require_tensorflow
    from maskcheck.probe import find_loss_leak

    require_tensorflow(what="maskcheck.assert_loss_ignores_padding")

    leak = find_loss_leak(model, x, y, mask=mask, lengths=lengths, padding=padding,
                          atol=atol, rtol=rtol, seed=seed, device=device)
    if leak is not None:
        raise PaddingLeakError(format_leak(
            leak, model_name=getattr(model, "name", type(model).__name__),
            atol=atol, rtol=rtol), leak)

