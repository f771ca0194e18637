"""The dynamic checks: follow the plan, run the programs, turn measurements into findings.

`run_dynamic(model, data, config, codes, graph, flow)` returns the dynamic
results (MC301-MC305, MC203, and MC103 for a model that raises once padding
or a mask is present, or whose compiled loss raises on its masked outputs) of
one model, plus what the engine needs to merge them with the static findings. One inference pass over the stacked batch (both
sides, every perturbation draw, taps on every layer call) serves MC301,
MC305 and localization; MC304 reuses that program at a longer length (the
signature leaves the padded axis open, so no new trace); MC302 runs the
training program when the plan names a layer that may mix samples; one loss
program (one trace) evaluates every label and input variant of MC303/MC203
and the fully padded loss of MC305, on the data's sample weights and the
masks the forward pass attached, so each loss is the one `fit` computes
(`base_loss` in `api` exposes the base one; tests/test_loss_parity.py holds
it to `model.compute_loss`).

The last module of the engine's chain: it imports plan, batches, program
and compare, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maskcheck.dynamic.batches import (Prepared, Rows, grown_inputs, infer_sides,
                                       label_candidates, label_pad_value, output_valid,
                                       perturb_labels, prepare, stack_draws,
                                       stacked_inputs, subset, synthesize, take, unpadded_inputs)
from maskcheck.dynamic.compare import (DynamicFinding, Leak, diverge, diverging_layers, expand,
                                       grad_diff, loss_tolerance, output_layer, output_leak,
                                       round_sig, valid_region)
from maskcheck.dynamic.plan import (NoPadding, NotProbeable, ProbeError, ProbePlan, build_plan,
                                    layers_named)
from maskcheck.dynamic.program import (ForwardError, LossGroup, LossProgram, LossRun, Prober, Run,
                                       has_loss, one_line, overrides_train_step, predictions,
                                       run_train_step)
from maskcheck.dynamic.datarules import DATA_CODES, data_checks
from maskcheck.dynamic.realdata import read_padding
from maskcheck.finding import Finding

DYNAMIC_CODES = ("MC203", "MC301", "MC302", "MC303", "MC304", "MC305", *DATA_CODES)

__all__ = ["DYNAMIC_CODES", "DynamicFinding", "ModelRaises", "NoPadding", "NotProbeable",
           "run_dynamic", "to_finding"]


class LabelsReadPadding(ProbeError):
    """Changed padded labels moved the loss, and changed padded predictions did not: the loss
    reads its label padding from the label values (this label form may be the wrong one)."""


class ModelRaises(ProbeError):
    """The forward pass raises on an unpadded batch too: a bad target (SPEC 9)."""


def run_dynamic(model: Any, data: Any, config: Any, codes: set[str], graph: Any = None,
                flow: Any = None) -> tuple[list[DynamicFinding], dict[str, Any]]:
    """Run the selected dynamic checks on `model`; returns (results, info).

    `info` holds the plan, the layers whose valid outputs diverged (for
    refutation) and the number of traces made.

    Raises:
        NotProbeable: no probe can be synthesized (NoPadding when nothing is padded).
        ModelRaises: the model raises on an unpadded batch too.
        ProbeError: another reason the model cannot be probed.
    """
    plan = build_plan(model, config, graph, flow, require_padding=data is None)
    names = set(plan.generators)
    prober = Prober(model, config.device, config.seed, layers_named(model, names))
    info: dict[str, Any] = {"plan": plan, "records": set(), "prober": prober,
                            "data": data is not None}
    if data is None:
        results = _probe(model, plan, synthesize(plan, config), prober, config, codes, info)
    else:  # real data wins over every convention (SPEC 4): its own masks, sides and labels
        results = []
        seen: set[tuple] = set()
        for batch in read_padding(model, plan, data, config):
            info["data_padded"] = info.get("data_padded", False) or batch.padded
            mask = np.asarray(batch.probe.mask)
            info["data_empty"] = info.get("data_empty", False) or bool(
                mask.ndim >= 2 and (~mask.reshape(mask.shape[0], -1).astype(bool)).all(axis=1).any())
            info.setdefault("data_sides", set()).update(
                side for side, row in zip(batch.probe.sides, batch.probe.mask) if not row.all())
            weights = batch.sample_weight
            covers = (isinstance(weights, np.ndarray) and weights.shape == batch.probe.mask.shape
                      and not ((~batch.probe.mask) & (weights != 0)).any())
            info["weights_cover_padding"] = info.get("weights_cover_padding", True) and covers
            for result in _probe(model, plan, batch.probe, prober, config, codes, info, batch):
                key = (result.code, result.leak.layer, result.leak.path)
                if key not in seen:
                    seen.add(key)
                    results.append(result)
    info["traces"] = prober.traces
    return results, info


def _probe(model: Any, plan: ProbePlan, probe: Any, prober: Prober, config: Any,
           codes: set[str], info: dict[str, Any], batch: Any = None) -> list[DynamicFinding]:
    """Every selected check on one probe batch (synthesized, or one batch of real data)."""
    prep = prepare(model, plan, probe.x, probe.mask, None, "post",
                   extra_masks=tuple(m for _, m in config.mask_inputs), promote=batch is not None)
    sides = probe.sides or infer_sides(prep.mask)
    rows = stack_draws(prep.mask, sides)
    inputs = stacked_inputs(prep, rows, config.seed)
    results: list[DynamicFinding] = []
    atol, rtol = config.atol, config.rtol

    try:
        run = prober.run(inputs, rows)
    except ForwardError as exc:
        recovered = _without_empty(prober, inputs, rows, exc, codes, model)
        if recovered is None:
            results.extend(_raises_with_padding(model, plan, prep, prober, rows, exc, codes, config))
            return results
        finding, run, rows, inputs = recovered
        results.extend([finding] if finding is not None else [])
    info["run"], info["rows"] = run, rows
    output_axes = [o.padded_axes for o in plan.outputs] if len(plan.outputs) == len(run.outputs) else None

    # MC401 (real data) starts from the MC301 measurement, selected or not
    if "MC301" in codes or (batch is not None and "MC401" in codes):
        found = []
        for side in dict.fromkeys(rows.side):
            compare = (rows.draw > 0) & np.array([s == side for s in rows.side])
            leak = output_leak(run, None, rows, compare, rows.base_row, None, None, atol, rtol,
                               output_axes=output_axes)
            if leak is not None:
                found.append(DynamicFinding("MC301", leak, {}))
                found.extend(DynamicFinding("MC301", more, {"after": leak.layer})
                             for more in further_culprits(prober, run, rows, compare, leak,
                                                          atol, rtol))
        for result in _by_layer(found):
            result.fields["movement"] = _movement(prober, run, rows, result.leak)
            results.append(result)
            key = "/".join(result.leak.path) if result.leak.path else result.leak.output
            if key and key not in info.setdefault("profiles", {}):
                info["profiles"][key] = change_profiles(run, rows, result.leak)

    if "MC305" in codes and not any(r.code == "MC305" for r in results):
        found_nf = _nonfinite(run, rows, model)
        if found_nf is not None:
            results.append(found_nf)

    if "MC304" in codes and plan.time_open:
        results.extend(_pad_amount(prober, prep, run, rows, config, output_axes))

    if "MC302" in codes and plan.training_layers:
        results.extend(_cross_sample(prober, inputs, rows, config))

    if codes & {"MC303", "MC203", "MC305"}:
        notes = info.setdefault("notes", [])
        said = len(notes)
        results.extend(loss_checks(model, plan, prep, probe, prober, inputs, run, rows, config, codes,
                                   batch.sample_weight if batch is not None else None, notes))
        # the loss was measured under perturbed padded labels and predictions (for refutation)
        probed = has_loss(model) and len(notes) == said and {"MC303", "MC203"} <= codes
        info["loss_probed"] = info.get("loss_probed", True) and probed
    if batch is not None and codes & set(DATA_CODES):
        results = data_checks(model, plan, prep, batch, prober, run, rows, config, codes,
                              output_axes, results)
    info["records"] = info["records"] | diverging_layers(run, rows, atol, rtol)
    return [r for r in results if r.code in codes]


# --------------------------------------------------------------------------- raising models


def _without_empty(prober: Prober, inputs: Any, rows: Rows, exc: ForwardError, codes: set[str],
                   model: Any) -> tuple[DynamicFinding | None, Run, Rows, Any] | None:
    """When only fully padded samples make the pass raise: MC305 and the pass without them."""
    empty = rows.lengths == 0
    if not empty.any():
        return None
    keep = np.nonzero(~empty)[0]
    rows2 = subset(rows, keep)
    rows2.base_row = np.searchsorted(keep, rows.base_row[keep])
    try:
        run = prober.run(take(inputs, keep), rows2)
    except ForwardError:
        return None
    finding = None
    if "MC305" in codes:
        record = exc.record
        first_empty = int(np.nonzero(empty & (rows.draw == 0))[0][0])
        finding = DynamicFinding("MC305", Leak(
            layer=record.name if record else None, layer_class=record.class_name if record else None,
            path=record.path if record else (model.name,), sample=int(rows.sample[first_empty]),
            position=-1, padding=rows.side[first_empty], max_abs_diff=0.0, output=None),
            {"what": "an exception", "exception": exc.exception})
    return finding, run, rows2, take(inputs, keep)


def _raises_with_padding(model: Any, plan: ProbePlan, prep: Prepared, prober: Prober, rows: Rows,
                         exc: ForwardError, codes: set[str], config: Any) -> list[DynamicFinding]:
    """SPEC 9: raising on padded batches but not on an unpadded one is MC103 at the layer
    whose mask stopped lining up (or the one that raised); raising on both is a bad target."""
    unpadded_error = prober.eager_error(unpadded_inputs(prep, config.seed), unmasked=True)
    if unpadded_error is not None:
        raise ModelRaises(f"{exc} (it raises on an unpadded batch too)")
    prober.eager_error(prep.pack(prep.flat), diagnose=True)
    mismatch = prober.tracer.mismatch
    record = mismatch[0] if mismatch else exc.record
    detail = (mismatch[1] if mismatch else
              "the forward pass raises once padding or a mask is present")
    if "MC103" not in codes:
        return []
    source = next((s.generator or s.name for s in prep.specs if s.role in ("data", "mask")
                   and (s.generator or s.role == "mask")), plan.inputs[0].name)
    r = int(np.argmin(rows.lengths[rows.draw == 0]))
    leak = Leak(layer=record.name if record else None,
                layer_class=record.class_name if record else None,
                path=record.path if record else (model.name,), sample=int(rows.sample[r]),
                position=-1, padding=rows.side[r], max_abs_diff=float("nan"), output=None)
    fields = {"exception": exc.exception, "detail": f"{detail} ({exc.exception})",
              "source": source}
    if exc.record is not None and record is not None and exc.record.name != record.name:
        fields["raised_in"] = exc.record.name
    return [DynamicFinding("MC103", leak, fields)]


# --------------------------------------------------------------------------- outputs


def _movement(prober: Prober, run: Run, rows: Rows, leak: Leak) -> str | None:
    """For a leak that starts in a custom layer: does the layer mix positions, move them
    (reverse, shift) or resample the axis? Perturbs one valid position of a full-length
    sample at the layer's input and sees which output positions answer."""
    record = next((r for r in run.records if r.path == leak.path), None)
    layer = next((l for l in prober.tracer.layers if l.name == leak.layer), None)
    if record is None or layer is None or type(layer).__module__.startswith("keras."):
        return None
    ins, outs = run.io(record)
    if len(ins) != 1 or not outs or ins[0].ndim < 2 or outs[0].ndim < 2:
        return None
    t = rows.mask.shape[1]
    if ins[0].shape[1] == t and outs[0].shape[1] != t:
        return "resamples"
    full = np.nonzero((rows.draw == 0) & (rows.lengths == t))[0]
    if not len(full) or ins[0].shape[1] != t:
        return None
    x = ins[0][full[:1]]
    mask = rows.mask[full[:1]]
    changed = x.copy()
    changed[:, 0] = changed[:, 0] + 1.0 + np.abs(changed[:, 0])
    try:
        import inspect

        takes_mask = "mask" in inspect.signature(layer.call).parameters
        kwargs = {"mask": mask} if takes_mask else {}
        a = np.asarray(layer(x, **kwargs))
        b = np.asarray(layer(changed, **kwargs))
    except Exception:  # the user's layer may raise anything on its own
        return None
    if a.ndim < 2 or a.shape != b.shape:
        return None
    moved = np.abs(a - b).reshape(a.shape[0], a.shape[1], -1).max(axis=(0, 2)) > 1e-6
    answered = np.nonzero(moved)[0]
    if len(answered) == 1 and answered[0] != 0:
        return "moves"
    if len(answered) > 1:
        return "mixes"
    return None


