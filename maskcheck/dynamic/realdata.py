"""What real data says about padding: the mask, each sample's side, the pad values.

SPEC 4: data the user passes wins over every convention. For each batch that
`data.read_batches` returns, `read_padding` settles, in this order:

1. the mask: the batch's own `mask` or `lengths`, else an explicit mask input
   of the model, else the values (steps equal to the pad value in every
   feature, in runs at the start or end of a sample), else per-step sample
   weights (zero weight marks padding);
2. the pad value of each padded input: the model's (`mask_zero` reads 0,
   `Masking` its `mask_value`, a lookup's `mask_token`), else the token-0
   convention for token inputs, else the constant step that begins or ends
   most samples (a float pad value such as -1 is found that way);
3. each sample's side ("post", "pre", or "none" when it is not padded);
4. what padded label positions hold, per output (0, -100, ...).

`summarize` turns the batches read into `stats["data"]`: what the data said, in
a few plain JSON values, so the user can confirm it was read as they meant.

The valid region of a sample is the block between its leading and trailing
runs of the pad value: a pad value inside it is a real step that the model
may treat as padding (MC404), not padding.

Imports `plan`, `batches` and `data`; NumPy inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maskcheck.dynamic.batches import Probe, flatten_x, mask_from_lengths
from maskcheck.dynamic.data import Batch, DataError, read_batches
from maskcheck.dynamic.plan import PlannedInput, ProbePlan, is_mask_name

#: Samples per batch the probes read (each is stacked once per perturbation draw).
ROWS_PER_BATCH = 16


@dataclass
class DataPadding:
    """One real batch as the probes use it, and what it says about padding."""

    probe: Probe  # x, y, the (B, T) valid mask and each sample's side
    sample_weight: Any = None
    mask_source: str = ""  # "mask", "lengths", "mask input 'm'", "pad value 0 of 'x'", ...
    pad_values: dict[str, float] = field(default_factory=dict)  # padded input -> its pad value
    label_pads: dict[int, float] = field(default_factory=dict)  # output index -> padded label value
    index: int = 0  # which batch of the data

    @property
    def padded(self) -> bool:
        return bool((~self.probe.mask).any())


def read_padding(model: Any, plan: ProbePlan, data: Any, config: Any) -> list[DataPadding]:
    """The first `config.data_batches` batches of `data`, each with its padding read.

    Raises:
        DataError: the data is empty, ragged, does not match the model's inputs, or
            its padding cannot be told apart from values.
    """
    batches = read_batches(data, batches=config.data_batches, rows=ROWS_PER_BATCH)
    return [_one(model, plan, batch, config, n) for n, batch in enumerate(batches)]


def _one(model: Any, plan: ProbePlan, batch: Batch, config: Any, index: int) -> DataPadding:
    import numpy as np

    x = batch.x
    if isinstance(x, dict) and len(x) == 1 and len(plan.inputs) == 1:
        x = next(iter(x.values()))  # one array for a one-input model: its name does not matter
    flat, names, repack = flatten_x(model, x)
    specs = _match(plan, flat, names, x)
    where = f"batch {index + 1}" if index else "the data"
    mask = source = None
    pad_values: dict[str, float] = {}
    values = [(s, a) for s, a in zip(specs, flat) if s.role != "mask" and a.ndim >= 2
              and (s.role == "data" or s.kind == "tokens" or not plan.data_inputs)]
    if batch.mask is not None:
        mask, source = np.asarray(batch.mask).astype(bool), "mask"
    explicit = [a for s, a in zip(specs, flat) if s.role == "mask"]
    if mask is None and explicit:
        mask, source = np.asarray(explicit[0]).astype(bool), "mask input"
    if mask is None or batch.lengths is not None:
        for spec, array in values:
            pad = _pad_value(spec, array)
            if pad is None:
                continue
            pad_values[spec.name] = pad
            if mask is None:
                mask = _valid_block(pad_steps(array, pad))
                source = f"pad value {value_text(pad)} of {spec.name!r}"
            break
    if batch.lengths is not None:
        t = mask.shape[1] if mask is not None else next((a.shape[1] for _, a in values), None)
        if t is None:
            raise DataError(f"{where}: 'lengths' needs an input with a time axis")
        sides = _sides(mask) if mask is not None else ["post"] * len(batch.lengths)
        lengths = [int(v) for v in batch.lengths]
        mask = np.stack([mask_from_lengths([n], (t,), s if s != "none" else "post")[0]
                         for n, s in zip(lengths, sides)])
        source = "lengths"
    weights = batch.sample_weight
    if mask is None and isinstance(weights, np.ndarray) and weights.ndim == 2:
        mask, source = weights > 0, "per-step sample weights"
    if mask is None:
        name = values[0][0].name if values else (names[0] if names else "x")
        raise DataError(f"{where}: cannot tell padding from values in input {name!r} (no sample "
                        "starts or ends with a constant step); pass a 'mask' or 'lengths' array "
                        "(in the .npz, or a dict with x and mask), or per-step sample weights")
    if mask.ndim != 2 or mask.shape[0] != flat[0].shape[0]:
        raise DataError(f"{where}: the mask must have shape (batch, time), not {mask.shape}")
    for spec, array in values:
        if spec.name not in pad_values and array.shape[1] == mask.shape[1]:
            pad = _pad_value(spec, array)
            if pad is not None:
                pad_values[spec.name] = pad
    sides = _sides(mask)
    label_pads = _label_pads(batch.y, mask)
    probe = Probe(x, batch.y, mask, sides)
    return DataPadding(probe, weights, source or "", pad_values, label_pads, index)


def _match(plan: ProbePlan, flat: list[Any], names: list[str], x: Any) -> list[PlannedInput]:
    """Each data array's plan entry; the data must fit the model's inputs."""
    planned = {i.name: i for i in plan.inputs}
    expected = ", ".join(f"{i.name!r} {('(None, ' + ', '.join(str(d) for d in i.shape) + ')')}"
                         for i in plan.inputs)
    if isinstance(x, dict):
        missing = [i.name for i in plan.inputs if i.name not in x]
        if missing:
            raise DataError(f"the data has no input {missing[0]!r} (it has "
                            f"{', '.join(repr(k) for k in x)}); the model takes {expected}")
        specs = [planned.get(n) for n in names]
    else:
        if len(flat) != len(plan.inputs):
            raise DataError(f"the data has {len(flat)} input array(s), the model takes "
                            f"{len(plan.inputs)}: {expected}")
        specs = list(plan.inputs)
    matched = []
    for spec, array, name in zip(specs, flat, names):
        if spec is None:  # an extra key the model does not take
            matched.append(PlannedInput(name, tuple(array.shape[1:]), str(array.dtype), "static",
                                        "values"))
            continue
        fits = array.ndim == len(spec.shape) + 1 and all(
            d is None or d == a for d, a in zip(spec.shape, array.shape[1:]))
        if not fits:
            raise DataError(f"input {spec.name!r} of the data has shape {tuple(array.shape)}; the "
                            f"model takes {expected}")
        if array.dtype.kind not in "biuf":
            raise DataError(f"input {spec.name!r} of the data has dtype {array.dtype}, which the "
                            "probes cannot perturb; pass the numeric ids the model's inputs take")
        if spec.role != "mask" and is_mask_name(spec.name):
            spec = PlannedInput(spec.name, spec.shape, spec.dtype, "mask", "mask")
        matched.append(spec)
    return matched


def pad_steps(array: Any, pad: float) -> Any:
    """(B, T) bool: the step equals `pad` in every feature."""
    eq = array == pad
    return eq.reshape(eq.shape[0], eq.shape[1], -1).all(-1) if eq.ndim > 2 else eq


def runs(pad: Any) -> tuple[Any, Any]:
    """Lengths of the leading and trailing runs of True in each row of `pad`."""
    import numpy as np

    t = pad.shape[1]
    full = pad.all(axis=1)
    lead = np.where(full, t, np.argmin(pad, axis=1))
    trail = np.where(full, t, np.argmin(pad[:, ::-1], axis=1))
    return lead, trail


def _valid_block(pad: Any) -> Any:
    """Valid positions: between each sample's leading and trailing pad runs."""
    import numpy as np

    lead, trail = runs(pad)
    pos = np.arange(pad.shape[1])[None, :]
    return (pos >= lead[:, None]) & (pos < (pad.shape[1] - trail)[:, None])


