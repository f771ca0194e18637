"""Per-operation rules of the op-level reader, in a table keyed by operation type.

A rule takes a TensorFlow operation of the traced graph and the `State` of each
of its inputs, and returns the state of its outputs (one `State` for all of
them, or a tuple with one per output). `AXIS_RULES[op.type]` is the rule;
an operation the table lacks goes through `conservative`, which keeps its
verdict assumed. Adding an operation is one line here (or one name in one of
the kind sets below) and one test.

Rules read the graph only through `trace` (static shapes and constant values):
no data ever flows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping, Union

from maskcheck.static.ops.state import (CLEAN, DIRTY, NEG, OTHER, POST, PRE, ZERO, Pad, State,
                                        merge_flags)
from maskcheck.static.ops.trace import axes_value, ints, positive_constant, scalar, shape_of, static_value

#: A rule: (operation, its inputs' states) -> its outputs' state, or one state per output.
Rule = Callable[[Any, list], Union[State, tuple]]


# -------------------------------------------------------------- op kinds ---

UNARY = frozenset({
    "Identity", "Cast", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Tanh", "Sigmoid", "Exp",
    "Expm1", "Log", "Log1p", "Neg", "Abs", "Square", "Sqrt", "Rsqrt", "Erf", "Erfc",
    "Softplus", "Softsign", "Sin", "Cos", "Tan", "Floor", "Ceil", "Round", "Rint", "Sign",
    "Reciprocal", "Inv", "StopGradient", "PreventGradient", "Snapshot", "EnsureShape",
    "CheckNumerics", "IsNan", "IsInf", "IsFinite", "Gelu", "Atan", "Asin", "Acos", "Sinh",
    "Cosh", "Asinh", "Acosh", "Atanh", "Real", "Imag", "Conj", "Digamma", "Lgamma",
    "BitwiseNot", "Invert", "ClipByValue", "StridedSliceGrad", "IdentityN",
})
BINARY = frozenset({
    "AddV2", "Add", "Sub", "Mul", "MulNoNan", "RealDiv", "Div", "DivNoNan", "FloorDiv",
    "FloorMod", "TruncateDiv", "Maximum", "Minimum", "Pow", "SquaredDifference", "BiasAdd",
    "Atan2", "Xdivy", "Xlogy", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "LeftShift",
    "RightShift", "Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual",
    "LogicalAnd", "LogicalOr", "ApproximateEqual",
})
#: unary operations with f(0) = 0: zeroed padding stays zero
KEEPS_ZERO = frozenset({
    "Identity", "Cast", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Tanh", "Neg", "Abs",
    "Square", "Sqrt", "Sin", "Tan", "Softsign", "Sign", "Floor", "Ceil", "Round", "Rint",
    "StopGradient", "PreventGradient", "Snapshot", "EnsureShape", "CheckNumerics", "Gelu",
    "Atan", "Asin", "Sinh", "Asinh", "Atanh", "Real", "Imag", "Conj", "IdentityN", "Erf",
})
#: reductions that zeroed padding still changes (a mean divides by the full length)
ZEROS_COUNT = frozenset({"Mean", "Max", "Min", "Prod", "ArgMax", "ArgMin", "All"})
COMPARE = frozenset({"Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual"})
#: reductions over the axes given as their second input
REDUCE = frozenset({"Sum", "Mean", "Max", "Min", "Prod", "All", "Any", "ArgMax", "ArgMin",
                    "EuclideanNorm"})
SHAPE_ONLY = frozenset({"Shape", "ShapeN", "Size", "Rank", "Const", "VarHandleOp",
                        "ReadVariableOp", "NoOp", "Placeholder", "Range", "Fill",
                        "ZerosLike", "OnesLike", "RandomUniform", "RandomStandardNormal",
                        "StatelessRandomUniformV2", "StatelessRandomNormalV2",
                        "StatelessRandomGetKeyCounter", "AssignVariableOp",
                        "AssignAddVariableOp", "AssignSubVariableOp", "VarIsInitializedOp",
                        "LinSpace", "BroadcastArgs"})
CONVS = frozenset({"Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv", "MaxPool", "AvgPool",
                   "MaxPool3D", "AvgPool3D", "MaxPoolV2"})
MIXERS = frozenset({"Softmax", "LogSoftmax", "Roll", "TopKV2", "Sort", "FFT", "IFFT",
                    "RFFT", "IRFFT", "ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic",
                    "ResizeArea", "ScaleAndTranslate", "L2Loss", "MatrixBandPart"})

#: a strided slice step that reverses the whole axis (``x[:, ::-1]``)
_REVERSED = "reversed"


# ----------------------------------------------------------- simple rules ---

def _shape_only(op: Any, ins: list[State]) -> State:
    """Shapes, constants, variables, random draws: no padding reaches the output."""
    return CLEAN


def _unary(op: Any, ins: list[State]) -> State:
    kind = op.type
    state = ins[0]
    if kind == "Neg" and state.mask:
        state = replace(state, mask=_negate(state.mask))
    if kind == "ClipByValue":
        state = _elementwise(op, ins)
    if kind not in KEEPS_ZERO:  # exp(0) = 1, sigmoid(0) = 0.5: no longer zero
        state = _unzeroed(state)
    return state


def _logical_not(op: Any, ins: list[State]) -> State:
    return replace(ins[0], mask=_invert(ins[0].mask)) if ins[0].mask else ins[0]


def _reduce_rule(op: Any, ins: list[State]) -> State:
    return _reduce(op, ins[0])


# ------------------------------------------------ rules with their own logic ---

def _binary(op: Any, ins: list[State]) -> State:
    kind = op.type
    if kind in ("Select", "SelectV2", "Where"):
        return _select(op, ins)
    masks = [s for s in ins if s.mask]
    others = [s for s in ins if not s.mask]
    out_shape = shape_of(op.outputs[0]) or ()
    if masks and not any(s.data or s.pads for s in others):
        # arithmetic on masks and constants stays a mask (1 - mask, mask * -1e9)
        return _mask_arith(op, ins)
    if kind in COMPARE and not masks and len(ins) == 2:
        data = [s for s in ins if s.data and s.pads]
        if data and not all(s.data for s in ins):  # tokens != 0: a mask made from values
            axes = {a: p.side for a, p in data[0].pads.items()}
            polarity = "-" if kind == "Equal" else "+"
            return State(mask=polarity, mask_axes=axes, data=True)
    state = _elementwise(op, ins)
    if masks and others:
        mask = masks[0]
        if kind in ("Mul", "MulNoNan") and mask.mask == "+":
            pads = {a: replace(p, fill=ZERO) if a in _aligned(mask, op, out_shape) else p
                    for a, p in state.pads.items()}
            state = replace(state, pads=pads)
        elif (kind in ("AddV2", "Add", "Sub") and mask.mask == "neg") or (
                kind == "Sub" and mask.mask == "pos" and ins[1] is mask):
            pads = {a: replace(p, fill=NEG) if a in _aligned(mask, op, out_shape) else p
                    for a, p in state.pads.items()}
            state = replace(state, pads=pads)
    if kind in ("AddV2", "Add", "Sub", "BiasAdd", "Maximum", "Minimum", "Pow",
                "SquaredDifference") and any(not s.pads and not s.mask for s in ins):
        state = _unzeroed(state)  # x + b: zeroed padding now holds b
    if kind in ("Mul", "MulNoNan"):  # zeros at padded positions kill what they multiply
        zeroed = {a for s in ins for a, p in s.pads.items() if p.fill == ZERO}
        state = replace(state, pads={a: replace(p, fill=ZERO) if a in zeroed else p
                                     for a, p in state.pads.items()})
    if kind in ("RealDiv", "Div") and len(ins) == 2 and ins[1].count:
        state = replace(state, masked_mean=True)
    if kind in ("AddV2", "Add", "Maximum") and any(s.count for s in ins):
        const = [t for t, s in zip(op.inputs, ins) if not s.count]
        if const and positive_constant(const[0]):
            return replace(state, count=False)
        return replace(state, count=any(s.count for s in ins))
    return state


def _mask_arith(op: Any, ins: list[State]) -> State:
    kind = op.type
    mask = next(s for s in ins if s.mask)
    consts = [t for t, s in zip(op.inputs, ins) if not s.mask]
    value = scalar(consts[0]) if consts else None
    polarity = mask.mask
    if kind == "Sub" and len(ins) == 2 and not ins[0].mask and value is not None:
        polarity = _invert(polarity)  # 1 - mask
    elif kind in ("Mul", "MulNoNan") and value is not None:
        if value < -1e3 and polarity == "-":
            polarity = "neg"
        elif value > 1e3 and polarity == "-":
            polarity = "pos"  # (1 - mask) * 1e9: subtracted, it pushes padding down
        elif value < -1e3 and polarity == "pos":
            polarity = "neg"
        elif value < 0:
            polarity = _negate(polarity)
    elif kind in ("LogicalAnd", "Mul", "Minimum") and len([s for s in ins if s.mask]) > 1:
        polarity = "+"
    rank = len(shape_of(op.outputs[0]) or ())
    axes: dict[int, str] = {}
    for tensor, state in zip(op.inputs, ins):
        offset = rank - len(shape_of(tensor) or ())
        for axis, side in state.mask_axes.items():
            axes.setdefault(axis + offset, side)
    return replace(mask, mask=polarity, mask_axes=axes)


def _select(op: Any, ins: list[State]) -> State:
    cond, a, b = ins[0], ins[1], ins[2]
    out_shape = shape_of(op.outputs[0]) or ()
    state = _elementwise(op, [a, b])
    if cond.mask in ("+", "-"):
        keep = a if cond.mask == "+" else b
        fill = b if cond.mask == "+" else a
        fill_tensor = op.inputs[2] if cond.mask == "+" else op.inputs[1]
        value = scalar(fill_tensor)
        if value == 0 and not keep.pads and not keep.mask:
            # where(mask, w, 0): a weighted mask, still zero at the padded steps
            return replace(CLEAN, mask=cond.mask, mask_axes=dict(cond.mask_axes), data=True)
        neutral = NEG if value is not None and value < -1e3 else (ZERO if value == 0 else OTHER)
        if fill.data and fill.pads:
            neutral = OTHER if all(p.fill != DIRTY for p in fill.pads.values()) else DIRTY
        axes = _aligned(cond, op, out_shape)
        pads = dict(keep.pads)
        pads = {ax: replace(p, fill=neutral) if ax in axes and neutral != DIRTY else p
                for ax, p in pads.items()}
        state = replace(state, pads=pads, tainted=keep.tainted or fill.tainted)
    return state


def _reduce(op: Any, state: State) -> State:
    axes = axes_value(op.inputs[1], len(shape_of(op.inputs[0]) or ()))
    keep = bool(op.get_attr("keep_dims")) if "keep_dims" in op.node_def.attr else False
    tainted = state.tainted
    pads: dict[int, Pad] = {}
    for axis, pad in state.pads.items():
        if axes is None or axis in axes:
            # zeros are nothing to a sum, but a mean counts them and a max sees them
            if pad.fill == DIRTY or (pad.fill == ZERO and op.type in ZEROS_COUNT):
                tainted = True
            continue
        new = axis if keep else axis - sum(1 for a in (axes or ()) if a < axis)
        pads[new] = pad
    out = replace(state, pads=pads, tainted=tainted)
    if state.mask:
        summed = axes is None or any(a in axes for a in state.mask_axes)
        if summed and op.type in ("Sum", "Mean"):
            return replace(CLEAN, count=op.type == "Sum", data=True, pads=pads)
        if summed:
            return replace(CLEAN, data=True)
        return replace(state, mask_axes=_move_axes(state.mask_axes, axes, keep))
    return out


def _conv(op: Any, ins: list[State]) -> State:
    state = ins[0]
    shape = shape_of(op.inputs[0]) or ()
    kernel = None
    if op.type in ("Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv"):
        kernel = (shape_of(op.inputs[1]) or ())[:len(shape) - 2]
    else:
        kernel = tuple(op.get_attr("ksize"))[1:-1] if "ksize" in op.node_def.attr else None
    padding = op.get_attr("padding").decode() if "padding" in op.node_def.attr else "SAME"
    tainted = state.tainted or any(s.tainted for s in ins[1:])
    pads = {}
    for axis, pad in state.pads.items():
        k = kernel[axis - 1] if kernel and axis - 1 < len(kernel) else 3
        if k is None or k > 1:
            if padding == "VALID":
                back, ahead = -pad.shift, (k or 3) - 1 + pad.shift
            else:
                back = ahead = (k or 3) // 2
            # a pooling window at the edge of a full-length row sees its own padding,
            # not the zeros: only a convolution treats zeroed padding as nothing
            neutral = pad.fill != DIRTY and not (pad.fill == ZERO and "Pool" in op.type)
            if not neutral and ((pad.side == POST and ahead > 0)
                                or (pad.side == PRE and back > 0)):
                tainted = True
            pad = Pad(pad.side, DIRTY if pad.fill == DIRTY else OTHER)
        pads[axis] = replace(pad, shift=0)
    return State(pads, tainted, data=True, absolute=state.absolute,
                 masked_mean=state.masked_mean, unknown=state.unknown)


def _mix_all(op: Any, ins: list[State]) -> State:
    """Softmax, roll, sort, FFT, resizing: every position along the acted axis sees every other."""
    state = ins[0]
    rank = len(shape_of(op.inputs[0]) or ())
    acted = {rank - 1} if op.type in ("Softmax", "LogSoftmax", "TopKV2", "Sort") else \
        set(range(1, max(rank - 1, 2)))
    if op.type == "Roll":
        acted = axes_value(op.inputs[2], rank) or set(range(1, rank))
    tainted = state.tainted
    pads = {}
    for axis, pad in state.pads.items():
        if axis in acted:
            if pad.fill == DIRTY:
                tainted = True
            pad = Pad(pad.side, ZERO if (op.type == "Softmax" and pad.fill == NEG) else OTHER,
                      moved=op.type == "Roll")
        pads[axis] = pad
    return replace(state, pads=pads, tainted=tainted, mask="", mask_axes={})


def _reshape(op: Any, ins: list[State]) -> State:
    state = ins[0]
    src, dst = shape_of(op.inputs[0]), shape_of(op.outputs[0])
    if src is None or dst is None or None in src or None in dst:
        return _unknown(ins) if (state.pads or state.mask) else state
    pads: dict[int, Pad] = {}
    tainted = state.tainted
    for axis, pad in state.pads.items():
        placed = _reshaped(src, dst, axis, pad.merged)
        if placed is None:
            tainted = tainted or pad.fill == DIRTY
            continue
        target, merged = placed
        pads[target] = replace(pad, merged=merged)
    mask_axes = {}
    for axis, side in state.mask_axes.items():
        placed = _reshaped(src, dst, axis, None)
        if placed is not None and placed[1] is None:
            mask_axes[placed[0]] = side
    if state.mask and not mask_axes:
        return replace(CLEAN, data=True)
    return replace(state, pads=pads, tainted=tainted, mask_axes=mask_axes)


def _transpose(op: Any, ins: list[State]) -> State:
    perm = ints(op.inputs[1])
    if perm is None:
        return _unknown(ins)
    return _remap(ins[0], lambda a: perm.index(a) if a in perm else None, keep=True)


def _expand_dims(op: Any, ins: list[State]) -> State:
    rank = len(shape_of(op.outputs[0]) or ())
    value = ints(op.inputs[1])
    at = (value[0] % rank) if value else 0
    return _remap(ins[0], lambda a: a + 1 if a >= at else a, keep=True)


def _squeeze(op: Any, ins: list[State]) -> State:
    src = shape_of(op.inputs[0]) or ()
    dims = list(op.get_attr("squeeze_dims")) or [i for i, d in enumerate(src) if d == 1]
    dims = [d % len(src) for d in dims] if src else dims
    return _remap(ins[0], lambda a: None if a in dims
                  else a - sum(1 for d in dims if d < a), keep=True)


def _strided_slice(op: Any, ins: list[State]) -> State:
    state = ins[0]
    src = shape_of(op.inputs[0]) or ()
    begin, strides = ints(op.inputs[1]), ints(op.inputs[3])
    bits = {k: op.get_attr(k) for k in ("begin_mask", "end_mask", "ellipsis_mask",
                                        "new_axis_mask", "shrink_axis_mask")}
    if begin is None or strides is None:
        return _unknown(ins) if (state.pads or state.mask) else state
    # walk the slice spec: which input axis lands where, and how it is sliced
    plan: dict[int, tuple[int | None, int, int, bool]] = {}  # in axis -> (out, start, step, shrink)
    in_axis = out_axis = 0
    entries = len(begin)
    consumed = sum(1 for j in range(entries)
                   if not (bits["new_axis_mask"] >> j & 1 or bits["ellipsis_mask"] >> j & 1))
    for j in range(entries):
        if bits["ellipsis_mask"] >> j & 1:
            for _ in range(len(src) - consumed):
                plan[in_axis] = (out_axis, 0, 1, False)
                in_axis += 1
                out_axis += 1
        elif bits["new_axis_mask"] >> j & 1:
            out_axis += 1
        elif bits["shrink_axis_mask"] >> j & 1:
            plan[in_axis] = (None, begin[j], 1, True)
            in_axis += 1
        else:
            start = 0 if bits["begin_mask"] >> j & 1 else begin[j]
            step = strides[j]
            if step == -1 and bits["begin_mask"] >> j & 1 and bits["end_mask"] >> j & 1:
                step = _REVERSED  # x[:, ::-1]: the whole axis reversed
            plan[in_axis] = (out_axis, start, step, False)
            in_axis += 1
            out_axis += 1
    while in_axis < len(src):
        plan[in_axis] = (out_axis, 0, 1, False)
        in_axis += 1
        out_axis += 1
    pads: dict[int, Pad] = {}
    tainted = state.tainted
    for axis, pad in state.pads.items():
        target, start, step, shrink = plan.get(axis, (axis, 0, 1, False))
        if shrink:  # x[:, k]: one fixed position, valid under one padding side only
            if pad.fill == DIRTY and ((start >= 0 and pad.side == PRE)
                                      or (start < 0 and pad.side == POST)):
                tainted = True
            continue
        if step == _REVERSED:  # as ReverseV2: the padding moves to the other end
            pads[target] = replace(pad, side=PRE if pad.side == POST else POST,
                                   shift=-pad.shift, moved=True)
            continue
        if step != 1:  # resampled positions
            if pad.fill == DIRTY:
                tainted = True
            pads[target] = Pad(pad.side, OTHER)
            continue
        if start < 0:
            start = src[axis] + start if src and src[axis] else 0
        pads[target] = replace(pad, shift=pad.shift + start, moved=pad.moved or start != 0)
    mask_axes: dict[int, str] = {}
    for axis, side in state.mask_axes.items():
        target, start, step, shrink = plan.get(axis, (axis, 0, 1, False))
        if target is not None:
            mask_axes[target] = (PRE if side == POST else POST) if step == _REVERSED else side
    if state.mask and not mask_axes:
        return replace(CLEAN, data=True)
    return replace(state, pads=pads, tainted=tainted, mask_axes=mask_axes)


def _slice(op: Any, ins: list[State]) -> State:
    begin = ints(op.inputs[1])
    state = ins[0]
    if begin is None:
        return _unknown(ins) if state.pads else state
    pads = {a: replace(p, shift=p.shift + begin[a]) if a < len(begin) else p
            for a, p in state.pads.items()}
    return replace(state, pads=pads)


def _concat_v2(op: Any, ins: list[State]) -> State:
    rank = len(shape_of(op.outputs[0]) or ())
    axis = ints(op.inputs[-1])
    axis = axis[0] % rank if axis else None
    parts = ins[:-1]
    return _concat(op, parts, axis)


def _pack(op: Any, ins: list[State]) -> State:
    axis = op.get_attr("axis")
    rank = len(shape_of(op.outputs[0]) or ())
    axis %= rank
    moved = [_remap(s, lambda a: a + 1 if a >= axis else a, keep=True) for s in ins]
    return _concat(op, moved, None)


def _concat(op: Any, parts: list[State], axis: int | None) -> State:
    flags = merge_flags(parts)
    pads: dict[int, Pad] = {}
    offset = 0
    for part, tensor in zip(parts, op.inputs):
        for a, p in part.pads.items():
            if a == axis:
                # joined along the padded axis: a part that starts `offset` steps
                # in holds at position u the value of position u - offset
                if len([q for q in parts if a in q.pads or q.data]) > 1 and p.fill == DIRTY \
                        and part is not parts[0]:
                    flags["tainted"] = True  # padding of one part lands inside another
                pads.setdefault(a, replace(p, shift=p.shift - offset,
                                           moved=p.moved or p.shift != offset))
            else:
                pads.setdefault(a, p)
        size = (shape_of(tensor) or ())[axis] if axis is not None and axis < len(
            shape_of(tensor) or ()) else None
        offset += size or 0
    masks = [p for p in parts if p.mask]
    if masks and len(masks) == len(parts):
        return replace(masks[0])
    return State(pads, **flags)


def _unpack(op: Any, ins: list[State]) -> State:
    axis = op.get_attr("axis") % len(shape_of(op.inputs[0]) or (1,))
    return _reduce_like(ins[0], axis, "pick")


def _split_op(op: Any, ins: list[State]) -> State:
    rank = len(shape_of(op.inputs[1]) or ())
    axis = ints(op.inputs[0])
    return _split(ins[1], axis[0] % rank if axis else None)


def _split_v(op: Any, ins: list[State]) -> State:
    rank = len(shape_of(op.inputs[0]) or ())
    axis = ints(op.inputs[2])
    return _split(ins[0], axis[0] % rank if axis else None)


def _split(state: State, axis: int | None) -> State:
    if axis is None or axis in state.pads:
        return _unknown([state]) if state.pads else state
    return state


def _reduce_like(state: State, axis: int, how: str) -> State:
    pads = {}
    tainted = state.tainted
    for a, p in state.pads.items():
        if a == axis:
            if p.fill == DIRTY:
                tainted = True
            continue
        pads[a - 1 if a > axis else a] = p
    return replace(state, pads=pads, tainted=tainted)


def _pad(op: Any, ins: list[State]) -> State:
    amounts = static_value(op.inputs[1])
    state = ins[0]
    if amounts is None:
        return _unknown(ins) if state.pads else state
    pads = {}
    for a, p in state.pads.items():
        before = int(amounts[a][0]) if a < len(amounts) else 0
        pads[a] = replace(p, shift=p.shift - before, moved=p.moved or before != 0)
    return replace(state, pads=pads)


def _reverse(op: Any, ins: list[State]) -> State:
    rank = len(shape_of(op.inputs[0]) or ())
    axes = axes_value(op.inputs[1], rank) or set()
    state = ins[0]
    pads = {a: replace(p, side=PRE if p.side == POST else POST, shift=-p.shift, moved=True)
            if a in axes else p for a, p in state.pads.items()}
    mask_axes = {a: (PRE if s == POST else POST) if a in axes else s
                 for a, s in state.mask_axes.items()}
    return replace(state, pads=pads, mask_axes=mask_axes)


def _tile(op: Any, ins: list[State]) -> State:
    reps = ints(op.inputs[1])
    state = ins[0]
    if reps is None or any(reps[a] != 1 for a in state.pads if a < len(reps)):
        return _unknown(ins) if state.pads else state
    return state


def _broadcast_to(op: Any, ins: list[State]) -> State:
    src, dst = shape_of(op.inputs[0]) or (), shape_of(op.outputs[0]) or ()
    offset = len(dst) - len(src)
    return _remap(ins[0], lambda a: a + offset, keep=True)


def _gather(op: Any, ins: list[State]) -> State:
    params, indices = ins[0], ins[1]
    axis = ints(op.inputs[2])
    axis = axis[0] if axis else 0
    if not params.pads and not params.mask:
        # an embedding lookup: each position reads its own row
        prefix = axis
        state = _remap(indices, lambda a: a + prefix, keep=True)
        return replace(state, mask="", mask_axes={}, data=True,
                       tainted=indices.tainted or params.tainted)
    if axis in params.pads:
        return replace(_unknown(ins), tainted=params.pads[axis].fill == DIRTY
                       or params.tainted)
    return replace(params, tainted=params.tainted or indices.tainted)


def _one_hot(op: Any, ins: list[State]) -> State:
    return replace(ins[0], mask="", mask_axes={})


def _cross_entropy(op: Any, ins: list[State]) -> tuple[State, ...]:
    """Per-row cross-entropy: the class axis (last) is reduced, rows stay apart."""
    features = _reduce_like(ins[0], len(shape_of(op.inputs[0]) or (1, 1)) - 1, "pick")
    labels = ins[1]
    if ins[1].pads and len(shape_of(op.inputs[1]) or ()) == len(shape_of(op.inputs[0]) or ()):
        labels = _reduce_like(ins[1], len(shape_of(op.inputs[1]) or (1, 1)) - 1, "pick")
    merged = merge_flags([features, labels])
    pads = {**labels.pads, **features.pads}
    # the loss per row, then the gradient, shaped like the logits
    return (State(pads, **merged), *[ins[0]] * (len(op.outputs) - 1))


def _cumulative(op: Any, ins: list[State]) -> State:
    state = ins[0]
    rank = len(shape_of(op.inputs[0]) or ())
    axis = ints(op.inputs[1])
    axis = axis[0] % rank if axis else None
    reverse = bool(op.get_attr("reverse"))
    tainted = state.tainted
    pads = {}
    for a, p in state.pads.items():
        if a == axis:
            looks_at_padding = (p.side == PRE) != reverse
            if p.fill == DIRTY and looks_at_padding:
                tainted = True
            # zeros summed before the valid steps stay zero; after them, they hold a total
            fill = DIRTY if p.fill == DIRTY else (ZERO if p.fill == ZERO and looks_at_padding
                                                  and op.type == "Cumsum" else OTHER)
            p = replace(p, fill=fill)
        pads[a] = p
    return replace(state, pads=pads, tainted=tainted, mask="", mask_axes={})


def _matmul(op: Any, ins: list[State]) -> State:
    ta, tb = op.get_attr("transpose_a"), op.get_attr("transpose_b")
    return _contract(op, ins, "ij,jk->ik" if not ta and not tb else
                     "ji,jk->ik" if ta and not tb else
                     "ij,kj->ik" if not ta else "ji,kj->ik")


def _batch_matmul(op: Any, ins: list[State]) -> State:
    rank = len(shape_of(op.inputs[0]) or ())
    adj_x = op.get_attr("adj_x")
    adj_y = op.get_attr("adj_y")
    batch = "".join("abcdefgh"[i] for i in range(rank - 2))
    left = batch + ("ji" if adj_x else "ij")
    right = batch + ("kj" if adj_y else "jk")
    return _contract(op, ins, f"{left},{right}->{batch}ik")


def _einsum(op: Any, ins: list[State]) -> State:
    equation = op.get_attr("equation").decode().replace(" ", "")
    if "." in equation or "->" not in equation:
        return _unknown(ins)
    return _contract(op, ins, equation)


def _contract(op: Any, ins: list[State], equation: str) -> State:
    lhs, out = equation.split("->")
    terms = lhs.split(",")
    if len(terms) != len(ins):
        return _unknown(ins)
    flags = merge_flags(ins)
    pads: dict[int, Pad] = {}
    label_fill: dict[str, list[str]] = {}
    for term, state in zip(terms, ins):
        for axis, pad in state.pads.items():
            if axis < len(term):
                label_fill.setdefault(term[axis], []).append(pad.fill)
        for axis in state.mask_axes:
            if axis < len(term):
                label_fill.setdefault(term[axis], []).append(ZERO)
    for term, state in zip(terms, ins):
        for axis, pad in state.pads.items():
            if axis >= len(term):
                continue
            label = term[axis]
            if label in out:
                index = out.index(label)
                others = [f for f in label_fill[label]]
                fill = ZERO if ZERO in others else (pad.fill if pad.fill != DIRTY else DIRTY)
                if pad.fill != DIRTY and index not in pads:
                    fill = OTHER if fill == NEG else fill
                pads.setdefault(index, replace(pad, fill=fill))
            elif pad.fill == DIRTY and ZERO not in label_fill[label]:
                flags["tainted"] = True  # summed over padded positions that hold padding
    # a position table (size T along an output's padded axis) multiplied in
    return State(pads, **flags)


# -------------------------------------------------------------- helpers ----

def _elementwise(op: Any, ins: list[State]) -> State:
    """Broadcast the inputs' padded axes onto the output (numpy alignment from the right)."""
    out_shape = shape_of(op.outputs[0]) or ()
    rank = len(out_shape)
    flags = merge_flags(ins)
    pads: dict[int, Pad] = {}
    for tensor, state in zip(op.inputs, ins):
        in_rank = len(shape_of(tensor) or ())
        for axis, pad in state.pads.items():
            out_axis = axis + rank - in_rank
            current = pads.get(out_axis)
            if current is None or (current.fill != DIRTY and pad.fill == DIRTY):
                if current is not None and current.shift != pad.shift and pad.fill == DIRTY:
                    flags["tainted"] = True
                pads[out_axis] = pad
            elif current.shift != pad.shift and DIRTY in (current.fill, pad.fill):
                flags["tainted"] = True
            if current is not None and current.shift != pad.shift and pad.shift == 0:
                # neighbours combined (x[t-1] + x[t]): positions stay where the unshifted term is
                pads[out_axis] = replace(pads[out_axis], shift=0, moved=current.moved and pad.moved)
    # a table of positions (weights or constants, not data, size T along a padded axis)
    for tensor, state in zip(op.inputs, ins):
        if state.data or state.mask:
            continue
        shape = shape_of(tensor) or ()
        offset = rank - len(shape)
        for axis, pad in pads.items():
            i = axis - offset
            if 0 <= i < len(shape) and shape[i] not in (None, 1) and pad.side == PRE:
                flags["absolute"] = True
    return State(pads, **flags)