#: At most this many layers after the first culprit are probed on their own (per side).
_MAX_LOCAL_PROBES = 24


def further_culprits(prober: Prober, run: Run, rows: Rows, compare: Any, first: Leak,
                     atol: float, rtol: float) -> list[Leak]:
    """Every other layer that mixes padding into valid positions, not only the first.

    Behind the first culprit the valid region already differs, so a later layer
    cannot be judged by the stacked pass. A later call whose valid outputs diverge
    while its inputs do not is a culprit of its own (a parallel branch); a later call
    whose inputs diverge too is probed alone: its recorded unperturbed input, with
    padded positions changed, must give the same valid outputs. Only calls that use no
    mask and whose input padding really varied in the probes (not zeros or values the
    model computed) are probed alone, so fixing the first culprit would leave each
    one found here leaking.
    """
    base = np.nonzero((rows.draw == 0) & (rows.lengths > 0) & np.array(
        [s == first.padding for s in rows.side]))[0]
    base = base[~rows.mask[base].reshape(len(base), -1).all(axis=1)]  # padded samples only
    compare = compare & (rows.lengths > 0)
    if not len(base) or not compare.any():
        return []
    layers = {id(layer): layer for layer in prober.tracer.layers}
    found: list[Leak] = []
    claimed = [first.path]
    probes = 0

    def diverges(arrays: list[Any]) -> Any:
        for a in arrays:
            if a.ndim == 0 or a.shape[0] != rows.n:
                continue
            valid = valid_region(a.shape, rows.mask) & expand(compare, a.ndim)
            div = diverge(a, a[rows.base_row], valid, atol, rtol)
            if div.rows.any():
                return div
        return None

    for record in run.records:
        if any(record.path == p[:len(record.path)] or p == record.path[:len(p)] for p in claimed):
            continue  # the culprit itself, a layer inside it, or one that contains it
        ins, outs = run.io(record)
        out_div = diverges(outs)
        if out_div is None:
            continue
        if diverges(ins) is None:  # its own leak, on a branch the first culprit does not feed
            r = int(np.argmax(np.where(out_div.rows, out_div.diff, -1.0)))
            leak = Leak(record.name, record.class_name, record.path, int(rows.sample[r]),
                        int(out_div.position[r]), rows.side[r], round_sig(float(out_div.diff[r])),
                        None)
        elif (probes >= _MAX_LOCAL_PROBES or record.layer_id not in layers
              or (record.masked and "mask" in _call_args(layers[record.layer_id]))):
            continue  # a layer that uses the mask it got cannot be probed without it
        else:
            probes += 1
            leak = _local_leak(layers[record.layer_id], record, ins, rows, base, compare,
                               atol, rtol)
        if leak is not None:
            found.append(leak)
            claimed.append(record.path)
    return found


