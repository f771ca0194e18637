"""Loss and gradient probes: does padding change what the model learns?

Compares the compiled loss (`model.compute_loss`, so a custom `compute_loss`
or a custom `Loss.__call__` is exercised exactly as `fit` would) and the
gradients of the trainable weights between an unperturbed batch and the
same batch with (a) the labels at padded positions changed, per output, and
(b) the inputs at padded positions changed (holding the mask fixed, as in
`probe.find_leak`). Everything runs in inference mode so batch statistics
(MC302's business) do not blur the comparison; any state the loss touches
(metric trackers) is restored exactly afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskcheck.probe import (Leak, ProbeError, Prober, Rows, _expand, _one_line, _Prepared,
                             output_names, perturb_raw, round_sig, stack_draws, _quiet_tf)


@dataclass(frozen=True)
class LossResult:
    """A loss leak: the Leak, what changed ("labels"/"inputs") and whether the output carried a mask."""

    leak: Leak
    what: str
    output_masked: bool
    loss_diff: float
    source: str = "compute_loss"  # or "train_step"


def loss_tolerance(loss: float, atol: float, rtol: float) -> float:
    """How far a loss may move and still count as unchanged.

    A loss that applies the mask multiplies padded positions by exactly zero,
    so it does not move at all; an untrained model's loss, on the other hand,
    moves only a little when padded labels change (its predictions are near
    uniform). Hence a tighter bound than for outputs: at most 1e-7 absolute
    and 1e-6 relative (looser only where the user asks for tighter outputs).
    """
    return min(atol, 1e-7) + min(rtol, 1e-6) * abs(loss)


def has_loss(model: Any) -> bool:
    """The model is compiled with a loss, or overrides compute_loss."""
    import keras

    overrides = type(model).compute_loss is not keras.Model.compute_loss
    return overrides or getattr(model, "_compile_loss", None) is not None


def _perturb_labels(y: Any, mask: Any, seed: int, n_classes: int | None) -> Any:
    import numpy as np

    rng = np.random.default_rng([seed, 23])
    if y.ndim < mask.ndim or tuple(y.shape[:mask.ndim]) != tuple(mask.shape):
        return y
    pad = ~_expand(mask, y.ndim)
    if np.issubdtype(y.dtype, np.integer):
        high = max(int(n_classes or 0), int(y.max()) + 1, 2)
        repl = (y + rng.integers(1, high, size=y.shape)) % high
    elif y.ndim > mask.ndim and y.shape[-1] > 1:
        repl = np.roll(y, 1, axis=-1)
    else:
        repl = y + rng.standard_normal(y.shape).astype(y.dtype)
    return np.where(pad, repl.astype(y.dtype), y)


class LossProber:
    """Loss and gradients in one compiled function, with padding hooks."""

    def __init__(self, model: Any, prober: Prober) -> None:
        self.model = model
        self.prober = prober
        self._fn: Any = None
        self.output_masked: list[bool] = []

    def _compiled(self) -> Any:
        if self._fn is not None:
            return self._fn
        import keras
        import tensorflow as tf

        model, prober = self.model, self.prober

        def loss_and_grads(x: Any, y: Any, mask: Any, scale: Any, shuffle: Any, draw: Any) -> Any:
            prober._hook_args = {"mask": mask, "scale": scale, "shuffle": shuffle, "draw": draw}
            prober.tracer.start_hooks()
            try:
                with tf.GradientTape() as tape:
                    y_pred = model(x, training=False)
                    self.output_masked = [getattr(t, "_keras_mask", None) is not None
                                          for t in keras.tree.flatten(y_pred)]
                    try:
                        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=None,
                                                  training=False)
                    except TypeError:
                        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=None)
            finally:
                prober.tracer.stop()
                prober._hook_args = {}
            variables = model.trainable_variables
            grads = tape.gradient(loss, variables)
            grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                     for g, v in zip(grads, variables)]
            return loss, grads

        self._fn = tf.function(loss_and_grads, autograph=False)
        return self._fn

    def run(self, x: Any, y: Any, rows: Rows, hooks: bool) -> tuple[float, list[Any]]:
        import numpy as np
        import tensorflow as tf

        fn = self._compiled()
        state = [(v, v.numpy()) for v in _state_variables(self.model)]
        draw = rows.draw if hooks else np.zeros_like(rows.draw)
        try:
            with self.prober.tracer, tf.device(self.prober.device), _quiet_tf():
                loss, grads = fn(x, y, tf.constant(rows.mask), tf.constant(rows.scale),
                                 tf.constant(rows.shuffle), tf.constant(draw))
        except Exception as exc:
            raise ProbeError(f"computing the loss raises: {_one_line(exc)}") from None
        finally:
            for variable, value in state:
                variable.assign(value)
        return float(np.asarray(loss)), [np.asarray(g) for g in grads]


def _state_variables(model: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    for v in list(model.variables) + list(getattr(model, "metrics_variables", []) or []):
        seen.setdefault(id(v), v)
    return list(seen.values())


def _grad_diff(new: list[Any], ref: list[Any], atol: float, rtol: float) -> float:
    import numpy as np

    worst = 0.0
    for g, r in zip(new, ref):
        if g.shape != r.shape or g.size == 0:
            continue
        d = np.abs(g.astype(np.float64) - r.astype(np.float64))
        tol = atol + rtol * float(np.max(np.abs(r)))
        if not np.all(np.isfinite(d)):
            return float("inf")
        if float(d.max()) > tol:
            worst = max(worst, float(d.max()))
    return worst


def loss_leak(model: Any, prep: _Prepared, y: Any, *, padding: str, atol: float, rtol: float,
              seed: int, device: str = "auto", prober: Prober | None = None) -> LossResult | None:
    """The first loss leak found on the batch in `prep` with labels `y`, or None."""
    import keras
    import numpy as np

    if not has_loss(model):
        raise ProbeError(f"model {model.name!r} has no loss to probe: compile it with a loss "
                         "(or override compute_loss)")
    if prober is None:
        prober = Prober(model, device, seed)
        prober.set_generators(prep.generators)
    lprober = LossProber(model, prober)
    b = prep.mask.shape[0]
    keep = prep.mask.reshape(b, -1).any(axis=1)  # samples with a valid position
    if not keep.any():
        return None
    idx = np.nonzero(keep)[0]
    mask = prep.mask[idx]
    flat_x = [a[idx] for a in prep.flat]
    y_flat = [np.asarray(a)[idx] for a in keras.tree.flatten(y)]
    pack_y = (lambda flat: keras.tree.pack_sequence_as(y, flat))
    base_rows = stack_draws(mask, [padding] * len(idx), draws=())
    x_base = prep.pack(flat_x)
    loss0, grads0 = lprober.run(x_base, pack_y(y_flat), base_rows, hooks=False)
    names = output_names(model, len(y_flat))
    masked = lprober.output_masked or [False] * len(y_flat)
    tol = loss_tolerance(loss0, atol, rtol)
    pad_rows = np.nonzero(~mask.reshape(len(idx), -1).all(axis=1))[0]
    sample = int(idx[pad_rows[0]]) if len(pad_rows) else 0
    position = _first_pad(mask[pad_rows[0]]) if len(pad_rows) else -1

    def leak(kind: str, diff: float, output: str | None, layer: str | None, cls: str | None,
             path: tuple[str, ...]) -> Leak:
        return Leak(layer=layer, layer_class=cls, path=path, sample=sample, position=position,
                    padding=padding, max_abs_diff=round_sig(diff), output=output, kind=kind)

    # (a) padded labels, one output at a time
    for j, name in enumerate(names):
        if j >= len(y_flat):
            break
        n_classes = _n_classes(model, j)
        changed = list(y_flat)
        changed[j] = _perturb_labels(y_flat[j], mask, seed, n_classes)
        if np.array_equal(changed[j], y_flat[j]):
            continue
        loss1, grads1 = lprober.run(x_base, pack_y(changed), base_rows, hooks=False)
        layer, cls, path = _output_layer(model, j, name)
        if not np.isfinite(loss1) or abs(loss1 - loss0) > tol:
            return LossResult(leak("loss", abs(loss1 - loss0), name, layer, cls, path), "labels",
                              bool(masked[j]) if j < len(masked) else False, abs(loss1 - loss0))
        gdiff = _grad_diff(grads1, grads0, atol, rtol)
        if gdiff > 0:
            return LossResult(leak("gradients", gdiff, name, layer, cls, path), "labels",
                              bool(masked[j]) if j < len(masked) else False, abs(loss1 - loss0))
    # (b) padded inputs, holding the mask fixed
    rows = stack_draws(mask, [padding] * len(idx))
    n = len(idx)
    for draw in range(1, rows.n // n):
        sel = np.arange(draw * n, (draw + 1) * n)
        sub = Rows(rows.mask[sel], np.arange(n), rows.sample[sel], [padding] * n, rows.draw[sel],
                   rows.scale[sel], rows.shuffle[sel], rows.lengths[sel])
        xs = []
        for spec, array in zip(prep.specs, flat_x):
            if spec.role == "data" and spec.generator is None:
                array = perturb_raw(array, spec, sub, seed + draw)
            xs.append(array)
        loss1, grads1 = lprober.run(prep.pack(xs), pack_y(y_flat), sub, hooks=True)
        gdiff = _grad_diff(grads1, grads0, atol, rtol)
        ldiff = abs(loss1 - loss0) if np.isfinite(loss1) else float("inf")
        if ldiff > tol or gdiff > 0:
            kind = "loss" if ldiff > tol else "gradients"
            name = names[0] if names else None
            layer, cls, path = _output_layer(model, 0, name)
            return LossResult(leak(kind, ldiff if kind == "loss" else gdiff, name, layer, cls, path),
                              "inputs", bool(masked[0]) if masked else False, ldiff)
    return None


def _first_pad(mask_row: Any) -> int:
    import numpy as np

    flat = mask_row.reshape(mask_row.shape[0], -1).all(axis=1) if mask_row.ndim > 1 else mask_row
    pads = np.nonzero(~flat)[0]
    return int(pads[0]) if len(pads) else -1


def _n_classes(model: Any, j: int) -> int | None:
    outputs = getattr(model, "outputs", None)
    try:
        shape = outputs[j].shape if outputs else None
    except (IndexError, TypeError):
        shape = None
    if shape and shape[-1]:
        return int(shape[-1])
    return None


def _output_layer(model: Any, j: int, name: str | None) -> tuple[str | None, str | None, tuple[str, ...]]:
    """The layer producing output j: (name, class name, path)."""
    outputs = getattr(model, "outputs", None)
    try:
        op = outputs[j]._keras_history.operation if outputs else None
    except (AttributeError, IndexError, TypeError, ValueError):
        op = None
    if op is not None:
        return op.name, type(op).__name__, (model.name, op.name)
    return name, type(model).__name__, (model.name,)


def overrides_train_step(model: Any) -> bool:
    """The model's class (not Keras) defines train_step."""
    for cls in type(model).__mro__:
        if "train_step" in cls.__dict__:
            return not cls.__module__.startswith("keras.")
    return False


