"""The inference program's measurements, one stacked forward pass with taps on every call.

One pass over the stacked batch (both sides, every perturbation draw) serves the
padding leaks and their localization (every culprit, how a custom layer moves
positions, the change profiles the HTML report plots), the non-finite outputs of
fully padded samples, and a model that raises once padding is present; the pad
amount reuses the same program at a longer length (the signature leaves the
padded axis open, so no new trace). Each function returns `Measured` values; the
rules' checks name them. Imports plan, batches, program and compare.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskcheck.dynamic.batches import (Prepared, Rows, grown_inputs, stack_draws, subset, take,
                                       unpadded_inputs)
from maskcheck.dynamic.compare import (Leak, Measured, by_layer, diverge, expand, output_leak,
                                       round_sig, valid_region)
from maskcheck.dynamic.plan import ProbeError, ProbePlan
from maskcheck.dynamic.program import ForwardError, Prober, Run


class ModelRaises(ProbeError):
    """The forward pass raises on an unpadded batch too: a bad target (SPEC 9)."""


class Inconclusive(ProbeError):
    """The probes cannot measure this model (SPEC 9, inconclusive is not clean): its outputs
    on an ordinary unpadded batch are not finite, or the same batch twice gives different
    outputs (the forward pass depends on state kept between calls)."""


# --------------------------------------------------------------------------- measurable


def check_measurable(prober: Prober, prep: Prepared, config: Any) -> None:
    """Run the unpadded batch (every position valid, explicit masks all ones) twice: the
    probes compare outputs, so those must be finite and the same each time.

    Decided from the outputs alone. A model that raises on this batch is left to the
    probe pass (SPEC 9 has its own verdict for it).

    Raises:
        Inconclusive: an output is NaN or Inf, or the second pass differs from the first.
    """
    import numpy as np

    from maskcheck.dynamic.batches import unpadded_inputs

    inputs = unpadded_inputs(prep, config.seed)
    rows = stack_draws(np.ones_like(prep.mask, dtype=bool), ["post"] * prep.mask.shape[0], draws=())
    try:
        first = prober.run(inputs, rows, hooks=False)
        second = prober.run(inputs, rows, hooks=False)
    except ProbeError:
        return
    batched = [(name, a, b) for name, a, b in zip(first.output_names, first.outputs, second.outputs)
               if getattr(a, "ndim", 0) and np.issubdtype(a.dtype, np.floating)]
    for name, a, _ in batched:
        bad = ~np.isfinite(a)
        if bad.any():
            record = first_nonfinite_record(first, np.ones(rows.n, dtype=bool), None)
            where = (f", first at layer {record.name!r} ({record.class_name})"
                     if record is not None else "")
            what = "NaN" if np.isnan(a[bad]).all() else "Inf" if np.isinf(a[bad]).all() else "NaN or Inf"
            raise Inconclusive(
                f"output {name!r} is {what} on an unpadded batch ({int(bad.sum())} of {a.size} "
                f"values{where}), so padding cannot be measured; check the weights and inputs "
                "of that layer for NaN or Inf")
    for name, a, b in batched:
        if a.shape != b.shape or not np.allclose(a, b, atol=config.atol, rtol=config.rtol):
            diff = (float(np.max(np.abs(a.astype(np.float64) - b))) if a.shape == b.shape
                    else float("nan"))
            stateful = ", ".join(layer.name for layer in prober.stateful)
            cause = (f" (stateful layers reset before each pass: {stateful})" if stateful else "")
            raise Inconclusive(
                f"output {name!r} changes by up to {round_sig(diff)} when the same unpadded batch "
                f"runs twice{cause}: the forward pass depends on state kept between calls, so "
                "padding cannot be measured; make the model reset that state (or not keep it) "
                "for the check")


def nonfinite_unpadded(run: Run, rows: Rows) -> str | None:
    """What is non-finite in the outputs of the batch's own unpadded samples (base rows of
    full length), or None: a pass the caller made anyway, so this costs no forward pass."""
    import numpy as np

    full = np.nonzero((rows.draw == 0) & (rows.lengths == rows.mask.shape[1]))[0]
    for name, out in zip(run.output_names, run.outputs):
        if (not len(full) or not getattr(out, "ndim", 0) or out.shape[0] != rows.n
                or not np.issubdtype(out.dtype, np.floating)):
            continue
        bad = ~np.isfinite(out[full]).reshape(len(full), -1).all(axis=1)
        if bad.any():
            return (f"output {name!r} is NaN or Inf for unpadded sample "
                    f"{int(rows.sample[full[int(np.argmax(bad))]])}, so padding cannot be measured; "
                    "check the model's weights and that sample's values for NaN or Inf")
    return None


# --------------------------------------------------------------------------- raising models


def without_empty(prober: Prober, inputs: Any, rows: Rows, exc: ForwardError,
                  model: Any) -> tuple[Measured, Run, Rows, Any] | None:
    """When only fully padded samples make the pass raise: where it raised, and the pass
    without them (rows and inputs without the empty samples)."""
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
    record = exc.record
    first_empty = int(np.nonzero(empty & (rows.draw == 0))[0][0])
    raised = Measured(Leak(
        layer=record.name if record else None, layer_class=record.class_name if record else None,
        path=record.path if record else (model.name,), sample=int(rows.sample[first_empty]),
        position=-1, padding=rows.side[first_empty], max_abs_diff=0.0, output=None),
        {"what": "an exception", "exception": exc.exception})
    return raised, run, rows2, take(inputs, keep)


def raise_if_unpadded_raises(prober: Prober, prep: Prepared, exc: ForwardError, seed: int) -> None:
    """SPEC 9: a model that raises on an unpadded batch too is a bad target.

    Raises:
        ModelRaises: it does.
    """
    if prober.eager_error(unpadded_inputs(prep, seed), unmasked=True) is not None:
        raise ModelRaises(f"{exc} (it raises on an unpadded batch too)")


def mask_mismatch(model: Any, plan: ProbePlan, prep: Prepared, prober: Prober, rows: Rows,
                  exc: ForwardError) -> Measured:
    """A model that raises on padded batches and not on an unpadded one: the layer whose
    mask stopped lining up (diagnosed eagerly), or the one that raised."""
    prober.eager_error(prep.pack(prep.flat), diagnose=True)
    mismatch = prober.tracer.mismatch
    record = mismatch[0] if mismatch else exc.record
    detail = (mismatch[1] if mismatch else
              "the forward pass raises once padding or a mask is present")
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
    return Measured(leak, fields)


# --------------------------------------------------------------------------- outputs


def padding_leaks(prober: Prober, run: Run, rows: Rows, output_axes: Any, atol: float,
                  rtol: float) -> tuple[list[Measured], dict[str, Any]]:
    """Per side: the largest change of a valid output when only padded values change,
    localized to its first culprit, and every further culprit (``after``), one per layer
    with how a custom culprit moves positions (``movement``); plus the change profiles of
    each leaking layer (by layer path, for the HTML report)."""
    found = []
    for side in dict.fromkeys(rows.side):
        compare = (rows.draw > 0) & np.array([s == side for s in rows.side])
        leak = output_leak(run, None, rows, compare, rows.base_row, None, None, atol, rtol,
                           output_axes=output_axes)
        if leak is not None:
            found.append(Measured(leak, {}))
            found.extend(Measured(more, {"after": leak.layer})
                         for more in further_culprits(prober, run, rows, compare, leak,
                                                      atol, rtol))
    results = by_layer(found)
    profiles: dict[str, Any] = {}
    for result in results:
        result.fields["movement"] = movement(prober, run, rows, result.leak)
        key = "/".join(result.leak.path) if result.leak.path else result.leak.output
        if key and key not in profiles:
            profiles[key] = change_profiles(run, rows, result.leak)
    return results, profiles


def movement(prober: Prober, run: Run, rows: Rows, leak: Leak) -> str | None:
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
MAX_LOCAL_PROBES = 24


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
            div = diverge(a, a, valid, atol, rtol, ref_rows=rows.base_row)
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
        elif (probes >= MAX_LOCAL_PROBES or record.layer_id not in layers
              or (record.masked and "mask" in call_args(layers[record.layer_id]))):
            continue  # a layer that uses the mask it got cannot be probed without it
        else:
            probes += 1
            leak = local_leak(layers[record.layer_id], record, ins, rows, base, compare,
                               atol, rtol)
        if leak is not None:
            found.append(leak)
            claimed.append(record.path)
    return found


def local_leak(layer: Any, record: Any, ins: list[Any], rows: Rows, base: Any, compare: Any,
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
                               if "training" in call_args(layer) else layer(tf.constant(x)))
        worst = None
        for scale in (1.0, 100.0):
            noise = rng.standard_normal(x.shape).astype(x.dtype) * scale
            changed = np.where(valid_in, x, x + noise)
            out = layer(tf.constant(changed), training=False) if "training" in call_args(layer) \
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


def call_args(layer: Any) -> tuple[str, ...]:
    import inspect

    try:
        return tuple(inspect.signature(layer.call).parameters)
    except (TypeError, ValueError, AttributeError):
        return ()



def nonfinite(run: Run, rows: Rows, model: Any) -> Measured | None:
    """Non-finite outputs of a fully padded sample, at the first layer that makes them."""
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
        record = first_nonfinite_record(run, empty, others)
        return Measured(Leak(
            layer=record.name if record else None, layer_class=record.class_name if record else None,
            path=record.path if record else (model.name,), sample=int(rows.sample[r]), position=-1,
            padding=rows.side[r], max_abs_diff=float("nan"), output=name), {"what": "NaN or Inf outputs"})
    return None


def first_nonfinite_record(run: Run, rows_sel: Any, _others: Any) -> Any:
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


def pad_amount(prober: Prober, prep: Prepared, run: Run, rows: Rows, config: Any,
               output_axes: Any) -> list[Measured]:
    """The base samples with `extra` more padded steps, aligned and compared: valid
    outputs that change with the amount of padding, one per layer."""
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
    aligned.outputs = comparable(aligned.outputs, small.outputs)
    if aligned.tensors:
        aligned.tensors = comparable(aligned.tensors, small.tensors)
    results = []
    for side in dict.fromkeys(sides):
        compare = np.array([s == side for s in sides])
        leak = output_leak(aligned, small, sub, compare, np.arange(len(base)), None, None,
                           config.atol, config.rtol, output_axes=output_axes)
        if leak is not None:
            results.append(Measured(leak, {"extra": extra}))
    return by_layer(results)


def comparable(grown: list[Any], small: list[Any]) -> list[Any]:
    return [g if getattr(g, "shape", None) == getattr(t, "shape", None) else t
            for g, t in zip(grown, small)]


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
            "change": [plot_value(v) for v in diff],
        })
    profiles.sort(key=lambda p: p["padding"] != "post")  # post first, then pre
    return profiles


def plot_value(value: float) -> float | None:
    """4 significant digits; None (JSON null) for a non-finite change."""
    if not np.isfinite(value):
        return None
    return float(f"{value:.4g}")