def _local_leak(layer: Any, record: Any, ins: list[Any], rows: Rows, base: Any, compare: Any,
                atol: float, rtol: float) -> Leak | None:
    """Call `layer` alone on its recorded unperturbed input with padded positions changed."""
    import tensorflow as tf

    t = rows.mask.shape[1]
    if len(ins) != 1 or ins[0].ndim < 2 or ins[0].shape[0] != rows.n or ins[0].shape[1] != t \
            or not np.issubdtype(ins[0].dtype, np.floating):
        return None
    x = ins[0][base]
    mask = rows.mask[base]
    valid_in = expand(mask, x.ndim)
    # did the probes' perturbation reach this input's padding? (zeros or values computed
    # from valid steps are padding that holds no padded values)
    drawn = np.nonzero(compare & np.isin(rows.base_row, base))[0]
    inputs_drawn = ins[0][drawn]
    reached = (inputs_drawn != ins[0][rows.base_row[drawn]]) & ~expand(rows.mask[drawn], x.ndim)
    if not reached.any():
        return None
    rng = np.random.default_rng([7, t])
    try:
        reference = np.asarray(layer(tf.constant(x), training=False)
                               if "training" in _call_args(layer) else layer(tf.constant(x)))
        worst = None
        for scale in (1.0, 100.0):
            noise = rng.standard_normal(x.shape).astype(x.dtype) * scale
            changed = np.where(valid_in, x, x + noise)
            out = layer(tf.constant(changed), training=False) if "training" in _call_args(layer) \
                else layer(tf.constant(changed))
            out = np.asarray(out)
            if out.shape != reference.shape:
                return None
            div = diverge(out, reference, valid_region(out.shape, mask), atol, rtol)
            if div.rows.any():
                r = int(np.argmax(np.where(div.rows, div.diff, -1.0)))
                if worst is None or div.diff[r] > worst[0]:
                    worst = (float(div.diff[r]), r, int(div.position[r]))
    except Exception:  # the user's layer may raise anything when called on its own
        return None
    if worst is None:
        return None
    diff, r, position = worst
    timed = reference.ndim >= 2 and reference.shape[1] == t
    return Leak(record.name, record.class_name, record.path, int(rows.sample[base[r]]),
                position if timed else -1, rows.side[base[r]], round_sig(diff), None)


