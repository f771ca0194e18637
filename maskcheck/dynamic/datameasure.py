"""Measurements on the user's own batches: what real data does to the model.

They run on each real batch after the perturbation probes (the "data" program):

* `side_flips`: the same samples are re-padded on the other side (the valid
  block moved, values kept). A leak the data's side shows and the other side
  does not is the side's fault; and for pre-padded samples, valid outputs that
  differ from the same samples post-padded (where every valid step sits where an
  unpadded sequence has it) mean the model reads absolute positions.
* `labels_counted`: the compiled loss on the data's own labels and weights,
  against the same loss with padded steps weighted 0.
* `weights_misaligned` and `pad_inside`: facts of the batch (per-step weights
  non-zero on padding, or per-step weights for an output without a time axis;
  the pad value inside a valid block).

Imports `batches`, `program`, `compare` and `realdata`; NumPy at import time
(this module loads only when a check runs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskcheck.dynamic.batches import Prepared, Rows, expand, stack_draws, stacked_inputs
from maskcheck.dynamic.compare import (Leak, Measured, diverging_layers, loss_tolerance,
                                       output_layer, output_leak, round_sig)
from maskcheck.dynamic.plan import ProbeError, ProbePlan, layers_named
from maskcheck.dynamic.program import Prober, Run, predictions
from maskcheck.dynamic.realdata import DataPadding, pad_steps, runs, value_text

# --------------------------------------------------------------------------- sides


def _shifts(mask: Any, sides: list[str]) -> Any:
    """Per sample: how far the valid block moves when re-padded on the other side."""
    lead, trail = runs(~mask)
    return np.array([(-int(a) if s == "pre" else int(b)) if s in ("pre", "post") and a < mask.shape[1]
                     else 0 for a, b, s in zip(lead, trail, sides)])


def roll_rows(array: Any, shifts: Any, t: int) -> Any:
    """Each row of `array` rolled by its shift along every axis of length `t`."""
    if array.ndim < 2 or len(shifts) != array.shape[0] or not np.any(shifts):
        return array
    axes = tuple(a - 1 for a in range(1, array.ndim) if array.shape[a] == t)
    if not axes:
        return array
    return np.stack([np.roll(row, (int(s),) * len(axes), axis=axes) if s else row
                     for row, s in zip(array, shifts)])


def side_flips(prep: Prepared, prober: Prober, run: Run, rows: Rows, config: Any,
               output_axes: Any, leaks: list[Measured]) -> list[Measured]:
    """Padding leaks (`leaks`, the inference program's) that the data's side shows and the
    same samples re-padded on the other side do not; without any leak, pre-padded samples
    whose valid outputs differ from the same samples post-padded (absolute positions)."""
    t = prep.mask.shape[1]
    sides = [rows.side[i] for i in np.nonzero(rows.draw == 0)[0]]
    shifts = _shifts(prep.mask, sides)
    if not shifts.any():
        return []
    other = {"pre": "post", "post": "pre"}
    flipped_sides = [other.get(s, s) if d else s for s, d in zip(sides, shifts)]
    flipped = Prepared([roll_rows(a, shifts, t) if a.ndim >= 2 and a.shape[1] == t else a
                        for a in prep.flat], prep.names, prep.pack, prep.specs,
                       roll_rows(prep.mask, shifts, t))
    frows = stack_draws(flipped.mask, flipped_sides)
    try:
        frun = prober.run(stacked_inputs(flipped, frows, config.seed), frows)
    except ProbeError:
        return []
    leaking_flipped = diverging_layers(frun, frows, config.atol, config.rtol)
    out: list[Measured] = []
    for r in leaks:
        data_sides = set(r.fields.get("sides", [r.leak.padding]))
        if r.leak.layer and r.leak.layer not in leaking_flipped and data_sides <= {"pre", "post"}:
            side = r.leak.padding
            out.append(Measured(r.leak, {
                **r.fields, "other_side": other[side],
                "detail": f"padding values reach valid outputs under the data's {side}-padding, "
                          f"and not when the same samples are {other[side]}-padded"}))
    if leaks:
        return out
    # absolute positions: a pre-padded sample's valid outputs against the same sample
    # post-padded, aligned step by step
    shift_rows = shifts[rows.sample]
    aligned = Run([roll_rows(o, -shift_rows, t) if o.ndim and o.shape[0] == rows.n else o
                   for o in frun.outputs], frun.output_names, frun.output_masked, frun.records,
                  [roll_rows(v, -shift_rows, t) if v.ndim and v.shape[0] == rows.n else v
                   for v in frun.tensors])
    if len(aligned.records) != len(run.records):
        aligned.records, aligned.tensors = [], []
    compare = (rows.draw == 0) & np.array([s == "pre" for s in rows.side]) & (shift_rows != 0)
    if not compare.any():
        return out
    leak = output_leak(run, aligned, rows, compare, np.arange(rows.n), np.arange(rows.n), "pre",
                       config.atol, config.rtol, output_axes=output_axes)
    if leak is not None:
        out.append(Measured(leak, {
            "other_side": "post", "sides": ["pre"],
            "detail": "valid outputs change when the same samples are post-padded instead "
                      "(the model reads absolute positions, which left padding shifts)"}))
    return out


# --------------------------------------------------------------------------- labels


def _per_output(y: Any) -> list[Any]:
    if isinstance(y, dict):
        return [np.asarray(v) for v in y.values()]
    if isinstance(y, (list, tuple)):
        return [np.asarray(v) for v in y]
    return [np.asarray(y)]


def labels_counted(model: Any, plan: ProbePlan, prep: Prepared, batch: DataPadding, run: Run,
                   rows: Rows, config: Any) -> Measured | None:
    """The compiled loss on the data's labels and weights, against the same loss with
    every padded step weighted 0: a difference is padded labels counted."""
    import keras

    y = batch.probe.y
    if y is None or getattr(model, "_compile_loss", None) is None or not batch.padded:
        return None
    labels = _per_output(y)
    mask = prep.mask
    timed = [j for j, a in enumerate(labels) if a.ndim >= 2 and a.shape[1] == mask.shape[1]
             and j in batch.label_pads]
    if not timed:
        return None
    base = np.nonzero(rows.draw == 0)[0]
    order = np.argsort(rows.sample[base])
    y_pred = predictions(model, run, base[order])
    given = batch.sample_weight

    def weights(zero_padding: bool) -> Any:
        flat = []
        for j, a in enumerate(labels):
            if j in timed:
                w = np.ones(a.shape[:2], "float32")
                if isinstance(given, np.ndarray) and given.shape == w.shape:
                    w = given.astype("float32")
                elif isinstance(given, np.ndarray) and given.ndim == 1:
                    w = w * given[:, None]
                flat.append(w * mask if zero_padding else w)
            else:
                w = np.ones(a.shape[:1], "float32")
                flat.append(given.astype("float32") if isinstance(given, np.ndarray)
                            and given.ndim == 1 else w)
        return keras.tree.pack_sequence_as(y, flat) if not isinstance(y, np.ndarray) else flat[0]

    def loss(labels_y: Any, sw: Any) -> float:
        value = model.compute_loss(x=None, y=labels_y, y_pred=y_pred, sample_weight=sw,
                                   training=False)
        return float(np.asarray(value))

    j = timed[0]
    pad_label = batch.label_pads[j]
    # labels with padded steps set to a real class: a loss that rejects the pad value
    # (-100 without ignore_class) is still measured against the weighted-out version
    safe = [np.where(expand(mask, a.ndim), a, 0).astype(a.dtype) if k in timed else a
            for k, a in enumerate(labels)]
    safe_y = keras.tree.pack_sequence_as(y, safe) if not isinstance(y, np.ndarray) else safe[0]
    # the reference keeps the data's labels (so ignore_class masks the same steps and the
    # normalization matches) unless the loss cannot take them at all
    reference = None
    for labels_y in (y, safe_y):
        try:
            reference = loss(labels_y, weights(True))
        except Exception:  # the user's loss may raise anything; try the safe labels
            continue
        if np.isfinite(reference):
            break
    if reference is None or not np.isfinite(reference):
        return None
    try:
        counted = loss(y, weights(False))
        detail = ""
    except Exception as exc:  # e.g. a label of -100 out of range for a sparse loss
        counted, detail = float("inf"), " ".join(str(exc).split())[:160]
    diff = abs(counted - reference) if np.isfinite(counted) else float("inf")
    if diff <= loss_tolerance(reference, config.atol, config.rtol):
        return None
    layer, cls, path = output_layer(model, j)
    pads = np.nonzero(~mask.all(axis=1))[0]
    r = int(pads[0]) if len(pads) else 0
    position = int(np.nonzero(~mask[r])[0][0]) if len(pads) else -1
    spec = plan.outputs[j] if j < len(plan.outputs) else None
    ignore = spec.ignore_class if spec is not None else None
    finite = bool(np.isfinite(diff))
    leak = Leak(layer=layer, layer_class=cls, path=path, sample=r, position=position,
                padding=batch.probe.sides[r], max_abs_diff=round_sig(diff) if finite else float("nan"),
                output=run.output_names[j] if j < len(run.output_names) else None, kind="loss")
    if finite:
        effect = f"the loss changes by {diff:.3g} when they are weighted out"
    elif detail:
        effect = f"the loss raises on them ({detail})"
    else:
        effect = "the loss is NaN or Inf with them and finite when they are weighted out"
    label = _label_text(pad_label)
    return Measured(leak, {
        "label_pad": label, "ignore_class": ignore, "loss": _loss_name(model, j),
        "effect": effect, "loss_diff": round_sig(diff) if finite else None,
        "exception": detail or None})


def _label_text(value: float) -> str:
    return value_text(value) if np.isfinite(value) else "mixed values"


def _loss_name(model: Any, j: int) -> str:
    loss = getattr(model, "loss", None)
    if isinstance(loss, dict):
        loss = list(loss.values())[j] if j < len(loss) else None
    elif isinstance(loss, (list, tuple)):
        loss = loss[j] if j < len(loss) else None
    if loss is None:
        return "the loss"
    return loss if isinstance(loss, str) else (getattr(loss, "name", None) or type(loss).__name__)


# --------------------------------------------------------------------------- weights


def weights_misaligned(model: Any, plan: ProbePlan, batch: DataPadding, run: Run,
                       rows: Rows) -> list[Measured]:
    """Per-step weights for an output without a time axis, or non-zero on padded steps."""
    given = batch.sample_weight
    if not isinstance(given, np.ndarray) or given.ndim != 2 or batch.mask_source == "per-step sample weights":
        return []
    mask = batch.probe.mask
    layer, cls, path = output_layer(model, 0)
    name = run.output_names[0] if run.output_names else None
    out = run.outputs[0] if run.outputs else None
    per_sample = out is not None and (out.ndim < 2 or out.shape[1] != mask.shape[1])
    if given.shape[1] != mask.shape[1] or per_sample:
        leak = Leak(layer, cls, path, 0, -1, batch.probe.sides[0], 0.0, name, kind="loss")
        return [Measured(leak, {
            "detail": f"the weights have shape {tuple(given.shape)} (per step) but output "
                      f"{name!r} has no time axis of length {mask.shape[1]}",
            "weights_shape": list(given.shape)})]
    wrong = (~mask) & (given != 0)
    if not wrong.any():
        return []
    r = int(np.nonzero(wrong.any(axis=1))[0][0])
    p = int(np.nonzero(wrong[r])[0][0])
    leak = Leak(layer, cls, path, r, p, batch.probe.sides[r], round_sig(float(given[r, p])), name,
                kind="loss")
    return [Measured(leak, {
        "detail": f"{int(wrong.sum())} padded step(s) have a non-zero weight (sample {r}, "
                  f"position {p} has {float(given[r, p]):g})",
        "weighted_padding": int(wrong.sum())})]


# --------------------------------------------------------------------------- pad values


def pad_inside(model: Any, plan: ProbePlan, prep: Prepared, batch: DataPadding) -> list[Measured]:
    """The pad value inside a sample's valid block, for inputs whose padding the model
    reads from values (a mask generator) or that follow the token-0 convention."""
    results = []
    for spec, array in zip(prep.specs, prep.flat):
        pad = batch.pad_values.get(spec.name)
        if pad is None or array.ndim < 2 or array.shape[1] != prep.mask.shape[1]:
            continue
        if spec.generator is None and spec.kind != "tokens":
            continue
        inside = pad_steps(array, pad) & prep.mask
        if not inside.any():
            continue
        r = int(np.nonzero(inside.any(axis=1))[0][0])
        p = int(np.nonzero(inside[r])[0][0])
        layer = spec.generator or spec.name
        found = layers_named(model, {layer})
        cls = type(found[0]).__name__ if found else "InputLayer"
        leak = Leak(layer, cls, (model.name, layer), r, p, batch.probe.sides[r], 0.0, None,
                    kind="data")
        results.append(Measured(leak, {
            "input": spec.name, "pad_value": round_sig(float(pad)), "count": int(inside.sum())}))
    return results