def _sides(mask: Any) -> list[str]:
    """Each sample's padding side from its valid mask: post, pre or none (unpadded)."""
    lead, trail = runs(~mask)
    t = mask.shape[1]
    sides = []
    for a, b in zip(lead, trail):
        if a == 0 and b == 0:
            sides.append("none")
        elif a == t:
            sides.append("post")  # fully padded: no side to tell
        else:
            sides.append("pre" if a > b else "post")
    return sides


def _pad_value(spec: PlannedInput, array: Any) -> float | None:
    """The input's pad value: the model's or the token convention, else the constant step
    that begins or ends most samples (None when no sample has one)."""
    import numpy as np

    if spec.generator is not None or spec.kind == "tokens":
        return float(spec.pad_value)
    steps = array.reshape(array.shape[0], array.shape[1], -1)
    counts: dict[float, int] = {}
    for row in steps:
        for step in (row[0], row[-1]):
            if step.size and np.all(step == step.flat[0]):
                value = float(step.flat[0])
                counts[value] = counts.get(value, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    # a constant step that only sometimes begins or ends a sample is data, not padding
    if best < 2 and array.shape[0] > 2:
        return None
    return min((v for v, c in counts.items() if c == best), key=lambda v: (v != 0.0, v))


def _label_pads(y: Any, mask: Any) -> dict[int, float]:
    """Per output: the one value padded label positions hold (absent when they vary)."""
    import numpy as np

    if y is None:
        return {}
    flat = list(y.values()) if isinstance(y, dict) else list(y) if isinstance(y, (list, tuple)) else [y]
    found = {}
    for j, labels in enumerate(flat):
        labels = np.asarray(labels)
        if labels.ndim < 2 or labels.shape[1] != mask.shape[1] or mask.all():
            continue
        pad = labels[~mask]
        if pad.size and pad.ndim == 1 and np.all(pad == pad[0]):
            found[j] = float(pad[0])
        elif pad.size and pad.ndim > 1 and np.all(pad == pad[:1]):  # one-hot / dense rows
            found[j] = float(pad[0].flat[0]) if np.all(pad[0] == pad[0].flat[0]) else float("nan")
    return found


def value_text(value: float) -> str:
    """A pad or label value as the user writes it: 0, -100, 0.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


#: How sample weights treat padding, worst last (several batches report the worst).
WEIGHT_WORDS = ("none", "per sample", "per step", "zero on padding", "count padding")


def summarize(paddings: list[DataPadding], plan: ProbePlan) -> dict[str, Any]:
    """What the data said about padding, as plain JSON values (`stats["data"]`).

    A summary the user can hold against what they meant, never per-sample
    lists: how many batches and samples the probes read, where the padding
    was read from, each padded input's pad value, how many samples are padded
    at the end, at the start, not at all or entirely, their valid lengths, what
    padded label positions hold, and how the sample weights treat padding.
    Keys are flat so each reads as "key value"; values come from the data
    alone (integers, or a rounded mean), so equal data gives equal bytes.
    """
    import numpy as np

    masks = [np.asarray(p.probe.mask, bool) for p in paddings]
    lengths = np.concatenate([m.sum(axis=1) for m in masks]) if masks else np.zeros(0, int)
    counts = {"post": 0, "pre": 0, "none": 0, "empty": 0}
    for mask, padding in zip(masks, paddings):
        for row, side in zip(mask, padding.probe.sides):
            counts["empty" if not row.any() else side if side in counts else "post"] += 1
    outputs = [o.name for o in plan.outputs]
    pads: dict[str, list[float]] = {}
    labels: dict[str, list[float]] = {}
    for padding in paddings:
        for name, value in padding.pad_values.items():
            pads.setdefault(name, []).append(value)
        for j, value in padding.label_pads.items():
            labels.setdefault(outputs[j] if j < len(outputs) else f"output_{j}", []).append(value)
    return {
        "batches": len(paddings),
        "samples": int(lengths.size),
        "time_steps": max((int(m.shape[1]) for m in masks), default=0),
        "padding_from": "; ".join(dict.fromkeys(p.mask_source for p in paddings if p.mask_source))
                        or "none",
        "pad_value": {name: _one_value(values) for name, values in sorted(pads.items())} or None,
        "post_padded": counts["post"],
        "pre_padded": counts["pre"],
        "unpadded": counts["none"],
        "all_padding": counts["empty"],
        "length_min": int(lengths.min()) if lengths.size else 0,
        "length_max": int(lengths.max()) if lengths.size else 0,
        "length_mean": round(float(lengths.mean()), 2) if lengths.size else 0,
        "label_pad_value": {name: _one_value(values) for name, values in sorted(labels.items())}
                           or None,
        "sample_weights": max((_weight_words(p) for p in paddings), key=WEIGHT_WORDS.index,
                              default="none"),
    }


def _one_value(values: list[float]) -> Any:
    """A value as JSON: an int where it is whole; "varies" across batches; "a fixed row" for
    padded one-hot (dense) labels that hold one row that is not a single number."""
    distinct = list(dict.fromkeys("a fixed row" if v != v else v for v in values))
    if len(distinct) > 1:
        return "varies"
    value = distinct[0]
    if isinstance(value, str):
        return value
    return int(value) if float(value).is_integer() else float(f"{value:.6g}")  # 0.1, not float32's


def _weight_words(padding: DataPadding) -> str:
    """How one batch's sample weights treat its padded steps, in words of `WEIGHT_WORDS`."""
    import numpy as np

    weights = padding.sample_weight
    leaves = (list(weights.values()) if isinstance(weights, dict) else list(weights)
              if isinstance(weights, (list, tuple)) else [weights] if weights is not None else [])
    mask = np.asarray(padding.probe.mask, bool)
    per_step = [np.asarray(w) for w in leaves
                if w is not None and np.ndim(w) >= 2 and np.shape(w)[:2] == mask.shape]
    if not leaves or all(w is None for w in leaves):
        return "none"
    if not per_step:
        return "per sample"
    if mask.all():
        return "per step"  # no padded step to weigh
    on_pad = [w.reshape(mask.shape[0], mask.shape[1], -1)[~mask] for w in per_step]
    return "count padding" if any(np.any(p != 0) for p in on_pad) else "zero on padding"