def _unzeroed(state: State) -> State:
    if not any(p.fill == ZERO for p in state.pads.values()):
        return state
    return replace(state, pads={a: replace(p, fill=OTHER) if p.fill == ZERO else p
                                for a, p in state.pads.items()})


def _aligned(mask: State, op: Any, out_shape: tuple) -> set[int]:
    """The output axes a mask operand covers (masks keep their axis numbers when
    expanded at the end, mask[..., None])."""
    return {axis for axis in mask.mask_axes if axis < len(out_shape)}


def _remap(state: State, mapping: Any, keep: bool = False) -> State:
    pads: dict[int, Pad] = {}
    tainted = state.tainted
    for axis, pad in state.pads.items():
        new = mapping(axis)
        if new is None:
            if pad.fill == DIRTY:
                tainted = True  # merged into another axis: the next op mixes it
            continue
        pads[new] = pad
    mask_axes = {}
    for axis, side in state.mask_axes.items():
        new = mapping(axis)
        if new is not None:
            mask_axes[new] = side
    mask = state.mask if (mask_axes or not state.mask_axes) else ""
    return replace(state, pads=pads, tainted=tainted, mask=mask, mask_axes=mask_axes)


def _prod(dims: Iterable[int]) -> int:
    result = 1
    for d in dims:
        result *= d
    return result