def train_step_leak(model: Any, prep: _Prepared, y: Any, *, padding: str, atol: float, rtol: float,
                    seed: int, prober: Prober) -> LossResult | None:
    """A custom train_step whose reported loss changes when only padded labels change.

    Runs `model.train_step` eagerly twice (labels as given, then with padded
    labels changed), restoring every weight, optimizer slot and metric
    between and after the runs; random layers are bypassed.
    """
    import keras
    import numpy as np

    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not overrides_train_step(model):
        return None
    if not getattr(optimizer, "built", True):
        optimizer.build(model.trainable_variables)
    b = prep.mask.shape[0]
    keep = np.nonzero(prep.mask.reshape(b, -1).any(axis=1))[0]
    mask = prep.mask[keep]
    x = prep.pack([a[keep] for a in prep.flat])
    y_flat = [np.asarray(a)[keep] for a in keras.tree.flatten(y)]
    changed = [_perturb_labels(a, mask, seed, None) for a in y_flat]
    if all(np.array_equal(a, c) for a, c in zip(y_flat, changed)):
        return None
    state = {id(v): (v, v.numpy()) for v in
             list(_state_variables(model)) + list(getattr(optimizer, "variables", []))}

    def step(labels: list[Any]) -> float:
        try:
            with prober.tracer:
                prober.tracer.start_hooks()
                try:
                    logs = model.train_step((x, keras.tree.pack_sequence_as(y, labels)))
                finally:
                    prober.tracer.stop()
        except Exception as exc:  # the user's train_step may raise anything
            raise ProbeError(f"train_step raises: {_one_line(exc)}") from None
        finally:
            for variable, value in state.values():
                variable.assign(value)
        loss = logs.get("loss") if isinstance(logs, dict) else None
        if loss is None:
            raise ProbeError("train_step returns no 'loss' to compare")
        return float(np.asarray(loss))

    loss0, loss1 = step(y_flat), step(changed)
    diff = abs(loss1 - loss0) if np.isfinite(loss1) else float("inf")
    if diff <= loss_tolerance(loss0, atol, rtol):
        return None
    names = output_names(model, len(y_flat))
    layer, cls, path = _output_layer(model, 0, names[0] if names else None)
    pad_rows = np.nonzero(~mask.reshape(len(keep), -1).all(axis=1))[0]
    sample = int(keep[pad_rows[0]]) if len(pad_rows) else 0
    position = _first_pad(mask[pad_rows[0]]) if len(pad_rows) else -1
    leak = Leak(layer=layer, layer_class=cls, path=path, sample=sample, position=position,
                padding=padding, max_abs_diff=round_sig(diff), output=names[0] if names else None,
                kind="loss")
    return LossResult(leak, "labels", True, diff, source="train_step")
