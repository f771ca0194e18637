"""Measured differences become Divergence and Leak values.

`diverge` compares a perturbed pass with its reference inside the valid
region; `localize` walks the recorded layer calls to the first one whose
valid outputs diverge while its inputs do not; `output_leak` turns the
largest divergence of a model output into a `Leak`. Which output axes are
padded comes from the plan where it knows them; for the per-layer taps,
whose axes the plan does not carry, every axis of the padded length counts.

Imports `plan`, `batches` and `program`; NumPy inside functions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskcheck.dynamic.batches import Rows, expand
from maskcheck.dynamic.program import Run


@dataclass(frozen=True)
class Leak:
    """Evidence that padding changes what the model computes or learns."""

    layer: str | None
    layer_class: str | None
    path: tuple[str, ...]
    sample: int
    position: int
    padding: str
    max_abs_diff: float
    output: str | None
    kind: str = "outputs"  # "outputs" | "loss" | "gradients" | "loss-raises"

    def describe(self) -> str:
        """A few readable lines: where the leak starts and how big it is."""
        where = (f"layer {self.layer!r} ({self.layer_class})" if self.layer
                 else "the model itself (no single layer)")
        what = {"outputs": "valid outputs", "loss": "the loss",
                "gradients": "the gradients of the trainable weights",
                "loss-raises": "the compiled loss (it raises on the output's mask)",
                "generation": "the generated tokens or their next-token logits"}.get(self.kind,
                                                                                        self.kind)
        position = f", position {self.position}" if self.position >= 0 else ""
        lines = [
            f"padding leak: {what} change by up to {self.max_abs_diff:.6g} when only padding changes",
            f"  starts at: {where}" + (f", path {'/'.join(self.path)}" if self.path else ""),
            f"  sample {self.sample}{position}, {self.padding}-padding"
            + (f", output {self.output!r}" if self.output else ""),
        ]
        return "\n".join(lines)


@dataclass
class Measured:
    """A measurement before a rule names it: the Leak and the extra fields a message and
    evidence use. The dynamic modules measure; the rules' checks turn measurements into
    `DynamicFinding`s (dynamic modules never name a rule)."""

    leak: Leak
    fields: dict[str, Any]


@dataclass
class DynamicFinding:
    """A dynamic result before it becomes a Finding: the rule code, the Leak and the
    extra fields its message and evidence use."""

    code: str
    leak: Leak
    fields: dict[str, Any]


def by_layer(results: list[Measured]) -> list[Measured]:
    """One measurement per layer: the largest change, with every side that leaked in `sides`."""
    merged: dict[tuple, Measured] = {}
    sides: dict[tuple, list[str]] = {}
    for r in results:
        key = (r.leak.layer, r.leak.path)
        sides.setdefault(key, [])
        if r.leak.padding not in sides[key]:
            sides[key].append(r.leak.padding)
        if key not in merged or r.leak.max_abs_diff > merged[key].leak.max_abs_diff:
            merged[key] = r
    for key, r in merged.items():
        r.fields = {**r.fields, "sides": sorted(sides[key])}
    return list(merged.values())


def round_sig(value: float, digits: int = 6) -> float:
    """`value` rounded to `digits` significant digits (stable JSON evidence)."""
    if value != value or value in (float("inf"), float("-inf")) or value == 0:
        return float(value)
    return float(f"{value:.{digits}g}")


def valid_region(shape: tuple[int, ...], mask: Any, axes: tuple[int, ...] | None = None) -> Any:
    """Boolean array broadcastable to `shape`: entries that index only valid positions.

    With one padded axis of length T, every axis of size T after the batch
    axis is treated as a time axis (so attention scores (B, H, T, T) count
    only valid query/key pairs); with two (images) the axes 1 and 2. A tensor
    without such axes is compared whole.
    """
    import numpy as np

    n = shape[0]
    k = mask.ndim - 1
    region = np.ones((n,) + (1,) * (len(shape) - 1), dtype=bool)
    if axes is not None:  # the plan says which axes are padded: only those are masked
        if k == 1:
            for axis in axes:
                if axis < len(shape) and shape[axis] == mask.shape[1]:
                    view = [n] + [1] * (len(shape) - 1)
                    view[axis] = mask.shape[1]
                    region = region & mask.reshape(view)
            return region
        if axes and len(shape) >= 1 + k and tuple(shape[1:1 + k]) == tuple(mask.shape[1:]):
            return expand(mask, len(shape))
        return region
    if k == 1:
        t = mask.shape[1]
        for axis in range(1, len(shape)):
            if shape[axis] == t:
                view = [n] + [1] * (len(shape) - 1)
                view[axis] = t
                region = region & mask.reshape(view)
        return region
    if len(shape) >= 1 + k and tuple(shape[1:1 + k]) == tuple(mask.shape[1:]):
        return expand(mask, len(shape))
    return region


@dataclass
class Divergence:
    rows: Any  # (N,) bool: row diverges
    diff: Any  # (N,) max abs diff per row (over the compared region)
    position: Any  # (N,) index along axis 1 of the max diff, -1 if none


#: Values `diverge` compares at once: its float64 temporaries stay near 32 MiB each
#: whatever the vocabulary (a language model's logits are positions x vocabulary per row).
CHUNK_ELEMENTS = 1 << 22


def diverge(new: Any, ref: Any, valid: Any, atol: float, rtol: float,
            ref_rows: Any = None) -> Divergence:
    """Where `new` differs from `ref` beyond tolerance, inside `valid`; row i of `new` is
    compared with row `ref_rows[i]` of `ref` when given (no copy of `ref` is made).

    Compared a few rows at a time. A float32 chunk is screened in float32 first: where
    every difference is under half its tolerance (float32 rounding is a ten-millionth of
    that), no value can exceed it, and the exact float64 comparison is skipped. Results
    are exactly those of comparing everything in float64."""
    import numpy as np

    n = new.shape[0]
    rows = np.zeros(n, dtype=bool)
    best = np.zeros(n, dtype=np.float64)
    position = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return Divergence(rows, best, position)
    try:
        valid = np.broadcast_to(valid, new.shape)
    except ValueError:  # a region wider than the values: compare whole, as its shape says
        b = ref if ref_rows is None else ref[np.asarray(ref_rows)]
        return Divergence(*_diverge_exact(new, b, valid, atol, rtol))
    step = max(1, CHUNK_ELEMENTS // max(1, new.size // n))
    for start in range(0, n, step):
        part = slice(start, min(start + step, n))
        a = new[part]
        b = ref[part] if ref_rows is None else ref[np.asarray(ref_rows)[part]]
        v = valid[part]
        if a.dtype == np.float32 and b.dtype == np.float32 and not _may_exceed(a, b, v, atol, rtol):
            continue
        r, d, p = _diverge_exact(a, b, v, atol, rtol)
        rows[part], best[part], position[part] = r, d, p
    return Divergence(rows, best, position)


def _may_exceed(a: Any, b: Any, valid: Any, atol: float, rtol: float) -> bool:
    """Whether some valid float32 difference is at least half its tolerance (or not finite)."""
    import numpy as np

    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - b)
        half = np.float32(0.5) * (np.float32(atol) + np.float32(rtol) * np.abs(b))
        return bool((valid & ~(diff < half)).any())


def _diverge_exact(new: Any, ref: Any, valid: Any, atol: float, rtol: float) -> tuple[Any, Any, Any]:
    import numpy as np

    new = np.asarray(new, dtype=np.float64) if new.dtype != np.float64 else new
    ref = np.asarray(ref, dtype=np.float64) if ref.dtype != np.float64 else ref
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(new) & np.isfinite(ref)
        same_nonfinite = ~finite & ((np.isnan(new) & np.isnan(ref)) | (new == ref))
        diff = np.where(finite, np.abs(new - ref), np.where(same_nonfinite, 0.0, np.inf))
        exceed = (diff > atol + rtol * np.where(finite, np.abs(ref), 0.0)) & valid
    n = new.shape[0]
    flat_exceed = exceed.reshape(n, -1)
    flat_diff = np.where(exceed, diff, 0.0).reshape(n, -1)
    rows = flat_exceed.any(axis=1)
    arg = flat_diff.argmax(axis=1)
    best = flat_diff[np.arange(n), arg]
    if new.ndim >= 2:
        position = np.unravel_index(arg, new.shape[1:])[0].astype(np.int64)
    else:
        position = np.full(n, -1, dtype=np.int64)
    return rows, best, np.where(rows, position, -1)


def localize(run: Run, ref: Run | None, rows: Any, base_index: Any, mask: Any,
             atol: float, rtol: float, ref_index: Any = None) -> Any:
    """The first recorded call whose outputs diverge (on `rows`) while its inputs do not.

    Compares `run` rows against `ref` (or `run` itself) at `base_index`.
    Falls back to the first call whose outputs diverge; None if none does.
    """
    ref = ref or run
    ref_index = base_index if ref_index is None else ref_index
    first_any = None
    if len(ref.records) != len(run.records):
        return None
    for record, ref_record in zip(run.records, ref.records):
        ins, outs = run.io(record)
        ins_ref, outs_ref = ref.io(ref_record)

        def any_div(arrays: list[Any], refs: list[Any]) -> bool:
            for a, r in zip(arrays, refs):
                if a.ndim == 0 or a.shape[0] != len(base_index) or a.shape != r.shape:
                    continue
                a_rows = a[rows]
                valid = valid_region(a_rows.shape, mask[rows])
                if diverge(a_rows, r, valid, atol, rtol, ref_rows=ref_index[rows]).rows.any():
                    return True
            return False

        if any_div(outs, outs_ref):
            if first_any is None:
                first_any = record
            if not any_div(ins, ins_ref):
                return record
    return first_any


def output_leak(run: Run, ref: Run | None, rows: Rows, compare: Any, base_index: Any,
                ref_index: Any, padding: str | None, atol: float, rtol: float,
                kind: str = "outputs", output_axes: list[tuple[int, ...]] | None = None) -> Leak | None:
    """Leak over the model outputs for rows selected by `compare` (rows with valid positions)."""
    import numpy as np

    ref = ref or run
    ref_index = base_index if ref_index is None else ref_index
    compare = compare & (rows.lengths > 0)
    best = None
    for j, (out, ref_out, name) in enumerate(zip(run.outputs, ref.outputs, run.output_names)):
        if out.ndim == 0 or out.shape[0] != rows.n:
            continue
        axes = output_axes[j] if output_axes and j < len(output_axes) else None
        valid = valid_region(out.shape, rows.mask, axes) & expand(compare, out.ndim)
        div = diverge(out, ref_out, valid, atol, rtol, ref_rows=ref_index)
        if div.rows.any():
            r = int(np.argmax(np.where(div.rows, div.diff, -1.0)))
            timed = (1 in axes) if axes is not None else (out.ndim >= 2 and out.shape[1] == rows.mask.shape[1])
            if best is None or div.diff[r] > best[0]:
                best = (float(div.diff[r]), r, int(div.position[r]) if timed else -1, name, div.rows)
    if best is None:
        return None
    diff, r, position, name, leaking = best
    record = localize(run, ref, leaking, base_index, rows.mask, atol, rtol, ref_index)
    return Leak(layer=record.name if record else None,
                layer_class=record.class_name if record else None,
                path=record.path if record else (),
                sample=int(rows.sample[r]), position=position,
                padding=padding or rows.side[r], max_abs_diff=round_sig(diff),
                output=name, kind=kind)


def loss_tolerance(loss: float, atol: float, rtol: float) -> float:
    """How far a loss may move and still count as unchanged.

    A loss that applies the mask multiplies padded positions by exactly zero,
    so it does not move at all; an untrained model's loss, on the other hand,
    moves only a little when padded labels change (its predictions are near
    uniform). Hence a tighter bound than for outputs: at most 1e-7 absolute
    and 1e-6 relative (looser only where the user asks for tighter outputs).
    """
    return min(atol, 1e-7) + min(rtol, 1e-6) * abs(loss)


def grad_diff(new: list[Any], ref: list[Any], atol: float, rtol: float) -> float:
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


def diverging_layers(run: Run, rows: Rows, atol: float, rtol: float) -> set[str]:
    """Names of layers whose valid outputs diverged under some perturbation (for refutation)."""

    names: set[str] = set()
    compare = (rows.draw > 0) & (rows.lengths > 0)
    if not compare.any():
        return names
    for record in run.records:
        _, outs = run.io(record)
        for a in outs:
            if a.ndim == 0 or a.shape[0] != rows.n:
                continue
            valid = valid_region(a.shape, rows.mask) & expand(compare, a.ndim)
            if diverge(a, a, valid, atol, rtol, ref_rows=rows.base_row).rows.any():
                names.add(record.name)
                break
    return names


def output_layer(model: Any, j: int) -> tuple[str | None, str | None, tuple[str, ...]]:
    """The layer producing output j: (name, class name, path)."""
    outputs = getattr(model, "outputs", None)
    try:
        op = outputs[j]._keras_history.operation if outputs else None
    except (AttributeError, IndexError, TypeError, ValueError):
        op = None
    if op is not None:
        return op.name, type(op).__name__, (model.name, op.name)
    return model.name, type(model).__name__, (model.name,)