def _call_args(layer: Any) -> tuple[str, ...]:
    import inspect

    try:
        return tuple(inspect.signature(layer.call).parameters)
    except (TypeError, ValueError, AttributeError):
        return ()


def _nonfinite(run: Run, rows: Rows, model: Any) -> DynamicFinding | None:
    empty = (rows.lengths == 0) & (rows.draw == 0)
    others = (rows.lengths > 0) & (rows.draw == 0)
    if not empty.any():
        return None
    for out, name in zip(run.outputs, run.output_names):
        if out.ndim == 0 or out.shape[0] != rows.n or not np.issubdtype(out.dtype, np.floating):
            continue
        bad = ~np.isfinite(out[empty]).reshape(int(empty.sum()), -1).all(axis=1)
        if not bad.any():
            continue
        r = int(np.nonzero(empty)[0][int(np.argmax(bad))])
        record = _first_nonfinite_record(run, empty, others)
        return DynamicFinding("MC305", Leak(
            layer=record.name if record else None, layer_class=record.class_name if record else None,
            path=record.path if record else (model.name,), sample=int(rows.sample[r]), position=-1,
            padding=rows.side[r], max_abs_diff=float("nan"), output=name), {"what": "NaN or Inf outputs"})
    return None


def _first_nonfinite_record(run: Run, rows_sel: Any, _others: Any) -> Any:
    def bad(arrays: list[Any]) -> bool:
        for a in arrays:
            if a.ndim and a.shape[0] == len(rows_sel) and np.issubdtype(a.dtype, np.floating):
                if not np.isfinite(a[rows_sel]).all():
                    return True
        return False

    for record in run.records:
        ins, outs = run.io(record)
        if bad(outs) and not bad(ins):
            return record
    return None


