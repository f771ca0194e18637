"""The dynamic engine for inline use: `find_leak` and `find_loss_leak` on the user's own batch.

Both build the probe plan from the model (its static graph when it has one),
take the user's arrays and mask, and run the same programs and comparisons
as the checker. Public contract (used by the assertions, the pytest plugin
and users):

* ``find_leak(model, x, *, mask=None, lengths=None, padding="post",
  training=False, atol=1e-5, rtol=1e-4, seed=0) -> Leak | None``: perturb only
  the padded positions of ``x`` (natural-scale noise, large values, the
  batch's own values shuffled) while holding the mask fixed, and return the
  largest change of a valid output, localized to the first layer whose valid
  region diverges while its inputs' did not; None when valid outputs stay
  within ``atol + rtol * |reference|``.
* ``find_loss_leak(model, x, y, ...) -> Leak | None``: the same for the
  compiled loss and the gradients of the trainable weights, perturbing padded
  labels and padded inputs.
* ``base_loss(model, x, y, sample_weight=None, ...) -> float``: the loss those
  probes compare every variant with, computed the way they compute it; it
  equals ``model.compute_loss`` on an eager forward pass (tested over a zoo of
  compiled models in tests/test_loss_parity.py).

Where the mask derives from values (pad token 0, ``mask_value``, a custom
``compute_mask``), the perturbation is applied after the generating layer, so
the mask cannot move. Model weights are never changed.
"""

from __future__ import annotations

from typing import Any, Sequence

from maskcheck.dynamic.batches import prepare, stack_draws, stacked_inputs, subset, take
from maskcheck.dynamic.compare import Leak, output_leak
from maskcheck.dynamic.inference import Inconclusive, nonfinite_unpadded
from maskcheck.dynamic.plan import ProbeError, ProbePlan, build_plan, layers_named
from maskcheck.dynamic.program import cached_prober, has_loss

#: Plans of the last few models seen (property tests call find_leak many times on one model).
_RECENT_PLANS: list[tuple[Any, ProbePlan]] = []


def _plan(model: Any) -> ProbePlan:
    """The plan of `model` with default settings, from its graph when it has one."""
    from maskcheck.config import Config
    from maskcheck.dynamic.plan import NotProbeable

    for cached, plan in _RECENT_PLANS:
        if cached is model:
            return plan
    graph = flow = None
    try:
        from maskcheck.static.adapter import adapt_model
        from maskcheck.static.dataflow import analyze

        graph = adapt_model(model)
        flow = analyze(graph)
    except Exception:  # no graph (subclassed): the plan reads the layers
        graph = flow = None
    try:
        plan = build_plan(model, Config(), graph, flow)
    except NotProbeable:
        # the user's own batch and mask say where padding is; an empty plan defers to them
        plan = ProbePlan(model.name, (), (), "single", (), 0, True, 1)
    _RECENT_PLANS.append((model, plan))
    del _RECENT_PLANS[:-4]
    return plan


def _stacked(model: Any, x: Any, mask: Any, lengths: Any, padding: str, seed: int,
             device: str) -> tuple[ProbePlan, Any, Any, Any, Any]:
    """The user's batch stacked with its perturbation draws: (plan, prep, rows, inputs, prober)."""
    plan = _plan(model)
    prep = prepare(model, plan, x, mask, lengths, padding)
    rows = stack_draws(prep.mask, [padding] * prep.mask.shape[0])
    inputs = stacked_inputs(prep, rows, seed)
    names = {s.generator for s in prep.specs if s.role == "data" and s.generator}
    prober = cached_prober(model, device, seed, layers_named(model, names), inputs, rows,
                           batch=plan.batch)
    return plan, prep, rows, inputs, prober


