"""Probe tensors, following the plan: sides, lengths, perturbations, empty rows, labels.

A probe batch holds, per padding side, samples of lengths full, half, 1 and
0 (more when --batch-size asks), in the structure the model takes. `Rows`
describes a stacked batch: the base samples followed by one copy per
perturbation draw (natural-scale noise, large values, the batch's own values
shuffled). Raw inputs are perturbed here only where no layer derives a mask
from them; after a mask generator the program perturbs the generator's
output instead, so the mask never moves. Token ids are never changed: the
program perturbs what each embedding layer makes of them at padded positions
(a mask may be derived from the ids anywhere in the model).

Imports only `maskcheck.dynamic.plan`; NumPy and Keras inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from maskcheck.dynamic.plan import (PlannedInput, ProbeError, ProbePlan, is_mask_name,
                                    model_input_names, pack)

#: Perturbation draws: (noise scale, shuffle). Scale multiplies N(0, 1) noise.
DRAWS = ((1.0, False), (100.0, False), (0.0, True))


@dataclass
class Rows:
    """A stacked probe batch: per row its base row, sample, side, draw and mask."""

    mask: Any  # (N, *S) bool, True at valid positions
    base_row: Any  # (N,) index of the unperturbed row with the same sample
    sample: Any  # (N,)
    side: list[str]
    draw: Any  # (N,) 0 for base rows
    scale: Any  # (N,) float noise scale (0 for base rows)
    shuffle: Any  # (N,) bool
    lengths: Any  # (N,) valid length

    @property
    def n(self) -> int:
        return len(self.base_row)


def expand(mask: Any, ndim: int) -> Any:
    """`mask` with trailing axes added up to `ndim` (for broadcasting against data)."""
    return mask.reshape(mask.shape + (1,) * (ndim - mask.ndim))


def mask_from_lengths(lengths: Sequence[int], sizes: tuple[int, ...], padding: str) -> Any:
    import numpy as np

    out = np.zeros((len(lengths), *sizes), dtype=bool)
    for i, length in enumerate(lengths):
        length = int(length)
        index = tuple(slice(0, length) if padding == "post" else slice(size - length, size)
                      for size in sizes)
        out[(i, *index)] = True
    return out


def row_lengths(mask: Any) -> Any:
    import numpy as np

    flat = mask.reshape(mask.shape[0], mask.shape[1], -1).any(axis=-1) if mask.ndim > 2 else mask
    return flat.sum(axis=1).astype(np.int64)


def stack_draws(mask: Any, sides: list[str], draws: tuple = DRAWS) -> Rows:
    """Rows for `mask` (the base samples) followed by one copy per draw."""
    import numpy as np

    b = mask.shape[0]
    d = len(draws) + 1
    sample = np.tile(np.arange(b), d)
    draw = np.repeat(np.arange(d), b)
    scale = np.array([0.0] + [s for s, _ in draws], dtype="float32")[draw]
    shuffle = np.array([False] + [sh for _, sh in draws])[draw]
    return Rows(mask=np.tile(mask, (d,) + (1,) * (mask.ndim - 1)), base_row=sample.copy(),
                sample=sample, side=[sides[i] for i in sample], draw=draw,
                scale=scale, shuffle=shuffle, lengths=np.tile(row_lengths(mask), d))


def subset(rows: Rows, idx: Any) -> Rows:
    return Rows(rows.mask[idx], rows.base_row[idx], rows.sample[idx], [rows.side[i] for i in idx],
                rows.draw[idx], rows.scale[idx], rows.shuffle[idx], rows.lengths[idx])


def take(inputs: Any, idx: Any) -> Any:
    import keras

    return keras.tree.map_structure(lambda a: a[idx], inputs)


def infer_sides(mask: Any) -> list[str]:
    """Each sample's padding side, read from its mask."""
    import numpy as np

    flat = mask.reshape(mask.shape[0], mask.shape[1], -1).any(-1) if mask.ndim > 2 else mask
    sides = []
    for row in flat:
        valid = np.nonzero(row)[0]
        pre = len(valid) and valid[-1] == len(row) - 1 and valid[0] > 0
        sides.append("pre" if pre else "post")
    return sides


