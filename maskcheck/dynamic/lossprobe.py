"""The loss program's measurements: what `fit` would learn from padding.

One loss program (one trace) evaluates every label and input variant over the
stacked batch, on the data's sample weights and the masks the forward pass
attached, so each loss is the one `fit` computes (`base_loss` in `api` exposes the
base one; tests/test_loss_parity.py holds it to `model.compute_loss`). From it:
padded labels, padded inputs or padded frames that move the loss or its gradients,
a fully padded sample whose loss is not finite, a compiled loss that raises on the
outputs' masks, and a custom `train_step` whose reported loss follows padded
labels. `measure_loss` returns one `LossOutcome`; the rules' checks name its parts.
Imports batches, compare, plan and program.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maskcheck.dynamic.batches import (Prepared, Rows, label_candidates, label_pad_value,
                                       output_valid, perturb_labels, take)
from maskcheck.dynamic.compare import (Leak, Measured, grad_diff, loss_tolerance, output_layer,
                                       round_sig)
from maskcheck.dynamic.plan import ProbeError, ProbePlan
from maskcheck.dynamic.program import (LossGroup, LossProgram, LossRun, Prober, Run, has_loss,
                                       one_line, overrides_train_step, predictions,
                                       run_train_step)


class LabelsReadPadding(ProbeError):
    """Changed padded labels moved the loss, and changed padded predictions did not: the loss
    reads its label padding from the label values (this label form may be the wrong one)."""


@dataclass
class LossOutcome:
    """What the loss program measured on one probe batch (each part None when not seen)."""

    #: padded labels, inputs or frames moved the loss or its gradients
    leak: Measured | None = None
    #: that leak came from padded labels of an output that carries a mask (the loss bypasses it)
    bypasses_mask: bool = False
    #: a custom train_step's reported loss moved when only padded labels changed
    train_step: Measured | None = None
    #: a fully padded sample's loss is not finite
    empty: Measured | None = None
    #: the compiled loss raises on the outputs' masks and computes without them
    raising: Measured | None = None


def measure_loss(model: Any, plan: ProbePlan, prep: Prepared, probe: Any, prober: Prober,
                 inputs: Any, run: Run, rows: Rows, config: Any, *, leaks: bool = True,
                 empty: bool = False, sample_weight: Any = None,
                 notes: list[str] | None = None) -> LossOutcome:
    """The loss program over the stacked batch (`leaks`: look for padding that moves the
    loss; `empty`: compute the loss of fully padded samples).

    `sample_weight` (the data's own, one row per probe sample) weights the loss as in
    `fit`: padded labels that carry weight 0 are not counted. A compiled loss that
    raises on the model's own masked outputs and computes once their masks are
    dropped cannot train the model: `raising` (the mask does not line up with the
    loss it weights, as a per-sequence CTC loss under a (batch, time) mask).
    A loss the probes cannot drive at all (it raises on every label form they make)
    is said in `notes`, never raised."""
    import keras

    custom_step = overrides_train_step(model) and getattr(model, "optimizer", None) is not None
    if not has_loss(model) and not custom_step:
        return LossOutcome()
    notes = notes if notes is not None else []
    base = np.nonzero(rows.draw == 0)[0]
    samples = rows.sample[base]
    weights = (None if sample_weight is None else
               keras.tree.map_structure(lambda a: np.asarray(a)[samples], sample_weight))
    if probe.y is not None:
        candidates = [keras.tree.map_structure(lambda a: np.asarray(a)[samples], probe.y)]
    else:
        masks = [None if m is None else m[base] for m in (run.output_masks or [None] * len(run.outputs))]
        candidates = _ordered(plan, label_candidates(plan, [o[base] for o in run.outputs],
                                                     rows.mask[base], config.seed, masks))
    outcome = LossOutcome()
    errors: list[str] = []
    measured = False
    fallback: LossOutcome | None = None
    if has_loss(model):
        # the data's weights as fit applies them; weights the loss cannot take (MC403 says
        # why) leave the loss unweighted rather than unprobed
        tries = [(y, w) for y in candidates for w in ([weights, None] if weights is not None
                                                       else [None])]
        for y_base, w in tries:
            try:
                outcome = _loss_program_outcome(model, plan, prober, inputs, run, rows, y_base,
                                                config, leaks, empty, w)
                measured = True
                break
            except LabelsReadPadding:
                fallback = LossOutcome() if fallback is None else fallback
            except ProbeError as exc:
                errors.append(str(exc))
            except Exception as exc:  # labels the probes made that this loss cannot take
                errors.append(f"computing the loss raises: {one_line(exc)}")
    if not measured and fallback is not None:
        measured, outcome = True, fallback
    if not measured and has_loss(model) and errors:
        raising = _loss_raises_on_masks(model, plan, prep, run, rows, candidates, weights, inputs)
        if raising is not None:
            return LossOutcome(raising=raising)
        given = "the data's labels" if probe.y is not None else "every label form the probes make"
        notes.append(f"not probed: the loss cannot be computed on {given} ({errors[0]}); "
                     "pass real labels (--data) to probe it")
    if outcome.leak is None and outcome.empty is None and custom_step and leaks:
        for y_base in candidates:
            try:
                outcome.train_step = _train_step_check(model, plan, prep, prober, rows, y_base,
                                                       config)
                break
            except ProbeError:
                continue
    return outcome


def _loss_raises_on_masks(model: Any, plan: ProbePlan, prep: Prepared, run: Run, rows: Rows,
                          candidates: list[Any], weights: Any, inputs: Any) -> Measured | None:
    """A Measured when `compute_loss` raises on the base batch's masked predictions and computes
    a finite loss on the same predictions without their masks (keras-team/keras#23228:
    `keras.losses.CTC` under a `Masking` layer), else None. Eager, on the base rows."""
    import keras

    masked = [j for j, m in enumerate(run.output_masks or []) if m is not None]
    if not masked:
        return None
    keep = np.nonzero((rows.draw == 0) & (rows.lengths > 0))[0]
    if not len(keep):
        return None
    x = take(inputs, keep)
    for y_base in candidates:
        y = keras.tree.map_structure(lambda a: np.asarray(a)[rows.sample[keep]], y_base)
        sw = (None if weights is None else
              keras.tree.map_structure(lambda a: np.asarray(a)[rows.sample[keep]], weights))
        with_masks = predictions(model, run, keep)
        try:
            model.compute_loss(x=x, y=y, y_pred=with_masks, sample_weight=sw)
            continue  # this form computes with the masks: the loss does not raise on them
        except Exception as exc:  # the user's loss may raise anything
            error = one_line(exc)
        for j in masked:
            bare = Run(run.outputs, run.output_names, run.output_masked, [], [],
                       [None if k == j else m for k, m in enumerate(run.output_masks)])
            try:
                value = float(np.asarray(model.compute_loss(
                    x=x, y=y, y_pred=predictions(model, bare, keep), sample_weight=sw)))
            except Exception:  # still raises: not this output's mask
                continue
            if not np.isfinite(value):
                continue
            layer, cls, path = output_layer(model, j)
            name = run.output_names[j] if j < len(run.output_names) else None
            mask_shape = tuple(run.output_masks[j].shape[1:])
            r = int(keep[int(np.argmin(rows.lengths[keep]))])
            source = next((s.generator or s.name for s in prep.specs if s.generator), None) \
                or (plan.generators[0] if plan.generators else layer)
            leak = Leak(layer=layer, layer_class=cls, path=path, sample=int(rows.sample[r]),
                        position=-1, padding=rows.side[r], max_abs_diff=float("nan"),
                        output=name, kind="loss-raises")
            return Measured(leak, {
                "exception": error, "loss": loss_name(model), "source": source,
                "detail": f"the compiled loss {loss_name(model)!r} raises on the output's mask "
                          f"(shape (batch, {', '.join(str(d) for d in mask_shape)})), which Keras "
                          f"applies to the per-sample losses as weights, so the model cannot "
                          f"train; it computes once the mask is dropped ({error})",
                "hint": "drop the mask before the loss (a layer that returns no mask), or "
                        "compute the loss in a custom compute_loss that takes the lengths "
                        "(for CTC: label lengths from the labels, frame lengths from the mask)"})
    return None



def _ordered(plan: ProbePlan, candidates: list[Any]) -> list[Any]:
    """Sparse ids first for sparse losses, one-hot first for the others, label sequences
    first for CTC losses (one trace, not two). Only the order follows the loss's name: a
    form the loss cannot take raises, and the next one is tried."""
    names = " ".join(str(o.loss or "") for o in plan.outputs).lower()
    dense = ("categorical", "binary", "mean", "mse", "mae", "hinge", "kl", "poisson", "cosine",
             "huber", "log_cosh")
    order = list(range(len(candidates)))
    if "ctc" in names and len(candidates) > 2:
        order = [2, 0, 1]
    elif "sparse" not in names and any(word in names for word in dense):
        order = [1, 0, *order[2:]]
    return [candidates[k] for k in order]


@dataclass
class LossMeasure:
    """What one loss program measured: the loss of every group, and how groups compare."""

    result: LossRun
    groups: list[LossGroup]
    base_of: dict[int, int]  # perturbed group -> its base group
    #: padded-labels group -> the group that changes the same output's padded predictions
    confirm: dict[int, int]
    what: dict[int, tuple[str, int]]  # perturbed group -> ("labels", output) or ("inputs", 0)
    weights: dict[int, float]  # perturbed group -> its weight in the gradient difference
    empty_check: int | None  # the group holding fully padded samples, if any


def measure_losses(model: Any, plan: ProbePlan, prober: Prober, inputs: Any, run: Run,
                   rows: Rows, y_base: Any, config: Any, empty: bool = False,
                   sample_weight: Any = None) -> LossMeasure | None:
    """Run the loss program over the stacked batch: group 0 is the base batch (its samples
    that are not fully padded), then one group per output whose padded labels change, one
    for every perturbed input draw, and (`empty`) one with the fully padded samples.

    `y_base` and `sample_weight` hold one row per base sample; each group gathers its
    rows of them, so the loss sees the data's own weights as `fit` does. None when no
    base sample has a valid step."""
    import keras

    flat_y = [np.asarray(a) for a in keras.tree.flatten(y_base)]
    repack = (lambda flat: keras.tree.pack_sequence_as(y_base, flat))
    stacked = [a[rows.sample] for a in flat_y]  # labels for every stacked row
    labels = [repack(stacked)]
    weights_given = None
    if sample_weight is not None:
        weights_given = keras.tree.map_structure(
            lambda a: np.asarray(a, dtype="float32")[rows.sample], sample_weight)
    perturbed_outputs = []
    own: list[int] = []  # outputs whose labels have their own length
    for j, a in enumerate(stacked):
        spec = plan.outputs[j] if j < len(plan.outputs) else None
        if spec is None or not spec.labels_perturbable:
            continue
        out = run.outputs[j] if j < len(run.outputs) else None
        if _own_length(a, out):
            # labels with a padded axis of their own (CTC targets): their padding is the
            # trailing pad value, which the loss may read to get the label lengths, so
            # padded values are not changed (that would move the padding); more of it is
            # added instead, and a loss that counts padded labels changes
            pad = np.full(a.shape, label_pad_value(flat_y[j]), a.dtype)
            labels.append(repack([np.concatenate([a, pad], axis=1) if k == j else b
                                  for k, b in enumerate(stacked)]))
            perturbed_outputs.append(j)
            own.append(j)
            continue
        n_classes = run.outputs[j].shape[-1] if j < len(run.outputs) and run.outputs[j].ndim >= 2 else None
        changed = perturb_labels(a, rows.mask, spec.padded_axes, config.seed, n_classes)
        if np.array_equal(changed, a):
            continue
        labels.append(repack([changed if k == j else b for k, b in enumerate(stacked)]))
        perturbed_outputs.append(j)
    # Variants share a group when they compare against the same base: every draw's rows form
    # one "inputs" group (a mean over identical copies equals the base loss exactly), both
    # sides together, so the program calls compute_loss a few times instead of dozens.
    groups: list[LossGroup] = []
    base_of: dict[int, int] = {}
    what: dict[int, tuple[str, int]] = {}
    base_rows = np.nonzero((rows.draw == 0) & (rows.lengths > 0))[0]
    if not len(base_rows):
        return None
    groups.append(LossGroup(tuple(int(i) for i in base_rows), 0, "base"))
    for k, j in enumerate(perturbed_outputs):
        base_of[len(groups)], what[len(groups)] = 0, ("labels", j)
        groups.append(LossGroup(tuple(int(i) for i in base_rows), k + 1, f"labels:{j}"))
    # Changed padded label values move the loss of a loss that counts padded steps, and
    # also of one that reads the label padding from the values (a `y_true != 0` mask, CTC
    # label lengths): changing the label pad moves its padding, as changing a pad token
    # would move a mask. The predictions at the same padded steps, changed with every mask
    # and label kept, tell them apart: only a loss that counts padded steps answers.
    # Where labels have their own length (CTC), the predictions at padded frames changed
    # are a probe of their own: a loss that reads them counts padded frames.
    confirm: dict[int, int] = {}
    valid: list[Any] = [None] * len(run.outputs)
    for g in list(base_of):
        j = what[g][1]
        out = run.outputs[j] if j < len(run.outputs) else None
        if out is None or out.ndim < 2 or not np.issubdtype(out.dtype, np.floating):
            continue
        steps = output_valid(out, rows.mask, (run.output_masks or [None] * len(run.outputs))[j])
        if steps is None or steps.all():
            continue
        valid[j] = steps
        if j in own:
            base_of[len(groups)], what[len(groups)] = 0, ("frames", j)
        else:
            confirm[g] = len(groups)
        groups.append(LossGroup(tuple(int(i) for i in base_rows), 0, f"predictions:{j}",
                                predictions=j))
    drawn = np.nonzero((rows.draw > 0) & (rows.lengths > 0))[0]
    if len(drawn):
        base_of[len(groups)], what[len(groups)] = 0, ("inputs", 0)
        groups.append(LossGroup(tuple(int(i) for i in drawn), 0, "inputs"))
    base_all = np.nonzero(rows.draw == 0)[0]
    empty_check = None
    if empty and (rows.lengths[base_all] == 0).any():
        empty_check = len(groups)
        groups.append(LossGroup(tuple(int(i) for i in base_all), 0, "empty"))
    # the gradient difference sums the input variants only: a changed label pad may move the
    # loss of a loss that reads it (CTC label lengths), and padded labels move the loss first
    weights = {g: 1.0 + 0.37 * n for n, g in enumerate(g for g in sorted(base_of)
                                                         if what[g][0] == "inputs")}
    gradients = bool(plan.gradient_code) or not plan.has_graph
    if prober.batch is not None:  # the loss program runs every row at once: a model built
        if not _compiled_loss(model):  # for one batch size gets the inference run's outputs
            raise ProbeError(f"the model takes batches of {prober.batch} rows only, and its "
                             "custom loss needs the model run on every probe row at once")
        gradients = False
    program = LossProgram(model, prober, groups, base_of, weights, gradients=gradients)
    result = (program.run(inputs, labels, rows, weights_given, valid)
              if gradients or not _compiled_loss(model)
              else program.run_on_outputs(run, labels, weights_given, valid))
    if not np.isfinite(result.losses[0]):
        raise ProbeError(f"the loss of the unpadded-label batch is not finite ({result.losses[0]})")
    return LossMeasure(result, groups, base_of, confirm, what, weights, empty_check)


def _own_length(labels: Any, out: Any) -> bool:
    """Integer labels (B, L) for a (B, T', C) output whose L is not T': label sequences
    with their own length and padding, as a CTC loss takes them."""
    return (out is not None and labels.ndim == 2 and out.ndim == 3
            and np.issubdtype(labels.dtype, np.integer) and labels.shape[1] != out.shape[1])


def _loss_program_outcome(model: Any, plan: ProbePlan, prober: Prober, inputs: Any, run: Run,
                          rows: Rows, y_base: Any, config: Any, leaks: bool, empty: bool,
                          sample_weight: Any = None) -> LossOutcome:
    measured = measure_losses(model, plan, prober, inputs, run, rows, y_base, config, empty,
                              sample_weight)
    outcome = LossOutcome()
    if measured is None:
        return outcome
    result, groups, base_of, what = measured.result, measured.groups, measured.base_of, measured.what
    weights, empty_check = measured.weights, measured.empty_check
    losses = result.losses
    if leaks:
        leak = None
        def moved(g: int, b: int) -> tuple[bool, float]:
            diff = abs(losses[g] - losses[b]) if np.isfinite(losses[g]) else float("inf")
            return diff > loss_tolerance(losses[b], config.atol, config.rtol), diff

        explained = False
        for g in sorted(base_of):
            changed, diff = moved(g, base_of[g])
            if changed and g in measured.confirm and not moved(measured.confirm[g], base_of[g])[0]:
                explained = True  # the loss reads padding from the label values
                continue
            if changed:
                leak = (g, "loss", diff)
                break
        if leak is None and explained:
            # these labels may not be the form the loss takes (per-step ids for a CTC loss):
            # the caller tries the next form, and keeps this clean verdict if none is better
            raise LabelsReadPadding("the loss reads the label padding from the label values")
        if leak is None and weights:
            scale = sum(weights.values())
            gdiff = grad_diff(result.delta_grads, [np.zeros_like(g) for g in result.delta_grads],
                              config.atol * scale, 0.0)
            if gdiff > 0:
                # one backward pass cannot say which variant moved the gradients; with the
                # loss unchanged it is padded inputs (padded labels move the loss first)
                g = next((g for g in sorted(base_of) if what[g][0] == "inputs"), min(base_of))
                leak = (g, "gradients", gdiff)
        if leak is not None:
            g, kind, diff = leak
            part, j = what[g]
            masked = result.output_masked[j] if j < len(result.output_masked) else False
            loss_diff = abs(losses[g] - losses[base_of[g]])
            outcome.bypasses_mask = part == "labels" and bool(masked)
            outcome.leak = Measured(_loss_leak(model, run, rows, groups[g], j, kind, diff),
                                    {"what": part, "loss_diff": round_sig(loss_diff),
                                     "loss": loss_name(model)})
    if empty_check is not None and not np.isfinite(losses[empty_check]) and np.isfinite(losses[0]):
        empty_rows = [i for i in groups[empty_check].rows if rows.lengths[i] == 0]
        r = empty_rows[0]
        layer, cls, path = output_layer(model, 0)
        name = run.output_names[0] if run.output_names else None
        outcome.empty = Measured(Leak(layer=layer, layer_class=cls, path=path,
                                      sample=int(rows.sample[r]), position=-1,
                                      padding=rows.side[r], max_abs_diff=float("nan"),
                                      output=name, kind="loss"),
                                 {"what": "a NaN or Inf loss"})
    return outcome


def _compiled_loss(model: Any) -> bool:
    """The loss is the compiled one (not a custom compute_loss), so it reads only y and y_pred."""
    import keras

    return (getattr(model, "_compile_loss", None) is not None
            and type(model).compute_loss is keras.Model.compute_loss)


def _loss_leak(model: Any, run: Run, rows: Rows, group: LossGroup, j: int, kind: str,
               diff: float) -> Leak:
    """A loss Leak at output j: the first padded sample of the group, its side and first pad."""
    idx = np.array(group.rows)
    padded = [i for i in idx if not rows.mask[i].all()]
    r = int(padded[0]) if padded else int(idx[0])
    flat = rows.mask[r].reshape(rows.mask.shape[1], -1).all(axis=1)
    pads = np.nonzero(~flat)[0]
    layer, cls, path = output_layer(model, j)
    name = run.output_names[j] if j < len(run.output_names) else None
    return Leak(layer=layer, layer_class=cls, path=path, sample=int(rows.sample[r]),
                position=int(pads[0]) if len(pads) else -1, padding=rows.side[r],
                max_abs_diff=round_sig(diff), output=name, kind=kind)


def _train_step_check(model: Any, plan: ProbePlan, prep: Prepared, prober: Prober, rows: Rows,
                      y_base: Any, config: Any) -> Measured | None:
    """A custom train_step whose reported loss changes when only padded labels change."""
    import keras

    base = np.nonzero((rows.draw == 0) & (rows.lengths > 0))[0]
    keep = rows.sample[base]
    mask = prep.mask[keep]
    x = prep.pack([a[keep] for a in prep.flat])
    all_base = np.nonzero(rows.draw == 0)[0]
    position = {int(r): n for n, r in enumerate(all_base)}
    y_flat = [np.asarray(a)[[position[int(r)] for r in base]] for a in keras.tree.flatten(y_base)]
    axes = [plan.outputs[j].padded_axes if j < len(plan.outputs) else (1,) for j in range(len(y_flat))]
    changed = [perturb_labels(a, mask, ax, config.seed, None) for a, ax in zip(y_flat, axes)]
    if all(np.array_equal(a, c) for a, c in zip(y_flat, changed)):
        return None
    loss0 = run_train_step(model, prober, x, keras.tree.pack_sequence_as(y_base, y_flat))
    loss1 = run_train_step(model, prober, x, keras.tree.pack_sequence_as(y_base, changed))
    diff = abs(loss1 - loss0) if np.isfinite(loss1) else float("inf")
    if diff <= loss_tolerance(loss0, config.atol, config.rtol):
        return None
    layer, cls, path = output_layer(model, 0)
    pad_rows = np.nonzero(~mask.reshape(len(keep), -1).all(axis=1))[0]
    r = int(pad_rows[0]) if len(pad_rows) else 0
    pads = np.nonzero(~mask[r].reshape(mask.shape[1], -1).all(axis=1))[0]
    leak = Leak(layer=layer, layer_class=cls, path=path, sample=int(keep[r]),
                position=int(pads[0]) if len(pads) else -1, padding=rows.side[int(base[r])],
                max_abs_diff=round_sig(diff), output=None, kind="loss")
    return Measured(leak, {"what": "labels", "loss_diff": round_sig(diff),
                           "loss": f"{type(model).__name__}.train_step"})


def loss_name(model: Any) -> str:
    """The compiled loss's name (or the class's compute_loss), as findings name it."""
    loss = getattr(model, "loss", None)
    if loss is None:
        return f"{type(model).__name__}.compute_loss"
    if isinstance(loss, str):
        return loss
    return getattr(loss, "name", None) or type(loss).__name__