def find_leak(model: Any, x: Any, *, mask: Any = None, lengths: Sequence[int] | None = None,
              padding: str = "post", training: bool = False, atol: float = 1e-5,
              rtol: float = 1e-4, seed: int = 0, device: str = "auto") -> Leak | None:
    """The largest change of a valid output when only padded values change, or None.

    Args:
        model: a Keras model (Functional, Sequential or subclassed).
        x: the inputs, an array, list or dict of arrays as the model takes them.
        mask: (batch, time) booleans, True at valid positions.
        lengths: valid lengths per sample, used when `mask` is None.
        padding: which side `lengths` pads ("post" or "pre"); reported in the Leak.
        training: probe in training mode (batch statistics). Each draw then runs
            as its own batch, since stacking would change the statistics.
        atol, rtol: a valid output differs when |new - old| > atol + rtol * |old|.
        seed: the perturbations are deterministic for a seed.

    Returns:
        A `Leak` localized to the first layer whose valid region diverges while
        its inputs' do not, or None.

    Raises:
        ProbeError: the model cannot be probed (one-line reason); `Inconclusive` (one)
            when the outputs of the batch's unpadded samples are NaN or Inf.

    Example:
        >>> leak = find_leak(model, tokens)          # mask from Embedding(mask_zero)
        >>> assert leak is None, leak.describe()
    """
    import numpy as np

    plan, prep, rows, inputs, prober = _stacked(model, x, mask, lengths, padding, seed, device)
    b = prep.mask.shape[0]
    axes = [o.padded_axes for o in plan.outputs] or None
    if not training:
        run = prober.run(inputs, rows)
        said = nonfinite_unpadded(run, rows)
        if said is not None:  # SPEC 9: inconclusive is not clean (never "no leak")
            raise Inconclusive(f"padding invariance is inconclusive: {said}")
        if axes is not None and len(axes) != len(run.outputs):
            axes = None
        return output_leak(run, None, rows, np.arange(rows.n) >= b, rows.base_row, None,
                           padding, atol, rtol, output_axes=axes)
    # training: each draw as its own batch, with the unperturbed batch riding along (its
    # second half) so the drawn rows' masks are pinned to it; the reference batch is the
    # unperturbed one twice, so both batches hold the same number of rows
    half = np.arange(b)
    ref_idx = np.concatenate([half, half])
    ref = prober.run(take(inputs, ref_idx), subset(rows, ref_idx), training=True)
    ref.outputs = [o[:b] if o.ndim and o.shape[0] == 2 * b else o for o in ref.outputs]
    ref.tensors = [t[:b] if t.ndim and t.shape[0] == 2 * b else t for t in ref.tensors]
    best: Leak | None = None
    for draw in range(1, rows.n // b):
        idx = np.concatenate([np.arange(draw * b, (draw + 1) * b), half])
        sub = subset(rows, idx)
        run = prober.run(take(inputs, idx), sub, training=True)
        run.outputs = [o[:b] if o.ndim and o.shape[0] == 2 * b else o for o in run.outputs]
        run.tensors = [t[:b] if t.ndim and t.shape[0] == 2 * b else t for t in run.tensors]
        sub = subset(rows, idx[:b])
        sub.base_row = np.arange(b)
        leak = output_leak(run, ref, sub, np.ones(b, dtype=bool), np.arange(b), None,
                           padding, atol, rtol)
        if leak is not None and (best is None or leak.max_abs_diff > best.max_abs_diff):
            best = leak
    return best


def find_loss_leak(model: Any, x: Any, y: Any, *, mask: Any = None,
                   lengths: Sequence[int] | None = None, padding: str = "post",
                   atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0,
                   device: str = "auto") -> Leak | None:
    """A change of the compiled loss or of its gradients when only padding changes, or None.

    Perturbs padded labels (label positions the mask marks as padding, along
    the output axes the plan marks as padded) and padded inputs (as
    `find_leak` does), and compares `model.compute_loss` and the gradients of
    the trainable weights with those of the unperturbed batch. The model must
    be compiled with a loss (or override `compute_loss`).

    Returns:
        A `Leak` with kind "loss" or "gradients" at the output whose labels or
        loss changed (or whose mask makes the compiled loss raise), or None.

    Raises:
        ProbeError: the model has no loss, cannot be probed, or its loss cannot be
            computed on `y`.
    """
    from maskcheck.config import Config
    from maskcheck.dynamic.batches import Probe
    from maskcheck.dynamic.lossprobe import measure_loss

    if not has_loss(model):
        raise ProbeError(f"model {model.name!r} has no loss to probe: compile it with a loss "
                         "(or override compute_loss)")
    plan, prep, rows, inputs, prober = _stacked(model, x, mask, lengths, padding, seed, device)
    b = prep.mask.shape[0]
    run = prober.run(inputs, rows)
    config = Config(atol=atol, rtol=rtol, seed=seed)
    notes: list[str] = []
    outcome = measure_loss(model, plan, prep, Probe(x, y, prep.mask, [padding] * b), prober,
                           inputs, run, rows, config, leaks=True, notes=notes)
    found = outcome.raising or outcome.leak or outcome.train_step
    if found is None and notes:  # the loss cannot be computed on these labels: no verdict
        raise ProbeError(f"the loss is {notes[0]}")
    return found.leak if found is not None else None


def base_loss(model: Any, x: Any, y: Any, sample_weight: Any = None, *, mask: Any = None,
              lengths: Sequence[int] | None = None, padding: str = "post", seed: int = 0,
              device: str = "auto") -> float:
    """The loss of the unperturbed batch exactly as the loss probes compute it.

    The batch is stacked with its perturbation draws and run through the same
    programs as `find_loss_leak` and the checker (the forward pass with its
    masks, then `model.compute_loss` per group, or the compiled loss on the
    inference predictions); this is the value of the base group, the one every
    perturbed variant is compared with. It must equal what `fit` computes on
    the batch (``model.compute_loss(x=x, y=y, y_pred=model(x), sample_weight=...)``):
    the output's mask, `ignore_class` and the sample weights apply. Samples
    with no valid step are left out, as in the probes (MC305 checks them);
    activity regularizers, whose penalty depends on the whole forward pass,
    are computed over the stacked batch.

    Raises:
        ProbeError: the model has no loss, cannot be probed, or its loss raises.
    """
    from maskcheck.config import Config
    from maskcheck.dynamic.lossprobe import measure_losses

    if not has_loss(model):
        raise ProbeError(f"model {model.name!r} has no loss to compute: compile it with a loss "
                         "(or override compute_loss)")
    plan, prep, rows, inputs, prober = _stacked(model, x, mask, lengths, padding, seed, device)
    run = prober.run(inputs, rows)
    measured = measure_losses(model, plan, prober, inputs, run, rows, y, Config(seed=seed),
                              sample_weight=sample_weight)
    if measured is None:
        raise ProbeError("every sample of the batch is fully padded: no base loss to compute")
    return measured.result.losses[0]
