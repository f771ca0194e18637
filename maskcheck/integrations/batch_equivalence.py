"""`assert_batch_equivalent`: a function of a padded batch gives each sample what it gives alone.

    import maskcheck

    def test_generation_is_batch_equivalent():
        prompts = [{"token_ids": ids, "padding_mask": np.ones(len(ids), bool)} for ids in raw]
        maskcheck.assert_batch_equivalent(lambda batch: generate(batch), prompts, side="left")

Works on any callable (a `predict`, a `generate`, a user's decoding loop): no
model is inspected. Each sample is run alone (a batch of one, unpadded), then
in padded batches of each size in `batch_sizes`, in order and reversed, padded
with `pad_value` on each `side`. A sample given as a dict of arrays is padded
key by key, so an all-ones mask in it becomes the batch's padding mask (its
pad is 0/False). Outputs are compared per sample:

* an output with an axis that follows the padded input (its length is the
  batch's length, plus the same growth alone, e.g. generated tokens) is
  compared at the sample's own positions: as many as it has alone, starting
  after its left padding, or at the first position when padded on the right
  (so a row that generates into its own pad slots, as keras-hub does, is
  compared token for token, and pads left between a prompt and tokens
  appended after the batch are a difference);
* any other output (one row per sample) must be the same whole.

Integer outputs (token ids) must be equal; float outputs equal within
`atol`/`rtol`. The first difference raises `PaddingLeakError` naming the sample,
the batch and the position. Imports NumPy only when called.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

__all__ = ["assert_batch_equivalent"]

#: Side names: the issue's and Keras's (`pad_sequences(padding=...)`).
_SIDES = {"left": ("pre",), "pre": ("pre",), "right": ("post",), "post": ("post",),
          "both": ("post", "pre")}
_WORD = {"pre": "left", "post": "right"}


def assert_batch_equivalent(fn: Callable[[Any], Any], samples: Sequence[Any], *,
                            pad_value: Any = 0, side: str = "both",
                            batch_sizes: Sequence[int] = (1, 2, 4), atol: float | None = None,
                            rtol: float | None = None) -> None:
    """Assert that `fn` gives every sample the same result alone as in any padded batch.

    Args:
        fn: a function of one batch: an array (batch, length, ...) or a dict of such
            arrays (the samples' structure), returning an array, or a dict, list or
            tuple of arrays, each with the batch first.
        samples: at least two samples of different lengths: arrays (length, ...) or
            dicts of arrays that share their first axis.
        pad_value: what padded positions hold (a dict gives one per key).
        side: "left", "right" or "both" ("pre"/"post" are accepted too).
        batch_sizes: batch sizes to try (1 is the sample alone, always the reference).
        atol, rtol: tolerances for float outputs (default 1e-5 and 1e-4).

    Raises:
        PaddingLeakError: naming the sample, its batch, the side and the first position
            whose result differs from the sample's alone.
        ValueError: the samples or the side cannot be used.
    """
    __tracebackhide__ = True
    import numpy as np

    from maskcheck.integrations.assertions import PaddingLeakError

    atol = 1e-5 if atol is None else float(atol)
    rtol = 1e-4 if rtol is None else float(rtol)
    if side not in _SIDES:
        raise ValueError(f"side must be 'left', 'right' or 'both', not {side!r}")
    samples = [_as_sample(s, np) for s in samples]
    if len(samples) < 2:
        raise ValueError("assert_batch_equivalent needs at least two samples")
    lengths = [_length(s) for s in samples]
    alone = [_outputs(fn(_pad([s], "post", pad_value, np)), np) for s in samples]
    for padding in _SIDES[side]:
        for batch in _batches(len(samples), batch_sizes):
            padded = _pad([samples[k] for k in batch], padding, pad_value, np)
            outputs = _outputs(fn(padded), np)
            longest = max(lengths[k] for k in batch)
            for row, k in enumerate(batch):
                found = _first_difference(outputs, alone[k], row, lengths[k], longest, padding,
                                          atol, rtol, np)
                if found is None:
                    continue
                where, got, expected, diff, position = found
                members = ", ".join(str(m) for m in batch)
                message = (f"sample {k} (length {lengths[k]}) gives a different result in a "
                           f"{_WORD[padding]}-padded batch of {len(batch)} (samples {members}, "
                           f"row {row}) than alone: {where}: {got} in the batch, {expected} alone"
                           + (f" (|diff| {diff:.3g} > atol {atol:g} + rtol {rtol:g} * |alone|)"
                              if diff is not None else ""))
                raise PaddingLeakError(message, leak=_leak(k, padding, position, diff))


def _as_sample(sample: Any, np: Any) -> Any:
    if isinstance(sample, dict):
        return {key: np.asarray(value) for key, value in sample.items()}
    return np.asarray(sample)


def _length(sample: Any) -> int:
    arrays = list(sample.values()) if isinstance(sample, dict) else [sample]
    if not arrays or any(a.ndim == 0 for a in arrays):
        raise ValueError("each sample must be an array (length, ...) or a dict of such arrays")
    lengths = {a.shape[0] for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"a sample's arrays must share their first axis (the padded one), "
                         f"not lengths {sorted(lengths)}")
    return lengths.pop()


def _pad(batch: list[Any], padding: str, pad_value: Any, np: Any) -> Any:
    """The samples stacked and padded to the longest on `padding`'s side."""
    if isinstance(batch[0], dict):
        return {key: _pad_arrays([s[key] for s in batch], padding,
                                 pad_value.get(key, 0) if isinstance(pad_value, dict) else pad_value,
                                 np)
                for key in batch[0]}
    return _pad_arrays(batch, padding, pad_value, np)


def _pad_arrays(arrays: list[Any], padding: str, pad_value: Any, np: Any) -> Any:
    longest = max(a.shape[0] for a in arrays)
    out = np.full((len(arrays), longest, *arrays[0].shape[1:]), pad_value, dtype=arrays[0].dtype)
    for row, a in enumerate(arrays):
        if padding == "pre":
            out[row, longest - a.shape[0]:] = a
        else:
            out[row, :a.shape[0]] = a
    return out


def _outputs(result: Any, np: Any) -> list[Any]:
    """The function's outputs as a flat list of arrays (batch first)."""
    if isinstance(result, dict):
        return [np.asarray(result[key]) for key in sorted(result)]
    if isinstance(result, (list, tuple)):
        return [np.asarray(r) for r in result]
    return [np.asarray(result)]


def _batches(n: int, sizes: Sequence[int]) -> list[tuple[int, ...]]:
    """Batches of each size above 1 (at most n), in order and reversed."""
    out: list[tuple[int, ...]] = []
    for size in sorted({min(int(s), n) for s in sizes if int(s) > 1}):
        for order in (list(range(n)), list(range(n))[::-1]):
            out.extend(tuple(order[i:i + size]) for i in range(0, n - size + 1, size))
    return list(dict.fromkeys(out))


def _first_difference(outputs: list[Any], alone: list[Any], row: int, length: int, longest: int,
                      padding: str, atol: float, rtol: float, np: Any) -> tuple | None:
    """(where, got, expected, |diff| or None, position or -1) of the first output that
    differs, or None."""
    if len(outputs) != len(alone):
        return "the number of outputs", len(outputs), len(alone), None, -1
    for index, (batched, single) in enumerate(zip(outputs, alone)):
        name = f"output {index}, " if len(outputs) > 1 else ""
        got, expected = batched[row], single[0]
        aligned = (got.ndim >= 1 and expected.ndim >= 1 and got.shape[0] >= longest
                   and got.shape[0] - longest == expected.shape[0] - length)
        if aligned:  # the output follows the input's positions: keep the sample's own
            offset = longest - length if padding == "pre" else 0
            got = got[offset:offset + expected.shape[0]]
        if got.shape != expected.shape:
            return f"{name}shape", got.shape, expected.shape, None, -1
        if got.dtype.kind in "iub" and expected.dtype.kind in "iub":
            differs = got != expected
            diff = None
        else:
            delta = np.abs(got.astype("float64") - expected.astype("float64"))
            differs = ~(delta <= atol + rtol * np.abs(expected.astype("float64")))
            diff = delta
        if not differs.any():
            continue
        first = tuple(int(i) for i in np.argwhere(differs)[0])
        if got.ndim == 0:
            where = f"{name}value"
        else:
            where = f"{name}position {first[0]}" + (f", index {first[1:]}" if len(first) > 1 else "")
        return (where, _fmt(got[first]), _fmt(expected[first]),
                float(diff[first]) if diff is not None else None, first[0] if first else -1)
    return None


def _fmt(value: Any) -> str:
    try:
        number = value.item()
    except AttributeError:
        number = value
    return f"{number:.6g}" if isinstance(number, float) else str(number)


def _leak(sample: int, padding: str, position: int, diff: float | None) -> Any:
    from maskcheck.dynamic.compare import Leak

    return Leak(layer=None, layer_class=None, path=(), sample=sample, position=position,
                padding=padding, max_abs_diff=float("nan") if diff is None else diff,
                output=None, kind="batch")