def random_values(spec: PlannedInput, shape: tuple[int, ...], rng: Any, dtype: Any) -> Any:
    """Plausible real values for an input: valid token ids, else N(0, 1)."""
    import numpy as np

    if spec.kind == "tokens" or np.issubdtype(dtype, np.integer):
        high = max(int(spec.vocab or 10), 2)
        return rng.integers(1, high, size=shape).astype(dtype)
    if dtype == bool:
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.standard_normal(shape).astype(dtype)


def perturb_raw(array: Any, spec: PlannedInput, rows: Rows, seed: int) -> Any:
    """Replace padded positions of perturbed rows (draw > 0) in a raw input array."""
    import numpy as np

    rng = np.random.default_rng([seed, 7])
    valid = expand(rows.mask, array.ndim)
    if spec.kind == "tokens" or np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        repl = random_values(spec, array.shape, rng, array.dtype)
    else:
        noise = rng.standard_normal(array.shape).astype(array.dtype)
        shuffled = np.roll(np.roll(array, 1, axis=0), max(array.shape[1] // 2, 1), axis=1)
        scale = rows.scale.reshape((-1,) + (1,) * (array.ndim - 1)).astype(array.dtype)
        shuf = rows.shuffle.reshape((-1,) + (1,) * (array.ndim - 1))
        repl = np.where(shuf, shuffled, array + scale * noise)
    perturbed = (rows.draw > 0).reshape((-1,) + (1,) * (array.ndim - 1))
    return np.where(valid | ~perturbed, array, repl)


# --------------------------------------------------------------------------- probe batches


@dataclass
class Probe:
    """A synthesized (or user-given) probe batch: inputs, labels, mask and sides."""

    x: Any
    y: Any
    mask: Any
    sides: list[str]


def split_probe(probe: Probe, samples: int | None) -> list[tuple[int, Probe]]:
    """`probe` as consecutive parts of about `samples` samples each, with the index of each
    part's first sample: one part when it fits (None: any size does). Parts are balanced,
    so none holds fewer than `samples` unless the whole probe does."""
    import keras
    import numpy as np

    n = probe.mask.shape[0]
    if samples is None or n <= samples:
        return [(0, probe)]
    parts = []
    for idx in np.array_split(np.arange(n), max(1, n // samples)):
        def cut(a: Any, idx: Any = idx) -> Any:
            return np.asarray(a)[idx]
        parts.append((int(idx[0]), Probe(keras.tree.map_structure(cut, probe.x),
                                         None if probe.y is None else keras.tree.map_structure(cut, probe.y),
                                         probe.mask[idx], [probe.sides[i] for i in idx])))
    return parts


def _lengths(t: int, batch: int, seed: int) -> list[int]:
    import numpy as np

    base = [t, max(t // 2, 1), 1, 0]
    if batch <= len(base):
        return base[:max(batch, 2)]
    rng = np.random.default_rng([seed, 2])
    return base + [int(v) for v in rng.integers(1, t + 1, size=batch - len(base))]


def synthesize(plan: ProbePlan, config: Any) -> Probe:
    """Probe inputs from the plan (SPEC 4, sources 2 to 5), both sides stacked."""
    import numpy as np

    rng = np.random.default_rng([config.seed, 1])
    k, t = plan.n_padded, plan.length
    lengths = _lengths(t, config.batch_size, config.seed)
    sides = ["post", "pre"] if config.padding == "both" else [config.padding]
    if plan.sides and config.padding == "both":  # the model's preprocessor pads on one side
        sides = list(plan.sides)
    mask = np.concatenate([mask_from_lengths(lengths, (t,) * k, side) for side in sides], axis=0)
    n = mask.shape[0]
    flat = []
    for spec in plan.inputs:
        full = tuple(t if (a + 1 in spec.padded_axes or (s is None and a < k)) else (s or t)
                     for a, s in enumerate(spec.shape))
        dtype = np.dtype(spec.dtype)
        if spec.role == "mask":
            m = mask if mask.ndim - 1 == len(full) else expand(mask, len(full) + 1)
            flat.append(np.broadcast_to(m, (n, *full)).astype(dtype))
            continue
        values = random_values(spec, (n, *full), rng, dtype)
        if spec.role == "data":
            values = np.where(expand(mask, values.ndim), values, np.asarray(spec.pad_value, dtype=dtype))
        flat.append(values)
    x = pack(flat, [i.name for i in plan.inputs], plan.structure)
    return Probe(x, None, mask, [s for s in sides for _ in lengths])


def flatten_x(model: Any, x: Any) -> tuple[list[Any], list[str], Any]:
    """(flat arrays, names, pack) where pack(flat) rebuilds x's structure."""
    import numpy as np

    if isinstance(x, dict):
        keys = list(x)
        return ([np.asarray(x[k]) for k in keys], keys, lambda flat: dict(zip(keys, flat)))
    if isinstance(x, (list, tuple)):
        names = model_input_names(model) or [f"input_{i}" for i in range(len(x))]
        if len(names) != len(x):
            names = [f"input_{i}" for i in range(len(x))]
        kind = type(x)
        return [np.asarray(v) for v in x], names, lambda flat: kind(flat)
    names = model_input_names(model) or ["input"]
    return [np.asarray(x)], names[:1], lambda flat: flat[0]


@dataclass
class Prepared:
    """One probe batch, flat, with each input's plan entry and the (batch, time) mask."""

    flat: list[Any]
    names: list[str]
    pack: Any
    specs: list[PlannedInput]
    mask: Any

    def select(self, samples: Any) -> "Prepared":
        return Prepared([a[samples] for a in self.flat], self.names, self.pack, self.specs,
                        self.mask[samples])


def prepare(model: Any, plan: ProbePlan, x: Any, mask: Any, lengths: Any, padding: str,
            extra_masks: tuple[str, ...] = (), promote: bool = False) -> Prepared:
    """Flatten `x`, match each array to its plan entry, and settle the mask.

    The mask comes from `mask`, else `lengths`, else an explicit mask input,
    else the values a mask generator reads (pad token 0, `mask_value`).
    With `promote` (real data), any input that lines up with the mask holds
    padding, whatever the plan assumed.
    """
    import numpy as np

    if padding not in ("post", "pre"):
        raise ProbeError(f"padding must be 'post' or 'pre', not {padding!r}")
    flat, names, repack = flatten_x(model, x)
    if not flat or any(a.ndim == 0 for a in flat):
        raise ProbeError("x must be an array, a list or a dict of arrays with a batch axis")
    if any(a.shape[0] == 0 for a in flat):
        raise ProbeError("x is an empty batch")
    planned = {i.name: i for i in plan.inputs}
    specs = []
    for position, (name, array) in enumerate(zip(names, flat)):
        spec = planned.get(name)
        if spec is None and len(plan.inputs) == len(flat):
            spec = plan.inputs[position]
        if spec is None:
            spec = PlannedInput(name, tuple(array.shape[1:]), str(array.dtype), "static", "values")
        if spec.role != "mask" and (is_mask_name(name) or name in extra_masks):
            spec = PlannedInput(name, spec.shape, spec.dtype, "mask", "mask")
        specs.append(spec)
    explicit = [i for i, s in enumerate(specs) if s.role == "mask"]
    if mask is None and lengths is not None:
        t = next((int(a.shape[1]) for a in flat if a.ndim >= 2), None)
        if t is None:
            raise ProbeError("lengths= needs an input with a time axis")
        mask = mask_from_lengths(list(lengths), (t,), padding)
    if mask is None and explicit:
        mask = np.asarray(flat[explicit[0]]).astype(bool)
    if mask is None:
        for spec, array in zip(specs, flat):
            if spec.generator is None or array.ndim < 2:
                continue
            if spec.kind == "tokens":
                mask = array != spec.pad_value
                mask = mask if mask.ndim == 2 else mask.reshape(mask.shape[0], mask.shape[1], -1).any(-1)
            else:
                mask = np.any(array != spec.pad_value, axis=-1)
                mask = mask if mask.ndim == 2 else mask.reshape(mask.shape[0], mask.shape[1], -1).any(-1)
            break
    if mask is None:
        raise ProbeError("no mask for the probe batch: give a mask or lengths (mask=/lengths=, or "
                         "'mask'/'lengths' arrays in the --data file), or a model with a padding "
                         "mask input or a mask generator (Embedding(mask_zero=True), Masking)")
    mask = np.asarray(mask).astype(bool)
    if mask.ndim < 2 or mask.shape[0] != flat[0].shape[0]:
        raise ProbeError(f"mask must have shape (batch, time), got {mask.shape}")
    for i, (spec, array) in enumerate(zip(specs, flat)):
        if spec.role == "mask":
            continue
        lines_up = array.ndim >= mask.ndim and tuple(array.shape[1:mask.ndim]) == tuple(mask.shape[1:])
        role = ("data" if lines_up and (spec.role == "data" or spec.name not in planned or promote)
                else "static")
        if role != spec.role:
            axes = tuple(range(1, mask.ndim)) if role == "data" else ()
            specs[i] = PlannedInput(spec.name, spec.shape, spec.dtype, role, spec.kind, axes,
                                    spec.source, spec.generator, spec.pad_value, spec.vocab)
    if not any(s.role == "data" for s in specs):
        raise ProbeError(f"no input has the mask's padded shape {mask.shape[1:]}")
    return Prepared(flat, names, repack, specs, mask)


def stacked_inputs(prep: Prepared, rows: Rows, seed: int) -> Any:
    """The base batch tiled once per draw, raw value inputs perturbed where no generator
    reads them (token ids stay as they are; the program perturbs their embeddings)."""
    import numpy as np

    d = rows.n // prep.mask.shape[0]
    stacked = []
    for spec, array in zip(prep.specs, prep.flat):
        tiled = np.concatenate([array] * d, axis=0)
        if spec.role == "data" and spec.generator is None and spec.kind != "tokens":
            tiled = perturb_raw(tiled, spec, rows, seed)
        stacked.append(tiled)
    return prep.pack(stacked)


def unpadded_inputs(prep: Prepared, seed: int) -> Any:
    """The same batch with every position valid: padded positions hold real values and
    explicit masks are all ones (SPEC 9: a model that raises on this is a bad target)."""
    import numpy as np

    rng = np.random.default_rng([seed, 19])
    out = []
    for spec, array in zip(prep.specs, prep.flat):
        if spec.role == "mask":
            out.append(np.ones_like(array))
        elif spec.role == "data":
            valid = expand(prep.mask, array.ndim)
            out.append(np.where(valid, array, random_values(spec, array.shape, rng, array.dtype)))
        else:
            out.append(array)
    return prep.pack(out)


def grown_inputs(prep: Prepared, samples: Any, sides: list[str], extra: int) -> tuple[Any, Any]:
    """The samples with `extra` more padded steps on their own side: (inputs, mask)."""
    import numpy as np

    mask = prep.mask[samples]
    t = mask.shape[1]
    pre = np.array([s == "pre" for s in sides])
    grown = []
    for spec, array in zip(prep.specs, prep.flat):
        array = array[samples]
        if spec.role == "static" or array.ndim < 2 or array.shape[1] != t:
            grown.append(array)
            continue
        pad = np.full((array.shape[0], extra) + array.shape[2:],
                      spec.pad_value if spec.role == "data" else 0, dtype=array.dtype)
        post_arr = np.concatenate([array, pad], axis=1)
        pre_arr = np.concatenate([pad, array], axis=1)
        grown.append(np.where(expand(pre, post_arr.ndim), pre_arr, post_arr))
    gmask = np.where(pre[:, None], np.concatenate([np.zeros((len(samples), extra), bool), mask], 1),
                     np.concatenate([mask, np.zeros((len(samples), extra), bool)], 1))
    return prep.pack(grown), gmask


# --------------------------------------------------------------------------- labels


def label_candidates(plan: ProbePlan, outputs: list[Any], mask: Any, seed: int,
                     output_masks: list[Any] | None = None) -> list[Any]:
    """Plausible labels for the model outputs: sparse ids, one-hot / same-shape floats, then
    label sequences of their own length (CTC-style losses).

    Padded label positions (only along the output axes the plan marks as
    padded) hold what padding holds in the user's world: the loss's
    `ignore_class`, else 0. Where an output's padded axis is not the input's
    (a strided convolution resamples it), its own Keras mask says which steps
    are padding; without one, the labels are not padded. A sequence label of
    a padded sample is about half as long as its valid steps (so a CTC
    alignment exists), has no repeated neighbours, and is padded with 0 after.
    """
    import numpy as np

    rng = np.random.default_rng([seed, 3])
    sparse, dense, sequences = [], [], []
    for j, out in enumerate(outputs):
        spec = plan.outputs[j] if j < len(plan.outputs) else None
        c = out.shape[-1] if out.ndim >= 2 else 1
        ids = rng.integers(1 if c > 2 else 0, max(c, 2), size=out.shape[:-1] if out.ndim >= 2 else out.shape)
        onehot = (_one_hot(np.minimum(ids, c - 1), max(c, 1)) if out.ndim >= 2
                  else rng.random(out.shape).astype("float32"))
        valid = output_valid(out, mask, None if output_masks is None else output_masks[j])
        if spec is not None and 1 in spec.padded_axes and ids.ndim >= 2 and valid is not None:
            pad = ~expand(valid, ids.ndim)
            ids = np.where(pad, int(spec.label_pad), ids)
            onehot = np.where(expand(~pad, onehot.ndim), onehot, 0.0).astype("float32")
        sparse.append(ids.astype("int32"))
        dense.append(onehot)
        sequences.append(_label_sequences(out, valid, rng) if out.ndim == 3 and c > 3
                         else ids.astype("int32"))
    single = len(outputs) == 1
    found = [sparse[0] if single else sparse, dense[0] if single else dense]
    if any(o.ndim == 3 for o in outputs):
        found.append(sequences[0] if single else sequences)
    return found


def _one_hot(ids: Any, classes: int) -> Any:
    """float32 one-hot rows of `ids`, built at the labels' size: not by indexing an identity
    matrix, which is classes x classes (10 GB for a 50,257-token vocabulary)."""
    import numpy as np

    onehot = np.zeros(ids.shape + (classes,), dtype="float32")
    np.put_along_axis(onehot, ids[..., None], 1.0, axis=-1)
    return onehot


def output_valid(out: Any, mask: Any, output_mask: Any = None) -> Any:
    """(B, T') valid steps of an output: its own Keras mask, else the input mask when the
    output keeps the input's length, else None (the padding of a resampled axis is unknown)."""
    import numpy as np

    if output_mask is not None and output_mask.shape == out.shape[:output_mask.ndim] \
            and output_mask.ndim == 2:
        return np.asarray(output_mask).astype(bool)
    if out.ndim >= 2 and mask.ndim == 2 and out.shape[1] == mask.shape[1]:
        return mask
    return None


def _label_sequences(out: Any, valid: Any, rng: Any) -> Any:
    """(B, L) label sequences for a (B, T', C) output, L = T' // 2, each padded with 0 after
    its labels; classes 1 .. C-2 (neither 0 nor C-1, the two blank conventions)."""
    import numpy as np

    b, t, c = out.shape
    width = max(t // 2, 1)
    steps = valid.sum(axis=1) if valid is not None else np.full(b, t)
    labels = np.zeros((b, width), dtype="int32")
    for i in range(b):
        n = min(width, max(int(steps[i]) // 2, 1 if steps[i] else 0))
        row = rng.integers(1, c - 1, size=n)
        for k in range(1, n):  # no repeated neighbours: every label needs one frame
            if row[k] == row[k - 1]:
                row[k] = 1 + row[k] % (c - 2)
        labels[i, :n] = row
    return labels


def label_pad_value(labels: Any) -> float:
    """What pads a label sequence of its own length: the value most rows end with."""
    import numpy as np

    last = np.asarray(labels)[:, -1].ravel()
    values, counts = np.unique(last, return_counts=True)
    return float(values[int(np.argmax(counts))]) if len(values) else 0.0


def perturb_labels(y: Any, mask: Any, padded_axes: tuple[int, ...], seed: int,
                   n_classes: int | None) -> Any:
    """`y` with its padded positions (along the plan's padded output axes) changed."""
    import numpy as np

    if 1 not in padded_axes or y.ndim < 2 or y.shape[1] != mask.shape[1]:
        return y
    rng = np.random.default_rng([seed, 23])
    pad = ~expand(mask, y.ndim)
    if np.issubdtype(y.dtype, np.integer):
        high = max(int(n_classes or 0), int(y.max()) + 1, 2)
        repl = (np.abs(y) + rng.integers(1, high, size=y.shape)) % high
    elif y.ndim > mask.ndim and y.shape[-1] > 1:
        repl = np.roll(y, 1, axis=-1) + (y.sum(-1, keepdims=True) == 0)
    else:
        repl = y + rng.standard_normal(y.shape).astype(y.dtype)
    return np.where(pad, repl.astype(y.dtype), y)
