"""The dynamic engine: synthesize probe batches, run the checks, build findings.

`run_dynamic(model, data, config, codes)` returns the dynamic findings
(MC301-MC305, MC203) of one model. Probe batches come from the padding
sources of SPEC 4 in order of precedence: probe data (`--data` npz or a
factory's data), explicit mask inputs, mask generators, None-length axes,
`--padded`. Synthesized batches hold, per padding side, samples of lengths
full, half, 1 and 0 (more lengths when --batch-size asks for more); integer
inputs get ids below the input_dim of the Embedding reading them.

All inference-mode perturbations (natural-scale noise, large values, the
batch's values shuffled; both sides) are stacked along the batch axis and
run in one pass of one compiled function that also returns every layer
call's tensors, so localization needs no second run. Extra passes: one with
more padding (MC304), two per side in training mode when the model has a
layer whose training behaviour can mix samples (MC302), and a few loss and
gradient passes when the model has a loss (MC303, MC203).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskcheck.finding import Finding
from maskcheck.probe import (Leak, ProbeError, Prober, Rows, _expand, _output_leak, _prepare,
                             _Prepared, _stacked_inputs, _subset, _take, diverge, is_mask_name,
                             round_sig, stack_draws, valid_region)

DYNAMIC_CODES = ("MC203", "MC301", "MC302", "MC303", "MC304", "MC305")
#: Layer classes whose training-mode output can depend on other samples.
BATCH_STAT_LAYERS = frozenset({"BatchNormalization", "SyncBatchNormalization"})


class NotProbeable(ProbeError):
    """Probe inputs cannot be synthesized for this model (odd dtypes, no input signature)."""


class NoPadding(NotProbeable):
    """The model has no input that holds padding."""


@dataclass
class Probe:
    """A synthesized (or user-given) probe batch: inputs, labels, mask and sides."""

    x: Any
    y: Any
    mask: Any
    sides: list[str]


# --------------------------------------------------------------------------- synthesis


def _input_layers(model: Any) -> list[tuple[str, tuple, str]]:
    """(name, per-sample shape, dtype) of each model input, or [] when unknown."""
    from maskcheck.probe import _input_layer_name

    inputs = None
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if inputs:
        return [(_input_layer_name(t), tuple(t.shape[1:]), str(t.dtype)) for t in inputs]
    shapes = getattr(model, "_build_shapes_dict", None)
    if isinstance(shapes, dict) and len(shapes) == 1:
        shape = next(iter(shapes.values()))
        if isinstance(shape, (tuple, list)) and shape and all(isinstance(s, (int, type(None))) for s in shape):
            from maskcheck.probe_trace import sublayers

            # a subclassed model built on a shape: ids when it embeds them
            ids = any(isinstance(getattr(l, "input_dim", None), int) for l in sublayers(model))
            shape = (shape[0], None, *shape[2:]) if len(shape) >= 2 else tuple(shape)
            return [("input", tuple(shape[1:]), "int32" if ids else "float32")]
    return []


def synthesize(model: Any, config: Any) -> Probe:
    """Probe inputs from the model's input signature (SPEC 4, sources 2 to 5)."""
    import numpy as np

    from maskcheck.probe import embedding_vocab, mask_generators

    layers = _input_layers(model)
    if not layers:
        raise NotProbeable(f"model {model.name!r} declares no input signature (subclassed, not built "
                         "on a shape): pass probe data (--data or data=)")
    gens = mask_generators(model)
    vocab = embedding_vocab(model)
    declared_masks = {mask for _, mask in config.mask_inputs}
    declared_padded = {name: axis for name, axis in config.padded}
    rng = np.random.default_rng([config.seed, 1])
    # which inputs are padded, and along which axes
    padded: dict[str, int] = {}
    for name, shape, dtype in layers:
        if name in declared_masks or is_mask_name(name) or "bool" in dtype:
            continue
        if name in declared_padded:
            padded[name] = 2 if (len(shape) == 3 and declared_padded[name] == 2) else 1
        elif gens.get(name, gens.get("*")) is not None and len(shape) >= 1:
            padded[name] = 1
        elif len(shape) == 3 and shape[0] is None and shape[1] is None:
            padded[name] = 2  # images (None, None, C)
        elif len(shape) >= 1 and shape[0] is None:
            padded[name] = 1
    has_mask_input = any(n in declared_masks or is_mask_name(n) for n, _, _ in layers)
    if not padded:
        raise NoPadding(f"model {model.name!r} has no padded input (no None-length axis, mask "
                        "input or mask generator); declare one with --padded INPUT:AXIS")
    k = max(padded.values())
    t = config.seq_len
    for name, shape, _ in layers:
        if name in padded and shape and shape[0] is not None:
            t = int(shape[0])
    lengths = _lengths(t, config.batch_size, config.seed)
    sides = ["post", "pre"] if config.padding == "both" else [config.padding]
    mask = np.concatenate([_mask(lengths, t, k, side) for side in sides], axis=0)
    n = mask.shape[0]
    x: dict[str, Any] = {}
    for name, shape, dtype in layers:
        full = tuple(t if (i < k and name in padded) or (s is None and i < k) else (s or t)
                     for i, s in enumerate(shape))
        if name in declared_masks or (is_mask_name(name) and name not in padded) or "bool" in dtype:
            m = mask if mask.ndim - 1 == len(full) else _expand(mask, len(full) + 1)
            x[name] = np.broadcast_to(m, (n, *full)).astype(dtype if dtype != "bool" else bool)
            continue
        np_dtype = np.dtype(dtype) if dtype not in ("string",) else None
        if np_dtype is None:
            raise NotProbeable(f"input {name!r} has dtype {dtype}, which probes cannot synthesize; "
                               "pass probe data (--data)")
        if np.issubdtype(np_dtype, np.integer):
            high = vocab.get(name, vocab.get("*", 10))
            values = rng.integers(1, max(int(high), 2), size=(n, *full)).astype(np_dtype)
        elif np.issubdtype(np_dtype, np.floating):
            values = rng.standard_normal((n, *full)).astype(np_dtype)
        else:
            raise NotProbeable(f"input {name!r} has dtype {dtype}, which probes cannot synthesize; "
                               "pass probe data (--data)")
        if name in padded:
            gen = gens.get(name, gens.get("*"))
            pad = float(getattr(gen, "mask_value", 0.0)) if gen is not None else 0.0
            values = np.where(_expand(mask, values.ndim), values, np.asarray(pad, dtype=np_dtype))
        x[name] = values
    if len(layers) == 1:
        x = x[layers[0][0]]
    row_sides = [s for s in sides for _ in lengths]
    return Probe(x, None, mask, row_sides)


