"""The reader's entry points: a layer call (or a loss) in, a `Reading` (or a verdict) out.

A call is traced once per variant (with and without the mask Keras hands it,
`trace.trace_call`); the dataflow (`interpret.run`) then runs over the traced
program once per scenario: which input axis holds padding, on which side,
what its padded positions hold (the padding's own values, or zeros), and
whether (batch, time) inputs are the padding mask handed over as ordinary
arguments. Each scenario's outcome at the output becomes an `AxisEffect`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

from maskcheck.static.ops.effects import MIXING_KIND, AxisEffect, Reading
from maskcheck.static.ops.interpret import run, unknown_ops
from maskcheck.static.ops.state import (CLEAN, DIRTY, POST, PRE, ZERO, Pad, State,
                                        first_axis)
from maskcheck.static.ops.trace import (Trace, concrete_shape, shape_of, trace_call,
                                        trace_loss)

_CACHE: dict[Any, Reading] = {}


def forget_readings() -> None:
    """Empty the cache of readings (one per layer class, config, shapes and call)."""
    _CACHE.clear()


def read_layer(layer: Any, input_shapes: list[tuple], input_dtypes: list[str], *,
               takes_mask: bool, known: Any,
               mask_keywords: tuple[tuple[str, tuple, str], ...] = (),
               layout: Any = None) -> Reading:
    """Trace `layer` on symbolic inputs and read what it does to each padded axis.

    `known(sub_layer)` returns the table semantics of a sub-layer maskcheck
    knows (read as one block), or None to read it op by op. `mask_keywords`
    are the explicit masks the model passes (``padding_mask=``): (keyword,
    shape, dtype), handed to every traced call as masks of the valid steps.
    `layout` is how the model calls the layer: ``(args, kwargs)`` with every
    input tensor replaced by its `Slot` (its index in `input_shapes`); None
    passes one input, or a list of them, positionally.
    """
    key = _cache_key(layer, input_shapes, input_dtypes, takes_mask)
    if key is not None:
        key = key + (mask_keywords, repr(layout))
    if key is not None and key in _CACHE:
        return _CACHE[key]
    try:
        reading = _read(layer, input_shapes, input_dtypes, takes_mask, known, mask_keywords,
                        layout)
    except Exception as exc:  # user code that does not trace: stay conservative
        reading = Reading(failed=f"{type(exc).__name__}: {_first_line(exc)}")
    if key is not None:
        _CACHE[key] = reading
    return reading


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else ""


def _cache_key(layer: Any, shapes: list[tuple], dtypes: list[str], takes_mask: bool) -> Any:
    try:
        config = json.dumps(layer.get_config(), sort_keys=True, default=repr)
    except Exception:
        return None
    config = re.sub(r'"name": "[^"]*"', "", config)
    if type(layer).__name__ == "Lambda":  # the function itself decides
        function = getattr(layer, "function", None)
        code = getattr(function, "__code__", None)
        if code is None:
            return None
        config += repr((code.co_code, code.co_consts, code.co_names))
    return (type(layer), config, tuple(map(tuple, shapes)), tuple(dtypes), takes_mask)


def _padded_axes(shape: tuple) -> list[int]:
    """The axes that could hold padding: between batch and features (axis 1 of a (B, T) input)."""
    rank = len(shape)
    if rank == 2:
        return [1]
    return list(range(1, rank - 1))


def _read(layer: Any, shapes: list[tuple], dtypes: list[str], takes_mask: bool,
          known: Any, mask_keywords: tuple = (), layout: Any = None) -> Reading:
    effects: dict[tuple[bool, int, int], AxisEffect] = {}
    zero_effects: dict[tuple[bool, int, int], AxisEffect] = {}
    mask_effects: dict[tuple[bool, int, int], AxisEffect] = {}
    mask_zero_effects: dict[tuple[bool, int, int], AxisEffect] = {}
    unknown: set[str] = set()
    mask_out, mismatch, follows = "none", "", False
    concrete = [concrete_shape(s) for s in shapes]
    positions = _mask_positions(concrete)
    failures = []
    for masked in ((False, True) if takes_mask else (False,)):
        try:
            trace = _Scenarios(trace_call(layer, concrete, dtypes, masked, known, mask_keywords,
                                          layout))
        except Exception as exc:  # e.g. a call that needs its mask: read the other variant
            failures.append(exc)
            continue
        unknown |= trace.unknown
        for index, shape in enumerate(concrete):
            if "int" not in dtypes[index] and "float" not in dtypes[index]:
                continue
            for axis in _padded_axes(shape):
                if masked and axis != 1:
                    continue
                for table, fill, masks in ((effects, DIRTY, ()), (zero_effects, ZERO, ()),
                                           (mask_effects, DIRTY, positions),
                                           (mask_zero_effects, ZERO, positions)):
                    if masks and (index in masks or axis != 1):
                        continue
                    by_side = {side: trace.run(index, axis, side, masked, fill, masks)
                               for side in (POST, PRE)}
                    table[(masked, index, axis)] = _effect_of(by_side, shape[axis], trace)
        if masked or not takes_mask:
            mask_out, mismatch = trace.mask_verdict()
            follows = trace.mask_follows()
    if failures and not effects:
        raise failures[0]
    return Reading(effects, mask_out, mismatch, tuple(sorted(unknown)), zero_effects=zero_effects,
                   mask_follows=follows, mask_positions=positions if mask_effects else (),
                   mask_effects=mask_effects, mask_zero_effects=mask_zero_effects)


def _mask_positions(shapes: list[tuple]) -> tuple[int, ...]:
    """Inputs that can be the padding mask handed over as an ordinary argument: shape
    (batch, time) where another input is (batch, time, ...features)."""
    longer = [s for s in shapes if len(s) >= 3]
    if not longer:
        return ()
    return tuple(i for i, s in enumerate(shapes)
                 if len(s) == 2 and any(s[1] == other[1] for other in longer))


def _effect_of(by_side: dict[str, "_Outcome"], length: int, trace: "_Scenarios") -> AxisEffect:
    post, pre = by_side[POST], by_side[PRE]
    if post.tainted and pre.tainted:
        kind = MIXING_KIND
    elif pre.tainted:
        kind = "causal"
    elif post.tainted:
        kind = "anticausal"
    else:
        kind = "pointwise"
    out_axis = post.out_axis
    changed = out_axis is not None and trace.out_length(out_axis) not in (None, length)
    return AxisEffect(kind, out_axis, flipped=post.out_side == PRE,
                      absolute=pre.absolute and not post.absolute,
                      masked_mean=post.masked_mean or pre.masked_mean,
                      length_changed=changed, moved=post.moved or pre.moved,
                      zero_sides=frozenset(side for side, outcome in by_side.items()
                                           if outcome.out_zero),
                      clean_sides=frozenset(side for side, outcome in by_side.items()
                                            if outcome.out_clean))


@dataclass
class _Outcome:
    tainted: bool
    out_axis: int | None
    out_side: str | None
    absolute: bool
    masked_mean: bool
    moved: bool = False
    out_zero: bool = False
    out_clean: bool = False  # the output's padded positions hold no padding values


class _Scenarios:
    """The scenarios run over one traced call. The mask verdicts read the states of the
    last scenario run."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.unknown = unknown_ops(trace.program)
        self._last: dict[str, State] = {}

    def out_length(self, axis: int) -> int | None:
        shape = shape_of(self.trace.output)
        return shape[axis] if shape is not None and axis < len(shape) else None

    def run(self, index: int, axis: int, side: str, masked: bool, fill: str = DIRTY,
            masks: tuple[int, ...] = ()) -> _Outcome:
        trace = self.trace
        states: dict[str, State] = {}
        for i, tensor in enumerate(trace.inputs):
            if i in masks:  # the padding mask, handed over as an ordinary argument
                states[tensor.name] = State(mask="+", mask_axes={1: side}, data=True)
                continue
            padded = {axis: Pad(side, fill)} if i == index else {}
            states[tensor.name] = State(pads=padded, data=True)
        if trace.mask is not None:
            states[trace.mask.name] = State(mask="+", mask_axes={1: side}, data=True) if masked \
                else State(data=True)
        for mask in trace.keyword_masks:
            rank = len(shape_of(mask) or (0, 0))
            states[mask.name] = State(mask="+", mask_axes={a: side for a in range(1, rank)},
                                      data=True)
        run(trace.program, states)
        self._last = states
        out = states.get(trace.output.name, CLEAN) if trace.output is not None else CLEAN
        tainted = out.tainted
        for p in out.pads.values():
            if p.fill == DIRTY and ((p.side == POST and p.shift > 0) or (p.side == PRE and p.shift < 0)):
                tainted = True
            if p.merged and p.fill == DIRTY:
                tainted = True  # flattened: whatever reads the output mixes the positions
        out = replace(out, pads={a: p for a, p in out.pads.items() if not p.merged})
        pad = out.pads.get(first_axis(out))
        out_axis = first_axis(out)
        moved = pad is not None and (pad.moved or pad.shift != 0)
        return _Outcome(tainted, out_axis, pad.side if pad else None, out.absolute,
                        out.masked_mean, moved=moved,
                        out_zero=pad is not None and pad.fill == ZERO and not tainted,
                        out_clean=pad is not None and pad.fill != DIRTY and not tainted)

    def mask_follows(self) -> bool:
        """The returned mask was computed from the mask it got (not handed back as is) and
        lines up with the output: same length, padding on the same side."""
        trace = self.trace
        if trace.out_mask is None or trace.mask is None:
            return False
        source = trace.out_mask
        while source.op.type in ("Identity", "Cast") and source.op.inputs:
            source = source.op.inputs[0]
        if source is trace.mask or source.name == trace.mask.name:
            return False
        out_shape, mask_shape = shape_of(trace.output), shape_of(trace.out_mask)
        if out_shape is None or mask_shape is None or len(mask_shape) < 2 or len(out_shape) < 2 \
                or mask_shape[1] != out_shape[1]:
            return False
        data = self._last.get(trace.output.name, CLEAN).pads.get(1)
        mask = self._last.get(trace.out_mask.name, CLEAN).mask_axes.get(1)
        return data is None or mask is None or data.side == mask

    def mask_verdict(self) -> tuple[str, str]:
        trace = self.trace
        if trace.out_mask is None:
            return "none", ""
        state = self._last.get(trace.out_mask.name, CLEAN)
        verdict = "passes" if state.mask else "generates"
        out_shape, mask_shape = shape_of(trace.output), shape_of(trace.out_mask)
        if out_shape is not None and mask_shape is not None and len(mask_shape) >= 2 \
                and len(out_shape) >= 2 and mask_shape[1] != out_shape[1]:
            return verdict, (f"its compute_mask returns a mask of length {mask_shape[1]} for an "
                             f"output of length {out_shape[1]}")
        if out_shape is not None and mask_shape is not None and len(mask_shape) > len(out_shape):
            return verdict, (f"its compute_mask returns a mask of rank {len(mask_shape)} for a "
                             f"rank-{len(out_shape)} output")
        return verdict, ""