def _reshaped(src: tuple, dst: tuple, axis: int,
              merged: tuple[int, int] | None) -> tuple[int, tuple[int, int] | None] | None:
    """Where a padded axis lands after a reshape, by element strides: an axis of
    its own, or (with its stride and size inside it) merged into a larger one."""
    inner, size = merged if merged else (1, src[axis])
    stride = inner * _prod(src[axis + 1:])
    for target in range(len(dst)):
        target_stride = _prod(dst[target + 1:])
        if target_stride <= stride and stride * size <= target_stride * dst[target] \
                and stride % target_stride == 0:
            if dst[target] == size and target_stride == stride:
                return target, None
            return target, (stride // target_stride, size)
    return None


def _unknown(ins: list[State]) -> State:
    flags = merge_flags(ins)
    flags["unknown"] = True
    pads = {a: replace(p, fill=OTHER if p.fill != DIRTY else DIRTY)
            for s in ins[:1] for a, p in s.pads.items()}
    return State(pads, **flags)


def _move_axes(mask_axes: Mapping[int, str], axes: set[int] | None, keep: bool) -> dict[int, str]:
    if keep or not axes:
        return dict(mask_axes)
    return {a - sum(1 for r in axes if r < a): s for a, s in mask_axes.items() if a not in axes}


def _invert(polarity: str) -> str:
    return {"+": "-", "-": "+"}.get(polarity, polarity)


def _negate(polarity: str) -> str:
    return polarity


# ----------------------------------------------------------------- table ---

def conservative(op: Any, ins: list[State]) -> State:
    """The rule for an operation the table lacks: keep the padded axes where they are,
    count their positions as no longer neutral, and mark the verdict as assumed."""
    merged = merge_flags(ins)
    merged["unknown"] = True
    pads = ins[0].pads if ins else {}
    return State({a: replace(p, fill=OTHER) for a, p in pads.items()}, **merged)


#: The rule of each operation type the reader knows.
AXIS_RULES: dict[str, Rule] = {
    **dict.fromkeys(SHAPE_ONLY, _shape_only),
    **dict.fromkeys(UNARY, _unary),
    "LogicalNot": _logical_not,
    **dict.fromkeys(BINARY | {"Select", "SelectV2", "AddN", "Where"}, _binary),
    **dict.fromkeys(REDUCE, _reduce_rule),
    **dict.fromkeys(CONVS, _conv),
    **dict.fromkeys(MIXERS, _mix_all),
    "Reshape": _reshape,
    "Transpose": _transpose,
    "ExpandDims": _expand_dims,
    "Squeeze": _squeeze,
    "StridedSlice": _strided_slice,
    "Slice": _slice,
    "ConcatV2": _concat_v2,
    "Pack": _pack,
    "Unpack": _unpack,
    "Split": _split_op,
    "SplitV": _split_v,
    "Pad": _pad,
    "PadV2": _pad,
    "MirrorPad": _pad,
    "ReverseV2": _reverse,
    "Tile": _tile,
    "BroadcastTo": _broadcast_to,
    "GatherV2": _gather,
    "OneHot": _one_hot,
    "SparseSoftmaxCrossEntropyWithLogits": _cross_entropy,
    "SoftmaxCrossEntropyWithLogits": _cross_entropy,
    "Cumsum": _cumulative,
    "Cumprod": _cumulative,
    "CumulativeLogsumexp": _cumulative,
    "MatMul": _matmul,
    "BatchMatMulV2": _batch_matmul,
    "BatchMatMulV3": _batch_matmul,
    "BatchMatMul": _batch_matmul,
    "Einsum": _einsum,
}

#: Operation types whose rule counts as reading them: a layer with any other
#: operation keeps an assumed verdict. LogicalNot has a rule but was never listed
#: as read, so a layer using it stays assumed (kept as it was).
KNOWN_OPS = frozenset(AXIS_RULES) - {"LogicalNot"}


def rule_for(kind: str) -> Rule:
    """The rule for an operation type: its row in `AXIS_RULES`, else `conservative`."""
    return AXIS_RULES.get(kind, conservative)