def _lengths(t: int, batch: int, seed: int) -> list[int]:
    import numpy as np

    base = [t, max(t // 2, 1), 1, 0]
    if batch <= len(base):
        return base[:max(batch, 2)]
    rng = np.random.default_rng([seed, 2])
    return base + [int(v) for v in rng.integers(1, t + 1, size=batch - len(base))]


def _mask(lengths: list[int], t: int, k: int, side: str) -> Any:
    from maskcheck.probe import mask_from_lengths

    return mask_from_lengths(lengths, (t,) * k, side)


def from_data(model: Any, data: Any, config: Any) -> Probe:
    """A Probe from user data: an npz mapping, a dict, an (x, y) pair or x alone."""
    import numpy as np

    mask = lengths = y = None
    if isinstance(data, tuple) and len(data) in (2, 3) and not isinstance(data[0], (int, float)):
        x, y = data[0], data[1]
    elif isinstance(data, dict) or hasattr(data, "files"):
        items = {k: np.asarray(data[k]) for k in (data.files if hasattr(data, "files") else data)}
        mask = items.pop("mask", None)
        lengths = items.pop("lengths", None)
        y = items.pop("y", items.pop("labels", None))
        weights = items.pop("sample_weight", items.pop("sample_weights", None))
        if mask is None and lengths is None and weights is not None and weights.ndim == 2:
            mask = weights > 0  # per-step sample weights: zero weight marks padding (SPEC 4)
        x = items.pop("x", None)
        if x is None:
            x = items if len(items) != 1 else next(iter(items.values()))
    else:
        x = data
    if lengths is not None and mask is None:
        from maskcheck.probe import flatten_x, mask_from_lengths

        flat, _, _ = flatten_x(model, x)
        t = next(int(a.shape[1]) for a in flat if a.ndim >= 2)
        side = "pre" if config.padding == "pre" else "post"
        mask = mask_from_lengths([int(v) for v in lengths], (t,), side)
    return Probe(x, y, None if mask is None else np.asarray(mask).astype(bool), [])


def _infer_sides(mask: Any) -> list[str]:
    import numpy as np

    flat = mask.reshape(mask.shape[0], mask.shape[1], -1).any(-1) if mask.ndim > 2 else mask
    sides = []
    for row in flat:
        valid = np.nonzero(row)[0]
        pre = len(valid) and valid[-1] == len(row) - 1 and valid[0] > 0
        sides.append("pre" if pre else "post")
    return sides


# --------------------------------------------------------------------------- checks


@dataclass
class DynamicFinding:
    """A dynamic result before it becomes a Finding."""

    code: str
    leak: Leak
    fields: dict[str, Any]


def run_dynamic(model: Any, data: Any, config: Any, codes: set[str],
                mask_names: tuple[str, ...] = ()) -> tuple[list[DynamicFinding], dict[str, Any]]:
    """Run the selected dynamic checks on `model`; returns (results, trace info).

    Raises:
        ProbeError: the model cannot be probed (NoPadding when nothing is padded).
    """
    import numpy as np

    probe = from_data(model, data, config) if data is not None else synthesize(model, config)
    prep = _prepare(model, probe.x, probe.mask, None, "post",
                    extra_masks=tuple(m for _, m in config.mask_inputs))
    sides = probe.sides or _infer_sides(prep.mask)
    prober = Prober(model, config.device, config.seed)
    prober.set_generators(prep.generators)
    results: list[DynamicFinding] = []
    info: dict[str, Any] = {"records": {}}
    rows = stack_draws(prep.mask, sides)
    inputs = _stacked_inputs(prep, rows, config.seed)
    atol, rtol = config.atol, config.rtol

    # -- the main stacked pass (MC301, MC305), without empty samples if they make it raise
    try:
        run = prober.run(inputs, rows)
    except ProbeError as exc:
        empty = rows.lengths == 0
        if not empty.any():
            raise
        keep = np.nonzero(~empty)[0]
        rows2 = _subset(rows, keep)
        rows2.base_row = np.searchsorted(keep, rows.base_row[keep])
        try:
            run = prober.run(_take(inputs, keep), rows2)
        except ProbeError:
            raise exc from None
        record = getattr(exc, "record", None)
        if "MC305" in codes:
            first_empty = int(np.nonzero(empty & (rows.draw == 0))[0][0])
            results.append(DynamicFinding("MC305", Leak(
                layer=record.name if record else None, layer_class=record.class_name if record else None,
                path=record.path if record else (model.name,), sample=int(rows.sample[first_empty]),
                position=-1, padding=rows.side[first_empty], max_abs_diff=0.0, output=None),
                {"what": "an exception"}))
        rows, inputs = rows2, _take(inputs, keep)
    info["run"], info["rows"] = run, rows

    if "MC301" in codes:
        found = []
        for side in dict.fromkeys(rows.side):
            compare = (rows.draw > 0) & np.array([s == side for s in rows.side])
            leak = _output_leak(run, None, rows, compare, rows.base_row, None, None, atol, rtol)
            if leak is not None:
                found.append(DynamicFinding("MC301", leak, {}))
        results.extend(_by_layer(found))

    if "MC305" in codes and not any(r.code == "MC305" for r in results):
        found = _nonfinite(run, rows, model)
        if found is not None:
            results.append(found)

    if "MC304" in codes and _time_is_open(model):
        results.extend(_pad_amount(prober, prep, run, rows, config))

    if "MC302" in codes and _needs_training_probe(prober):
        results.extend(_cross_sample(prober, inputs, rows, config))

    if codes & {"MC303", "MC203"}:
        results.extend(_loss_checks(model, prep, probe, prober, run, rows, sides, config, codes))
    if "MC305" in codes and not any(r.code == "MC305" for r in results):
        results.extend(_empty_loss(model, prep, probe, prober, run, rows, config))
    info["records"] = _diverging_layers(run, rows, atol, rtol)
    return results, info


def _time_is_open(model: Any) -> bool:
    """Whether the padded length can change (a None axis; unknown for subclassed models)."""
    layers = _input_layers(model)
    return not layers or any(shape and shape[0] is None for _, shape, _ in layers)


def _nonfinite(run: Any, rows: Rows, model: Any) -> DynamicFinding | None:
    import numpy as np

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


def _first_nonfinite_record(run: Any, rows_sel: Any, _others: Any) -> Any:
    import numpy as np

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


def _pad_amount(prober: Prober, prep: _Prepared, run: Any, rows: Rows, config: Any) -> list[DynamicFinding]:
    """MC304: the base samples with `extra` more padded steps, aligned and compared."""
    import numpy as np

    from maskcheck.probe import Run

    base = np.nonzero(rows.draw == 0)[0]
    mask = rows.mask[base]
    if mask.ndim != 2:
        return []
    t = mask.shape[1]
    extra = max(2, t // 2)
    sides = [rows.side[i] for i in base]
    pre = np.array([s == "pre" for s in sides])
    flat_stacked = [a[rows.sample[base]] for a in prep.flat]
    grown = []
    for spec, array in zip(prep.specs, flat_stacked):
        if spec.role == "static" or array.ndim < 2 or array.shape[1] != t:
            grown.append(array)
            continue
        pad_value = spec.pad_value if spec.role == "data" else 0
        pad = np.full((array.shape[0], extra) + array.shape[2:], pad_value, dtype=array.dtype)
        post_arr = np.concatenate([array, pad], axis=1)
        pre_arr = np.concatenate([pad, array], axis=1)
        grown.append(np.where(_expand(pre, post_arr.ndim), pre_arr, post_arr))
    gmask = np.where(pre[:, None], np.concatenate([np.zeros((len(base), extra), bool), mask], 1),
                     np.concatenate([mask, np.zeros((len(base), extra), bool)], 1))
    grows = stack_draws(gmask, sides, draws=())
    try:
        big = prober.run(prep.pack(grown), grows, hooks=False)
    except ProbeError:
        return []

    def align(a: Any) -> Any:
        if a.ndim < 2 or a.shape[0] != len(base):
            return a
        for axis in range(1, a.ndim):
            if a.shape[axis] == t + extra:
                post_part = np.take(a, np.arange(t), axis=axis)
                pre_part = np.take(a, np.arange(extra, t + extra), axis=axis)
                a = np.where(_expand(pre, a.ndim), pre_part, post_part)
        return a

    aligned = Run([align(o) for o in big.outputs], big.output_names, big.output_masked,
                  big.records, [align(v) for v in big.tensors])
    small = Run([o[base] if o.ndim and o.shape[0] == rows.n else o for o in run.outputs],
                run.output_names, run.output_masked, run.records,
                [v[base] if v.ndim and v.shape[0] == rows.n else v for v in run.tensors])
    sub = Rows(mask, np.arange(len(base)), rows.sample[base], sides, np.zeros(len(base), int),
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
        leak = _output_leak(aligned, small, sub, compare, np.arange(len(base)), None, None,
                            config.atol, config.rtol)
        if leak is not None:
            results.append(DynamicFinding("MC304", leak, {"extra": extra}))
    return _by_layer(results)


def _comparable(grown: list[Any], small: list[Any]) -> list[Any]:
    return [g if getattr(g, "shape", None) == getattr(t, "shape", None) else t
            for g, t in zip(grown, small)]


def _needs_training_probe(prober: Prober) -> bool:
    for layer in prober.tracer.layers:
        cls = type(layer)
        if cls.__name__ in BATCH_STAT_LAYERS or any(b.__name__ in BATCH_STAT_LAYERS for b in cls.__mro__):
            return True
        module = cls.__module__
        if not module.startswith(("keras.", "keras_hub.", "keras_nlp.")) and hasattr(layer, "call"):
            if type(layer).__name__ not in ("Functional", "Sequential"):
                return True
    return False


def _cross_sample(prober: Prober, inputs: Any, rows: Rows, config: Any) -> list[DynamicFinding]:
    """MC302: in training mode, perturb one sample's padding, compare the others."""
    import numpy as np

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
        idx = base.copy()
        swapped = np.where(idx == other, large[0], idx)
        ref_rows = _subset(rows, idx)
        new_rows = _subset(rows, swapped)
        try:
            ref = prober.run(_take(inputs, idx), ref_rows, training=True)
            new = prober.run(_take(inputs, swapped), new_rows, training=True)
        except ProbeError:
            continue
        compare = np.array([i != other for i in idx])
        new_rows.base_row = np.arange(len(idx))
        new_rows.sample = rows.sample[idx]
        leak = _output_leak(new, ref, new_rows, compare, np.arange(len(idx)), None, side,
                            config.atol, config.rtol)
        if leak is not None:
            results.append(DynamicFinding("MC302", leak, {"other": int(rows.sample[other])}))
    return _by_layer(results)


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


def _loss_checks(model: Any, prep: _Prepared, probe: Probe, prober: Prober, run: Any, rows: Rows,
                 sides: list[str], config: Any, codes: set[str]) -> list[DynamicFinding]:
    import numpy as np

    from maskcheck.probe_loss import has_loss, loss_leak, overrides_train_step, train_step_leak

    custom_step = overrides_train_step(model) and getattr(model, "optimizer", None) is not None
    if not has_loss(model) and not custom_step:
        return []
    base = np.nonzero(rows.draw == 0)[0]
    found: list[DynamicFinding] = []
    for side in dict.fromkeys(sides):
        idx = np.array([i for i in base if rows.side[i] == side])
        samples = rows.sample[idx]
        sub = _Prepared([a[samples] for a in prep.flat], prep.names, prep.pack, prep.specs,
                        prep.mask[samples], prep.generators)
        candidates = ([probe.y] if probe.y is not None else
                      _label_candidates(model, run, idx, prep.mask[samples], config.seed))
        result = None
        for y in candidates:
            ys = y if probe.y is None else _select(y, samples)
            try:
                if has_loss(model):
                    result = loss_leak(model, sub, ys, padding=side, atol=config.atol,
                                       rtol=config.rtol, seed=config.seed, prober=prober)
                if result is None and custom_step:
                    # a custom train_step may reduce the loss its own way: what fit() runs
                    result = train_step_leak(model, sub, ys, padding=side, atol=config.atol,
                                             rtol=config.rtol, seed=config.seed, prober=prober)
                break
            except ProbeError:
                continue
        if result is None:
            continue
        code = "MC203" if result.what == "labels" and result.output_masked else "MC303"
        if code in codes:
            loss = (f"{type(model).__name__}.train_step" if result.source == "train_step"
                    else _loss_name(model))
            found.append(DynamicFinding(code, result.leak, {
                "what": result.what, "loss_diff": result.loss_diff, "loss": loss}))
            break
    return found


def _empty_loss(model: Any, prep: _Prepared, probe: Probe, prober: Prober, run: Any, rows: Rows,
                config: Any) -> list[DynamicFinding]:
    """MC305 for the loss: finite without the fully padded samples, NaN/Inf with them."""
    import numpy as np

    from maskcheck.probe_loss import LossProber, _output_layer, has_loss

    base = np.nonzero(rows.draw == 0)[0]
    if not has_loss(model) or not (rows.lengths[base] == 0).any() or not (rows.lengths[base] > 0).any():
        return []
    samples = rows.sample[base]
    lprober = LossProber(model, prober)
    candidates = ([probe.y] if probe.y is not None else
                  _label_candidates(model, run, base, prep.mask[samples], config.seed))
    for y in candidates:
        ys = y if probe.y is None else _select(y, samples)
        try:
            def loss_on(keep: Any) -> float:
                sub_rows = stack_draws(prep.mask[samples][keep], [rows.side[i] for i in base[keep]], draws=())
                xs = prep.pack([a[samples][keep] for a in prep.flat])
                return lprober.run(xs, _select(ys, np.nonzero(keep)[0]), sub_rows, hooks=False)[0]

            everything = np.ones(len(base), dtype=bool)
            with_empty = loss_on(everything)
            if np.isfinite(with_empty):
                return []
            if not np.isfinite(loss_on(rows.lengths[base] > 0)):
                return []  # not the empty samples' doing
        except ProbeError:
            continue
        r = int(base[int(np.argmin(rows.lengths[base]))])
        layer, cls, path = _output_layer(model, 0, run.output_names[0] if run.output_names else None)
        return [DynamicFinding("MC305", Leak(layer=layer, layer_class=cls, path=path,
                                             sample=int(rows.sample[r]), position=-1,
                                             padding=rows.side[r], max_abs_diff=float("nan"),
                                             output=run.output_names[0] if run.output_names else None,
                                             kind="loss"), {"what": "a NaN or Inf loss"})]
    return []


def _select(y: Any, samples: Any) -> Any:
    import keras
    import numpy as np

    return keras.tree.map_structure(lambda a: np.asarray(a)[samples], y)


def _loss_name(model: Any) -> str:
    loss = getattr(model, "loss", None)
    if loss is None:
        return f"{type(model).__name__}.compute_loss"
    if isinstance(loss, str):
        return loss
    return getattr(loss, "name", None) or type(loss).__name__


def _label_candidates(model: Any, run: Any, idx: Any, mask: Any, seed: int) -> list[Any]:
    """Plausible label structures for the model outputs: sparse ids, one-hot, same-shape floats."""
    import numpy as np

    rng = np.random.default_rng([seed, 3])
    outs = [o[idx] for o in run.outputs]
    sparse, dense = [], []
    for out in outs:
        c = out.shape[-1] if out.ndim >= 2 else 1
        # valid labels avoid 0 where there is room: 0 is the usual pad label
        ids = rng.integers(1 if c > 2 else 0, max(c, 2), size=out.shape[:-1] if out.ndim >= 2 else out.shape)
        if ids.ndim >= 2 and ids.shape[1] == mask.shape[1]:
            ids = np.where(_expand(mask, ids.ndim), ids, 0)
        sparse.append(ids.astype("int32"))
        onehot = np.eye(max(c, 1), dtype="float32")[np.minimum(ids, c - 1)] if out.ndim >= 2 else \
            rng.random(out.shape).astype("float32")
        dense.append(onehot)
    return [sparse if len(outs) > 1 else sparse[0], dense if len(outs) > 1 else dense[0]]


def _diverging_layers(run: Any, rows: Rows, atol: float, rtol: float) -> set[str]:
    """Names of layers whose valid outputs diverged under some perturbation (for refutation)."""
    import numpy as np

    names: set[str] = set()
    compare = (rows.draw > 0) & (rows.lengths > 0)
    if not compare.any():
        return names
    for record in run.records:
        _, outs = run.io(record)
        for a in outs:
            if a.ndim == 0 or a.shape[0] != rows.n:
                continue
            valid = valid_region(a.shape, rows.mask) & _expand(compare, a.ndim)
            if diverge(a, a[rows.base_row], valid, atol, rtol).rows.any():
                names.add(record.name)
                break
    return names


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
        evidence[key] = round_sig(value) if isinstance(value, float) else value
    values = {"layer": layer, "layer_class": leak.layer_class, "max_abs_diff": leak.max_abs_diff,
              "sample": leak.sample, "padding": leak.padding, "other": "?", "extra": "?",
              "what": "values", "loss_diff": 0.0, "loss": "?", **result.fields}
    if rule.code == "MC303":
        values["what"] = {"labels": "labels", "inputs": "inputs"}.get(result.fields.get("what"), "values")
    return Finding(rule=rule.code, name=rule.name, severity=rule.severity, kind=("dynamic",),
                   layer=layer, layer_class=leak.layer_class,
                   path=leak.path or (layer,) if layer else leak.path,
                   message=rule.message.format(**values), fix=rule.fix.format(**values),
                   evidence=evidence)