def read_loss(loss: Any, pred_shapes: list[tuple], pred_dtypes: list[str], index: int,
              structure: Any = None) -> bool | None:
    """Does `loss(y_true, y_pred)` reduce output `index`'s padded steps without its mask?

    `loss` is a Loss with its own `__call__`, or a model's custom
    `compute_loss` wrapped as loss(y_true, y_pred). It is traced like a layer
    call (no data): the output `index` carries a mask over axis 1, labels and
    predictions hold padding there, and the scalar it returns is read by the
    same dataflow. True: padded positions reach the value; False: they do
    not; None: the code could not be read (no verdict; the probes decide).
    `structure` packs the flat predictions the way the model returns them.
    """
    try:
        return _read_loss(loss, pred_shapes, pred_dtypes, index, structure)
    except Exception:  # user code that does not trace: no static verdict
        return None


def _read_loss(loss: Any, pred_shapes: list[tuple], pred_dtypes: list[str], index: int,
               structure: Any) -> bool | None:
    concrete = [concrete_shape(s) for s in pred_shapes]
    padded_shape = concrete[index]
    if len(padded_shape) < 2:
        return None
    # sparse labels (batch, time) first, then labels shaped like the predictions
    for sparse in (True, False):
        traced = trace_loss(loss, concrete, pred_dtypes, index, structure, sparse)
        if traced is None:
            continue
        unknown = unknown_ops(traced.program)
        reached = False
        for side in (POST, PRE):
            states = {traced.labels.name: State(pads={1: Pad(side)}, data=True),
                      traced.pred.name: State(pads={1: Pad(side)}, data=True),
                      traced.mask.name: State(mask="+", mask_axes={1: side}, data=True)}
            run(traced.program, states)
            out = states.get(traced.value.name, CLEAN)
            reached = reached or out.tainted or any(p.fill == DIRTY for p in out.pads.values())
        if unknown and not reached:
            return None
        return reached
    return None