def _pad_amount(prober: Prober, prep: Prepared, run: Run, rows: Rows, config: Any,
                output_axes: Any) -> list[DynamicFinding]:
    """MC304: the base samples with `extra` more padded steps, aligned and compared."""
    base = np.nonzero(rows.draw == 0)[0]
    if rows.mask.ndim != 2:
        return []
    t = rows.mask.shape[1]
    extra = max(2, t // 2)
    sides = [rows.side[i] for i in base]
    pre = np.array([s == "pre" for s in sides])
    samples = rows.sample[base]
    grown, gmask = grown_inputs(prep, samples, sides, extra)
    grows = stack_draws(gmask, sides, draws=())
    try:
        big = prober.run(grown, grows, hooks=False)
    except ProbeError:
        return []

    def align(a: Any) -> Any:
        if a.ndim < 2 or a.shape[0] != len(base):
            return a
        for axis in range(1, a.ndim):
            if a.shape[axis] == t + extra:
                post_part = np.take(a, np.arange(t), axis=axis)
                pre_part = np.take(a, np.arange(extra, t + extra), axis=axis)
                a = np.where(expand(pre, a.ndim), pre_part, post_part)
        return a

    aligned = Run([align(o) for o in big.outputs], big.output_names, big.output_masked,
                  big.records, [align(v) for v in big.tensors])
    small = Run([o[base] if o.ndim and o.shape[0] == rows.n else o for o in run.outputs],
                run.output_names, run.output_masked, run.records,
                [v[base] if v.ndim and v.shape[0] == rows.n else v for v in run.tensors])
    sub = Rows(rows.mask[base], np.arange(len(base)), samples, sides, np.zeros(len(base), int),
               rows.scale[base], rows.shuffle[base], rows.lengths[base])
    if len(aligned.records) != len(small.records):
        aligned.records, aligned.tensors = [], []
    # A layer that changes the padded length (a "valid" or strided convolution) leaves
    # tensors that extra padding cannot be cut back from; they are not compared (the
    # small run's own values stand in), so the first comparable layer after them decides.
    aligned.outputs = _comparable(aligned.outputs, small.outputs)
    if aligned.tensors:
        aligned.tensors = _comparable(aligned.tensors, small.tensors)
    results = []
    for side in dict.fromkeys(sides):
        compare = np.array([s == side for s in sides])
        leak = output_leak(aligned, small, sub, compare, np.arange(len(base)), None, None,
                           config.atol, config.rtol, output_axes=output_axes)
        if leak is not None:
            results.append(DynamicFinding("MC304", leak, {"extra": extra}))
    return _by_layer(results)


def _comparable(grown: list[Any], small: list[Any]) -> list[Any]:
    return [g if getattr(g, "shape", None) == getattr(t, "shape", None) else t
            for g, t in zip(grown, small)]


def _cross_sample(prober: Prober, inputs: Any, rows: Rows, config: Any) -> list[DynamicFinding]:
    """MC302: in training mode, perturb one sample's padding, compare the others.

    Both sides and both variants (reference, one sample's padding changed)
    run as separate batches of the training program (one trace)."""
    results: list[DynamicFinding] = []
    for side in dict.fromkeys(rows.side):
        base = np.nonzero((rows.draw == 0) & np.array([s == side for s in rows.side]))[0]
        if len(base) < 2:
            continue
        lengths = rows.lengths[base]
        other = int(base[int(np.argmin(lengths))])
        large = np.nonzero((rows.draw == 2) & (rows.sample == rows.sample[other])
                           & np.array([s == side for s in rows.side]))[0]
        if not len(large) or lengths.min() == rows.mask[base[0]].size:
            continue
        # The unperturbed copy of the changed sample rides along in both batches (last
        # row), so the changed row's masks are pinned to it like everywhere else; it is
        # never compared.
        idx = np.append(base, other)
        swapped = np.append(np.where(base == other, large[0], base), other)
        ref_rows = subset(rows, idx)
        new_rows = subset(rows, swapped)
        try:
            ref = prober.run(take(inputs, idx), ref_rows, training=True)
            new = prober.run(take(inputs, swapped), new_rows, training=True)
        except ProbeError:
            continue
        compare = np.array([i != other for i in idx])
        new_rows.base_row = np.arange(len(idx))
        new_rows.sample = rows.sample[idx]
        leak = output_leak(new, ref, new_rows, compare, np.arange(len(idx)), None, side,
                           config.atol, config.rtol)
        if leak is not None:
            results.append(DynamicFinding("MC302", leak, {"other": int(rows.sample[other])}))
    return _by_layer(results)


def change_profiles(run: Run, rows: Rows, leak: Leak) -> list[dict[str, Any]]:
    """Per padding side probed: |change| at each position of the leaking sample, at the
    output of the layer where the leak starts, with which positions are valid.

    The HTML report plots these (post and pre side by side). Each position holds the
    largest change over the other axes and over the sample's perturbed draws; values
    are rounded to 4 significant digits so the report stays byte-stable. Empty when
    the padding is not along one axis or that layer's output has no such axis.
    """
    if rows.mask.ndim != 2:
        return []
    length = rows.mask.shape[1]
    record = next((r for r in run.records if r.path == leak.path and r.name == leak.layer), None)
    if record is not None:
        arrays = run.io(record)[1]
    else:  # the leak is the model's own (no single layer): its output
        arrays = [o for o, n in zip(run.outputs, run.output_names) if n == leak.output]
    array = next((a for a in arrays if a.ndim >= 2 and a.shape[0] == rows.n
                  and a.shape[1] == length), None)
    if array is None:
        return []
    def profile(sample: int) -> tuple[Any, Any] | None:
        chosen = [i for i in range(rows.n) if rows.sample[i] == sample and rows.draw[i] > 0]
        if not chosen:
            return None
        new = array[chosen].astype(np.float64)
        ref = array[rows.base_row[chosen]].astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(new - ref).reshape(len(chosen), length, -1)
        return np.where(np.isnan(diff), np.inf, diff).max(axis=(0, 2)), rows.mask[chosen[0]]

    base = rows.draw == 0
    length_of = {int(rows.sample[i]): int(rows.lengths[i]) for i in np.nonzero(base)[0]}
    side_of = {int(rows.sample[i]): rows.side[i] for i in np.nonzero(base)[0]}
    profiles = []
    for side in dict.fromkeys(rows.side):
        if side == leak.padding:
            sample = int(leak.sample)
        else:  # the other side's sample of the same length (else its largest valid change)
            same = [s for s in sorted(side_of) if side_of[s] == side
                    and length_of[s] == length_of.get(int(leak.sample))]
            if same:
                sample = same[0]
            else:
                scored = [(float(np.max(np.where(p[1], p[0], 0.0))), -s, s) for s in sorted(side_of)
                          if side_of[s] == side and length_of[s] > 0 and (p := profile(s)) is not None]
                if not scored:
                    continue
                sample = max(scored)[2]
        found = profile(sample)
        if found is None:
            continue
        diff, valid = found
        profiles.append({
            "padding": side, "sample": sample,
            "valid": [int(v) for v in valid],
            "change": [_plot_value(v) for v in diff],
        })
    profiles.sort(key=lambda p: p["padding"] != "post")  # post first, then pre
    return profiles


def _plot_value(value: float) -> float | None:
    """4 significant digits; None (JSON null) for a non-finite change."""
    if not np.isfinite(value):
        return None
    return float(f"{value:.4g}")


def _by_layer(results: list[DynamicFinding]) -> list[DynamicFinding]:
    """One result per (rule, layer): the largest change, with every side that leaked in `sides`."""
    merged: dict[tuple, DynamicFinding] = {}
    sides: dict[tuple, list[str]] = {}
    for r in results:
        key = (r.code, r.leak.layer, r.leak.path)
        sides.setdefault(key, [])
        if r.leak.padding not in sides[key]:
            sides[key].append(r.leak.padding)
        if key not in merged or r.leak.max_abs_diff > merged[key].leak.max_abs_diff:
            merged[key] = r
    for key, r in merged.items():
        r.fields = {**r.fields, "sides": sorted(sides[key])}
    return list(merged.values())


# --------------------------------------------------------------------------- loss


def loss_checks(model: Any, plan: ProbePlan, prep: Prepared, probe: Any, prober: Prober,
                 inputs: Any, run: Run, rows: Rows, config: Any,
                 codes: set[str], sample_weight: Any = None,
                 notes: list[str] | None = None) -> list[DynamicFinding]:
    """MC303 / MC203 / MC305 (loss) from one loss program over the stacked batch.

    `sample_weight` (the data's own, one row per probe sample) weights the loss as in
    `fit`: padded labels that carry weight 0 are not counted. A compiled loss that
    raises on the model's own masked outputs and computes once their masks are
    dropped cannot train the model: MC103 at that output (the mask does not line up
    with the loss it weights, as a per-sequence CTC loss under a (batch, time) mask).
    A loss the probes cannot drive at all (it raises on every label form they make)
    is said in `notes`, never raised."""
    import keras

    custom_step = overrides_train_step(model) and getattr(model, "optimizer", None) is not None
    if not has_loss(model) and not custom_step:
        return []
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
    found: list[DynamicFinding] = []
    errors: list[str] = []
    measured = False
    fallback: list[DynamicFinding] | None = None
    if has_loss(model):
        # the data's weights as fit applies them; weights the loss cannot take (MC403 says
        # why) leave the loss unweighted rather than unprobed
        tries = [(y, w) for y in candidates for w in ([weights, None] if weights is not None
                                                       else [None])]
        for y_base, w in tries:
            try:
                found = _loss_program_checks(model, plan, prober, inputs, run, rows, y_base,
                                             config, codes, w)
                measured = True
                break
            except LabelsReadPadding:
                fallback = [] if fallback is None else fallback
            except ProbeError as exc:
                errors.append(str(exc))
            except Exception as exc:  # labels the probes made that this loss cannot take
                errors.append(f"computing the loss raises: {one_line(exc)}")
    if not measured and fallback is not None:
        measured, found = True, fallback
    if not measured and has_loss(model) and errors:
        raising = _loss_raises_on_masks(model, plan, prep, run, rows, candidates, weights, inputs)
        if raising is not None:
            return [raising] if "MC103" in codes else []
        given = "the data's labels" if probe.y is not None else "every label form the probes make"
        notes.append(f"not probed: the loss cannot be computed on {given} ({errors[0]}); "
                     "pass real labels (--data) to probe it")
    if not found and custom_step and codes & {"MC303", "MC203"}:
        for y_base in candidates:
            try:
                found = _train_step_check(model, plan, prep, prober, rows, y_base, config, codes)
                break
            except ProbeError:
                continue
    return found


def _loss_raises_on_masks(model: Any, plan: ProbePlan, prep: Prepared, run: Run, rows: Rows,
                          candidates: list[Any], weights: Any, inputs: Any) -> DynamicFinding | None:
    """MC103 when `compute_loss` raises on the base batch's masked predictions and computes
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
            return DynamicFinding("MC103", leak, {
                "exception": error, "loss": _loss_name(model), "source": source,
                "detail": f"the compiled loss {_loss_name(model)!r} raises on the output's mask "
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
    empty_check: int | None  # the group holding fully padded samples (MC305), if any


def measure_losses(model: Any, plan: ProbePlan, prober: Prober, inputs: Any, run: Run,
                   rows: Rows, y_base: Any, config: Any, codes: set[str],
                   sample_weight: Any = None) -> LossMeasure | None:
    """Run the loss program over the stacked batch: group 0 is the base batch (its samples
    that are not fully padded), then one group per output whose padded labels change, one
    for every perturbed input draw, and one with the fully padded samples.

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
    if "MC305" in codes and (rows.lengths[base_all] == 0).any():
        empty_check = len(groups)
        groups.append(LossGroup(tuple(int(i) for i in base_all), 0, "empty"))
    # the gradient difference sums the input variants only: a changed label pad may move the
    # loss of a loss that reads it (CTC label lengths), and padded labels move the loss first
    weights = {g: 1.0 + 0.37 * n for n, g in enumerate(g for g in sorted(base_of)
                                                         if what[g][0] == "inputs")}
    gradients = bool(plan.gradient_code) or not plan.has_graph
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


def _loss_program_checks(model: Any, plan: ProbePlan, prober: Prober, inputs: Any, run: Run,
                         rows: Rows, y_base: Any, config: Any, codes: set[str],
                         sample_weight: Any = None) -> list[DynamicFinding]:
    measured = measure_losses(model, plan, prober, inputs, run, rows, y_base, config, codes,
                              sample_weight)
    if measured is None:
        return []
    result, groups, base_of, what = measured.result, measured.groups, measured.base_of, measured.what
    weights, empty_check = measured.weights, measured.empty_check
    found: list[DynamicFinding] = []
    losses = result.losses
    if codes & {"MC303", "MC203"}:
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
            code = "MC203" if part == "labels" and masked else "MC303"
            if code in codes:
                loss_diff = abs(losses[g] - losses[base_of[g]])
                found.append(DynamicFinding(code, _loss_leak(model, run, rows, groups[g], j,
                                                             kind, diff),
                                            {"what": part, "loss_diff": round_sig(loss_diff),
                                             "loss": _loss_name(model)}))
    if empty_check is not None and not np.isfinite(losses[empty_check]) and np.isfinite(losses[0]):
        empty_rows = [i for i in groups[empty_check].rows if rows.lengths[i] == 0]
        r = empty_rows[0]
        layer, cls, path = output_layer(model, 0)
        name = run.output_names[0] if run.output_names else None
        found.append(DynamicFinding("MC305", Leak(layer=layer, layer_class=cls, path=path,
                                                  sample=int(rows.sample[r]), position=-1,
                                                  padding=rows.side[r], max_abs_diff=float("nan"),
                                                  output=name, kind="loss"),
                                    {"what": "a NaN or Inf loss"}))
    return found


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
                      y_base: Any, config: Any, codes: set[str]) -> list[DynamicFinding]:
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
        return []
    loss0 = run_train_step(model, prober, x, keras.tree.pack_sequence_as(y_base, y_flat))
    loss1 = run_train_step(model, prober, x, keras.tree.pack_sequence_as(y_base, changed))
    diff = abs(loss1 - loss0) if np.isfinite(loss1) else float("inf")
    if diff <= loss_tolerance(loss0, config.atol, config.rtol) or "MC203" not in codes:
        return []
    layer, cls, path = output_layer(model, 0)
    pad_rows = np.nonzero(~mask.reshape(len(keep), -1).all(axis=1))[0]
    r = int(pad_rows[0]) if len(pad_rows) else 0
    pads = np.nonzero(~mask[r].reshape(mask.shape[1], -1).all(axis=1))[0]
    leak = Leak(layer=layer, layer_class=cls, path=path, sample=int(keep[r]),
                position=int(pads[0]) if len(pads) else -1, padding=rows.side[int(base[r])],
                max_abs_diff=round_sig(diff), output=None, kind="loss")
    return [DynamicFinding("MC203", leak, {"what": "labels", "loss_diff": round_sig(diff),
                                           "loss": f"{type(model).__name__}.train_step"})]


def _loss_name(model: Any) -> str:
    loss = getattr(model, "loss", None)
    if loss is None:
        return f"{type(model).__name__}.compute_loss"
    if isinstance(loss, str):
        return loss
    return getattr(loss, "name", None) or type(loss).__name__


# --------------------------------------------------------------------------- findings


def to_finding(rule: Any, result: DynamicFinding) -> Finding:
    """A dynamic Finding with SPEC 6 evidence (padding, max_abs_diff, sample, position, output)."""
    leak = result.leak
    layer = leak.layer or leak.output
    evidence: dict[str, Any] = {
        "padding": leak.padding,
        "max_abs_diff": None if leak.max_abs_diff != leak.max_abs_diff else round_sig(leak.max_abs_diff),
        "sample": leak.sample,
        "position": leak.position if leak.position >= 0 else None,
        "output": leak.output,
    }
    for key, value in result.fields.items():
        if key in ("detail", "source", "hint") or value is None:
            continue
        evidence[key] = round_sig(value) if isinstance(value, float) else value
    hint = rule.hint(layer, leak.layer_class) if hasattr(rule, "hint") else ""
    values = {"layer": layer, "layer_class": leak.layer_class, "max_abs_diff": leak.max_abs_diff,
              "sample": leak.sample, "padding": leak.padding, "other": "?", "extra": "?",
              "what": "values", "loss_diff": 0.0, "loss": "?", "source": "?", "detail": "?",
              "hint": hint, "reason": "mixes values along the padded axis", **result.fields}
    if rule.code == "MC303":
        values["what"] = {"labels": "labels", "inputs": "inputs",
                          "frames": "frames (output steps)"}.get(result.fields.get("what"), "values")
    return Finding(rule=rule.code, name=rule.name, severity=rule.severity, kind=("dynamic",),
                   layer=layer, layer_class=leak.layer_class,
                   path=leak.path or (layer,) if layer else leak.path,
                   message=rule.message.format(**values), fix=rule.fix.format(**values),
                   evidence=evidence)
