"""Operation-level reader: what code maskcheck has no table row for does to padding.

A custom layer's `call` (and a Lambda's function, and a custom `compute_mask`)
is traced once on symbolic inputs into a TensorFlow graph: no data, no forward
pass on values. The padded-axis dataflow then runs over the graph's
operations, once per scenario (which input axis holds padding, on which side,
with or without the mask handed to the layer), and the result is a `Reading`:
plain values the static dataflow consults in place of a table row.

Sub-layers whose class the tables know (a Dense, an LSTM, a keras-hub
RotaryEmbedding inside a custom block) are read as one block with their
table row, not op by op, so their own masking is trusted as it is everywhere
else. Operations the reader does not know keep the layer's verdict
conservative: it is reported as assumed, and the probes can refute it.

Within a trace, each tensor carries, per padded axis, which side the padding
is on, whether its padded positions still depend on the padding values
("dirty") or were neutralised by the mask (zeroed, pushed to a large negative
number, or replaced), and by how many positions it is shifted; a tensor is
"tainted" once valid positions depend on padding values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

POST, PRE = "post", "pre"
#: Sizes given to unknown axes when tracing; distinct so that a broadcast can
#: tell a position table (size T along the padded axis) from a feature vector.
_BATCH = 3
_UNKNOWN_SIZES = (7, 6, 5, 9)


@dataclass(frozen=True, slots=True)
class AxisEffect:
    """What the layer does to one padded axis of one input, both sides read."""

    kind: str  # pointwise, causal, anticausal, mixing, reducing
    out_axis: int | None  # where the padded axis is in the output (None: gone)
    flipped: bool = False  # post and pre padding swap (time reversed)
    absolute: bool = False  # positions counted from the start reach valid outputs under pre-padding
    masked_mean: bool = False  # divides by the mask's sum, 0/0 for a fully padded sample
    #: the output length along the axis differs from the input's
    length_changed: bool = False
    #: steps moved along the axis (reversed, shifted)
    moved: bool = False
    #: the padding sides (of the input) for which the output's padded positions hold
    #: exact zeros (the mask was multiplied in; a cumsum over leading zeros)
    zero_sides: frozenset[str] = frozenset()
    #: the padding sides (of the input) for which the output's padded positions hold no
    #: padding values at all (zeros, a large negative number, values of valid steps)
    clean_sides: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Reading:
    """The result of reading one layer call: effects per (masked, input, axis)."""

    effects: Mapping[tuple[bool, int, int], AxisEffect] = field(default_factory=dict)
    #: what the layer's compute_mask returns when handed the mask: "none",
    #: "passes" (derived from the mask it got), "generates" (from values)
    mask_out: str = "none"
    #: a returned mask that does not line up with the output ("" when it does)
    mask_mismatch: str = ""
    #: operation types the reader does not know (the verdict stays assumed)
    unknown_ops: tuple[str, ...] = ()
    #: why the layer could not be read ("" when it was)
    failed: str = ""
    #: the same effects when the input's padded positions hold exact zeros
    zero_effects: Mapping[tuple[bool, int, int], AxisEffect] = field(default_factory=dict)
    #: compute_mask transforms the mask the way call transforms the steps (sliced,
    #: reversed, shifted with them): it lines up although the length or order changed
    mask_follows: bool = False
    #: inputs of shape (batch, time) beside a larger data input: the padding mask when
    #: the model hands it over as an ordinary argument (``pool(h, mask)``, ``pool([h, m])``)
    mask_positions: tuple[int, ...] = ()
    #: the effects (and zero-fill effects) when those inputs hold the padding mask
    mask_effects: Mapping[tuple[bool, int, int], AxisEffect] = field(default_factory=dict)
    mask_zero_effects: Mapping[tuple[bool, int, int], AxisEffect] = field(default_factory=dict)

    def effect(self, masked: bool, index: int, axis: int, zero: bool = False,
               as_masks: bool = False) -> AxisEffect | None:
        """What the layer does to padded `axis` of input `index`; `masked`: Keras hands it
        the mask; `zero`: the padded positions hold zeros; `as_masks`: the inputs at
        `mask_positions` are the padding mask."""
        if as_masks and self.mask_effects:
            table = (self.mask_zero_effects if zero and self.mask_zero_effects
                     else self.mask_effects)
        else:
            table = self.zero_effects if zero and self.zero_effects else self.effects
        found = table.get((masked, index, axis))
        if found is None and masked:
            found = table.get((False, index, axis))
        return found


# ---------------------------------------------------------------- state ----

DIRTY, ZERO, NEG, OTHER = "dirty", "zero", "neg", "other"
#: a strided slice step that reverses the whole axis (``x[:, ::-1]``)
_REVERSED = "reversed"


@dataclass(frozen=True, slots=True)
class _Pad:
    side: str
    fill: str = DIRTY  # what the padded positions hold: DIRTY, or a neutral ZERO/NEG/OTHER
    shift: int = 0  # position u holds the value of position u + shift
    #: (stride, size) when a reshape merged the padded axis into a larger one
    merged: tuple[int, int] | None = None
    #: steps were moved along the axis (reversed, shifted, padded): a mask passed
    #: through unchanged no longer lines up
    moved: bool = False


@dataclass(frozen=True, slots=True)
class _State:
    pads: Mapping[int, _Pad] = field(default_factory=dict)
    tainted: bool = False
    #: the tensor is the mask (True at valid positions: +1) or its inverse (-1),
    #: or a large negative bias at padded positions ("neg")
    mask: str = ""
    mask_axes: Mapping[int, str] = field(default_factory=dict)  # axis -> side
    count: bool = False  # a sum of the mask: can be 0
    data: bool = False  # derived from an input (not only from weights and constants)
    absolute: bool = False
    masked_mean: bool = False
    unknown: bool = False


_CLEAN = _State()


def _merge_flags(states: Iterable[_State]) -> dict[str, bool]:
    states = list(states)
    return dict(tainted=any(s.tainted for s in states), data=any(s.data for s in states),
                absolute=any(s.absolute for s in states),
                masked_mean=any(s.masked_mean for s in states),
                unknown=any(s.unknown for s in states))


# -------------------------------------------------------------- op kinds ---

_UNARY = frozenset({
    "Identity", "Cast", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Tanh", "Sigmoid", "Exp",
    "Expm1", "Log", "Log1p", "Neg", "Abs", "Square", "Sqrt", "Rsqrt", "Erf", "Erfc",
    "Softplus", "Softsign", "Sin", "Cos", "Tan", "Floor", "Ceil", "Round", "Rint", "Sign",
    "Reciprocal", "Inv", "StopGradient", "PreventGradient", "Snapshot", "EnsureShape",
    "CheckNumerics", "IsNan", "IsInf", "IsFinite", "Gelu", "Atan", "Asin", "Acos", "Sinh",
    "Cosh", "Asinh", "Acosh", "Atanh", "Real", "Imag", "Conj", "Digamma", "Lgamma",
    "BitwiseNot", "Invert", "ClipByValue", "StridedSliceGrad", "IdentityN",
})
_BINARY = frozenset({
    "AddV2", "Add", "Sub", "Mul", "MulNoNan", "RealDiv", "Div", "DivNoNan", "FloorDiv",
    "FloorMod", "TruncateDiv", "Maximum", "Minimum", "Pow", "SquaredDifference", "BiasAdd",
    "Atan2", "Xdivy", "Xlogy", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "LeftShift",
    "RightShift", "Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual",
    "LogicalAnd", "LogicalOr", "ApproximateEqual",
})
#: unary operations with f(0) = 0: zeroed padding stays zero
_KEEPS_ZERO = frozenset({
    "Identity", "Cast", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Tanh", "Neg", "Abs",
    "Square", "Sqrt", "Sin", "Tan", "Softsign", "Sign", "Floor", "Ceil", "Round", "Rint",
    "StopGradient", "PreventGradient", "Snapshot", "EnsureShape", "CheckNumerics", "Gelu",
    "Atan", "Asin", "Sinh", "Asinh", "Atanh", "Real", "Imag", "Conj", "IdentityN", "Erf",
})
#: reductions that zeroed padding still changes (a mean divides by the full length)
_ZEROS_COUNT = frozenset({"Mean", "Max", "Min", "Prod", "ArgMax", "ArgMin", "All"})
_COMPARE = frozenset({"Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual"})
_REDUCE = frozenset({"Sum", "Mean", "Max", "Min", "Prod", "All", "Any", "ArgMax", "ArgMin",
                     "EuclideanNorm"})
_SHAPE_ONLY = frozenset({"Shape", "ShapeN", "Size", "Rank", "Const", "VarHandleOp",
                         "ReadVariableOp", "NoOp", "Placeholder", "Range", "Fill",
                         "ZerosLike", "OnesLike", "RandomUniform", "RandomStandardNormal",
                         "StatelessRandomUniformV2", "StatelessRandomNormalV2",
                         "StatelessRandomGetKeyCounter", "AssignVariableOp",
                         "AssignAddVariableOp", "AssignSubVariableOp", "VarIsInitializedOp",
                         "LinSpace", "BroadcastArgs"})
_CONVS = frozenset({"Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv", "MaxPool", "AvgPool",
                    "MaxPool3D", "AvgPool3D", "MaxPoolV2"})


# ---------------------------------------------------------- the reader -----

_CACHE: dict[Any, Reading] = {}


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


def _concrete(shape: tuple) -> tuple[int, ...]:
    sizes = iter(_UNKNOWN_SIZES)
    return tuple(_BATCH if i == 0 else (d if d is not None else next(sizes, 7))
                 for i, d in enumerate(shape))


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
    concrete = [_concrete(s) for s in shapes]
    positions = _mask_positions(concrete)
    failures = []
    for masked in ((False, True) if takes_mask else (False,)):
        try:
            trace = _trace(layer, concrete, dtypes, masked, known, mask_keywords, layout)
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


class Slot(int):
    """In a call layout: the input tensor at this index."""

    def __repr__(self) -> str:
        return f"Slot({int(self)})"


def _effect_of(by_side: dict[str, "_Outcome"], length: int, trace: "_Trace") -> AxisEffect:
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


MIXING_KIND = "mixing"


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


class _Trace:
    """One traced call: the graph's operations and where the inputs, mask and outputs are."""

    def __init__(self, ops: list, inputs: list, mask: Any, output: Any, out_mask: Any,
                 blocks: list, unknown: set[str]) -> None:
        self.ops = ops
        self.inputs = inputs
        self.mask = mask
        self.output = output
        self.out_mask = out_mask
        self.blocks = blocks
        self.unknown = unknown
        self._last: dict[str, _State] = {}

    def out_length(self, axis: int) -> int | None:
        shape = _shape(self.output)
        return shape[axis] if shape is not None and axis < len(shape) else None

    def run(self, index: int, axis: int, side: str, masked: bool, fill: str = DIRTY,
            masks: tuple[int, ...] = ()) -> _Outcome:
        states: dict[str, _State] = {}
        for i, tensor in enumerate(self.inputs):
            if i in masks:  # the padding mask, handed over as an ordinary argument
                states[tensor.name] = _State(mask="+", mask_axes={1: side}, data=True)
                continue
            padded = {axis: _Pad(side, fill)} if i == index else {}
            states[tensor.name] = _State(pads=padded, data=True)
        if self.mask is not None:
            states[self.mask.name] = _State(mask="+", mask_axes={1: side}, data=True) if masked \
                else _State(data=True)
        for mask in getattr(self, "keyword_masks", ()):
            rank = len(_shape(mask) or (0, 0))
            states[mask.name] = _State(mask="+", mask_axes={a: side for a in range(1, rank)},
                                       data=True)
        _Flow(self, states, side).run()
        self._last = states
        out = states.get(self.output.name, _CLEAN) if self.output is not None else _CLEAN
        tainted = out.tainted
        pad = out.pads.get(_first_axis(out))
        for p in out.pads.values():
            if p.fill == DIRTY and ((p.side == POST and p.shift > 0) or (p.side == PRE and p.shift < 0)):
                tainted = True
            if p.merged and p.fill == DIRTY:
                tainted = True  # flattened: whatever reads the output mixes the positions
        out = replace(out, pads={a: p for a, p in out.pads.items() if not p.merged})
        pad = out.pads.get(_first_axis(out))
        out_axis = _first_axis(out)
        moved = pad is not None and (pad.moved or pad.shift != 0)
        return _Outcome(tainted, out_axis, pad.side if pad else None, out.absolute,
                        out.masked_mean, moved=moved,
                        out_zero=pad is not None and pad.fill == ZERO and not tainted,
                        out_clean=pad is not None and pad.fill != DIRTY and not tainted)

    def mask_follows(self) -> bool:
        """The returned mask was computed from the mask it got (not handed back as is) and
        lines up with the output: same length, padding on the same side."""
        if self.out_mask is None or self.mask is None:
            return False
        source = self.out_mask
        while source.op.type in ("Identity", "Cast") and source.op.inputs:
            source = source.op.inputs[0]
        if source is self.mask or source.name == self.mask.name:
            return False
        out_shape, mask_shape = _shape(self.output), _shape(self.out_mask)
        if out_shape is None or mask_shape is None or len(mask_shape) < 2 or len(out_shape) < 2 \
                or mask_shape[1] != out_shape[1]:
            return False
        data = self._last.get(self.output.name, _CLEAN).pads.get(1)
        mask = self._last.get(self.out_mask.name, _CLEAN).mask_axes.get(1)
        return data is None or mask is None or data.side == mask

    def mask_verdict(self) -> tuple[str, str]:
        if self.out_mask is None:
            return "none", ""
        state = self._last.get(self.out_mask.name, _CLEAN)
        verdict = "passes" if state.mask else "generates"
        out_shape, mask_shape = _shape(self.output), _shape(self.out_mask)
        if out_shape is not None and mask_shape is not None and len(mask_shape) >= 2 \
                and len(out_shape) >= 2 and mask_shape[1] != out_shape[1]:
            return verdict, (f"its compute_mask returns a mask of length {mask_shape[1]} for an "
                             f"output of length {out_shape[1]}")
        if out_shape is not None and mask_shape is not None and len(mask_shape) > len(out_shape):
            return verdict, (f"its compute_mask returns a mask of rank {len(mask_shape)} for a "
                             f"rank-{len(out_shape)} output")
        return verdict, ""


def _first_axis(state: _State) -> int | None:
    return min(state.pads) if state.pads else None


def _shape(tensor: Any) -> tuple | None:
    if tensor is None:
        return None
    try:
        return tuple(tensor.shape.as_list())
    except (ValueError, AttributeError):
        return None


def _trace(layer: Any, shapes: list[tuple], dtypes: list[str], masked: bool, known: Any,
           mask_keywords: tuple = (), layout: Any = None) -> _Trace:
    import tensorflow as tf
    from keras.src.layers.layer import Layer

    captured: dict[str, Any] = {}
    blocks: list[tuple[int, int, Any, list, list, Any]] = []
    depth = {"known": 0}
    original_call = Layer.__call__

    def hooked(self, *args, **kwargs):
        if self is layer or depth["known"]:
            return original_call(self, *args, **kwargs)
        sem = known(self)
        if sem is None:
            return original_call(self, *args, **kwargs)
        graph = tf.compat.v1.get_default_graph()
        start = len(graph.get_operations())
        depth["known"] += 1
        try:
            out = original_call(self, *args, **kwargs)
        finally:
            depth["known"] -= 1
        end = len(graph.get_operations())
        ins = [t for t in tf.nest.flatten((args, {k: v for k, v in kwargs.items()
                                                  if not k.endswith("mask")}))
               if isinstance(t, tf.Tensor)]
        masks = [t for k, v in kwargs.items() if k.endswith("mask") and k != "use_causal_mask"
                 for t in tf.nest.flatten(v) if isinstance(t, tf.Tensor)]
        masks += [m for m in (getattr(t, "_keras_mask", None) for t in ins) if m is not None]
        outs = [t for t in tf.nest.flatten(out) if isinstance(t, tf.Tensor)]
        blocks.append((graph, start, end, sem, ins, outs, masks))
        return out

    specs = [tf.TensorSpec(s, d) for s, d in zip(shapes, dtypes)]
    time = shapes[0][1] if len(shapes[0]) > 1 else 1
    keyword_specs = [tf.TensorSpec(_concrete(tuple(time if i else d for i, d in enumerate(shape)))
                                   if len(shape) > 1 else _concrete(shape), dtype)
                     for _, shape, dtype in mask_keywords]
    specs.extend(keyword_specs)
    if masked:
        specs.append(tf.TensorSpec(shapes[0][:2], "bool"))

    def traced(*tensors):
        xs = list(tensors[:len(shapes)])
        if layout is not None:  # the call as the model makes it (positional masks too)
            from keras.src import tree

            args, kwargs = tree.map_structure(
                lambda v: xs[int(v)] if isinstance(v, Slot) else v, layout)
            args, kwargs = list(args), dict(kwargs)
        else:
            args, kwargs = [xs[0] if len(xs) == 1 else xs], {}
        kwargs.update({key: tensors[len(shapes) + i]
                       for i, (key, _, _) in enumerate(mask_keywords)})
        captured["keyword_masks"] = [tensors[len(shapes) + i] for i in range(len(mask_keywords))]
        if masked and _takes(layer, "mask") and not _binds(layer, "mask", args, kwargs):
            m = tensors[-1]
            kwargs["mask"] = m if len(xs) == 1 else [m] + [None] * (len(xs) - 1)
        elif masked:  # call takes no mask: Keras hands the attached one to compute_mask
            _with_mask(xs[0], tensors[-1])
        if _takes(layer, "training") and "training" not in kwargs:
            kwargs["training"] = False
        out = layer(*args, **kwargs)
        flat = tf.nest.flatten(out)
        captured["output"] = flat[0] if flat else None
        captured["out_mask"] = getattr(flat[0], "_keras_mask", None) if flat else None
        captured["inputs"] = xs
        captured["mask"] = tensors[-1] if masked else None
        return flat

    Layer.__call__ = hooked
    try:
        concrete = tf.function(traced, autograph=False).get_concrete_function(*specs)
    finally:
        Layer.__call__ = original_call
    ops = concrete.graph.get_operations()
    # blocks of the traced graph only (Keras may also run the call in a scratch graph)
    blocks = [b[1:] for b in blocks if b[0] is concrete.graph]
    inside = set()
    block_ends: dict[int, list] = {}
    for start, end, sem, ins, outs, masks in blocks:
        if any(start >= s and end <= e and (s, e) != (start, end) for s, e, *_ in blocks):
            continue  # a known block inside another known block
        inside.update(range(start, end))
        block_ends.setdefault(end - 1 if end > start else start, []).append((sem, ins, outs, masks))
    program = []
    for i, op in enumerate(ops):
        if i not in inside:
            program.append(("op", op))
        for block in block_ends.get(i, ()):
            program.append(("block", block))
    unknown = {op.type for kind, op in program if kind == "op" and not _is_known_op(op.type)}
    trace = _Trace(program, captured.get("inputs", []), captured.get("mask"),
                   captured.get("output"), captured.get("out_mask"), [], unknown)
    trace.keyword_masks = captured.get("keyword_masks", [])
    return trace


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
    import tensorflow as tf

    concrete = [_concrete(s) for s in pred_shapes]
    padded_shape = concrete[index]
    if len(padded_shape) < 2:
        return None
    # sparse labels (batch, time) first, then labels shaped like the predictions
    for sparse in (True, False):
        labels = [(s[:-1], "int32") if sparse and len(s) > 2 else (s, "float32") for s in concrete]
        captured: dict[str, Any] = {}

        def traced(*tensors):
            n = len(concrete)
            ys, preds, mask = list(tensors[:n]), list(tensors[n:2 * n]), tensors[-1]
            preds[index] = _with_mask(preds[index], mask)
            y_true = ys[0] if structure is None and n == 1 else tf.nest.pack_sequence_as(structure, ys)
            y_pred = preds[0] if structure is None and n == 1 else \
                tf.nest.pack_sequence_as(structure, preds)
            value = loss(y_true, y_pred)
            captured.update(labels=ys[index], pred=preds[index], mask=mask,
                            value=tf.nest.flatten(value)[0])
            return value

        specs = [tf.TensorSpec(shape, dtype) for shape, dtype in labels]
        specs += [tf.TensorSpec(s, d if "float" in d else "float32")
                  for s, d in zip(concrete, pred_dtypes)]
        specs.append(tf.TensorSpec(padded_shape[:2], "bool"))
        try:
            graph = tf.function(traced, autograph=False).get_concrete_function(*specs).graph
        except Exception:
            continue
        program = [("op", op) for op in graph.get_operations()]
        unknown = {op.type for _, op in program if not _is_known_op(op.type)}
        trace = _Trace(program, [], None, captured["value"], None, [], unknown)
        reached = False
        for side in (POST, PRE):
            states = {captured["labels"].name: _State(pads={1: _Pad(side)}, data=True),
                      captured["pred"].name: _State(pads={1: _Pad(side)}, data=True),
                      captured["mask"].name: _State(mask="+", mask_axes={1: side}, data=True)}
            _Flow(trace, states, side).run()
            out = states.get(captured["value"].name, _CLEAN)
            reached = reached or out.tainted or any(p.fill == DIRTY for p in out.pads.values())
        if unknown and not reached:
            return None
        return reached
    return None


def _with_mask(tensor: Any, mask: Any) -> Any:
    """Attach `mask` the way Keras hands an output's mask to its loss."""
    try:
        from keras.src.backend import set_keras_mask

        set_keras_mask(tensor, mask)
    except ImportError:
        tensor._keras_mask = mask
    return tensor


def _binds(layer: Any, argument: str, args: list, kwargs: dict) -> bool:
    """The call already passes `argument` (positionally or by keyword)."""
    import inspect
    try:
        bound = inspect.signature(layer.call).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return False
    return argument in bound.arguments


def _takes(layer: Any, argument: str) -> bool:
    """`layer.call` has a parameter named `argument` (mask, training)."""
    import inspect
    try:
        return argument in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


def _is_known_op(kind: str) -> bool:
    return (kind in _UNARY or kind in _BINARY or kind in _REDUCE or kind in _SHAPE_ONLY
            or kind in _CONVS or kind in _STRUCTURAL or kind in _MIXERS)


_STRUCTURAL = frozenset({"Reshape", "Transpose", "ExpandDims", "Squeeze", "StridedSlice",
                         "Slice", "ConcatV2", "Pack", "Unpack", "Split", "SplitV", "Pad",
                         "PadV2", "MirrorPad", "ReverseV2", "Tile", "BroadcastTo", "GatherV2",
                         "Select", "SelectV2", "AddN", "Cumsum", "Cumprod",
                         "CumulativeLogsumexp", "Einsum", "MatMul", "BatchMatMulV2",
                         "BatchMatMulV3", "BatchMatMul", "OneHot", "Where",
                         "SparseSoftmaxCrossEntropyWithLogits", "SoftmaxCrossEntropyWithLogits"})
_MIXERS = frozenset({"Softmax", "LogSoftmax", "Roll", "TopKV2", "Sort", "FFT", "IFFT",
                     "RFFT", "IRFFT", "ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic",
                     "ResizeArea", "ScaleAndTranslate", "L2Loss", "MatrixBandPart"})


# ------------------------------------------------------------ the flow -----

class _Flow:
    """One scenario's dataflow over a trace's program, in graph order."""

    def __init__(self, trace: _Trace, states: dict[str, _State], side: str) -> None:
        self.trace = trace
        self.states = states
        self.side = side

    def get(self, tensor: Any) -> _State:
        return self.states.get(tensor.name, _CLEAN)

    def run(self) -> None:
        for kind, item in self.trace.ops:
            if kind == "block":
                self.block(*item)
            elif item.type != "Placeholder":
                self.op(item)

    def set_all(self, op: Any, state: _State) -> None:
        for out in op.outputs:
            self.states[out.name] = state

    # ----- blocks: sub-layers read with their table row
    def block(self, sem: Any, ins: list, outs: list, masks: list) -> None:
        from maskcheck.static.semantics import CAUSAL, MIXING, REDUCING, effect_on_axis

        states = [self.get(t) for t in ins]
        masked = any(self.get(m).mask for m in masks) or any(s.mask for s in states)
        data_states = [s for s in states if not s.mask]
        flags = _merge_flags(states)
        tainted = flags["tainted"]
        pads: dict[int, _Pad] = {}
        absolute = flags["absolute"]
        for state, tensor in zip(states, ins):
            if state.mask:
                continue
            rank = len(_shape(tensor) or ())
            for axis, pad in state.pads.items():
                effect = effect_on_axis(sem, {}, axis, rank) if sem.known else "pointwise"
                dirty = pad.fill == DIRTY
                if effect in (MIXING, REDUCING) and dirty and not (masked and sem.uses_mask):
                    tainted = True
                elif effect == CAUSAL and dirty and pad.side == PRE and not (masked and sem.uses_mask):
                    tainted = True
                if getattr(sem, "absolute_positions", False) and pad.side == PRE:
                    absolute = True
                if effect != REDUCING:
                    pads[axis] = replace(pad, fill=pad.fill if effect == "pointwise" else OTHER)
        for out in outs:
            shape = _shape(out) or ()
            kept = {a: p for a, p in pads.items() if a < len(shape)}
            self.states[out.name] = _State(kept, tainted, data=any(s.data for s in data_states) or
                                           bool(kept), absolute=absolute,
                                           masked_mean=flags["masked_mean"]
                                           or (getattr(sem, "masked_mean", False) and masked))
            if masked and getattr(out, "_keras_mask", None) is not None:
                mask_state = next((self.get(m) for m in masks if self.get(m).mask), None)
                if mask_state is not None:
                    self.states[out._keras_mask.name] = mask_state

    # ----- operations
    def op(self, op: Any) -> None:
        kind = op.type
        ins = [self.get(t) for t in op.inputs]
        if kind in _SHAPE_ONLY or not ins:
            self.set_all(op, _CLEAN)
            return
        if kind in _UNARY:
            state = ins[0]
            if kind == "Neg" and state.mask:
                state = replace(state, mask=_negate(state.mask))
            if kind == "ClipByValue":
                state = _elementwise(op, ins, self.side)
            if kind not in _KEEPS_ZERO:  # exp(0) = 1, sigmoid(0) = 0.5: no longer zero
                state = _unzeroed(state)
            self.set_all(op, state)
            return
        if kind == "LogicalNot":
            self.set_all(op, replace(ins[0], mask=_invert(ins[0].mask)) if ins[0].mask else ins[0])
            return
        if kind in _BINARY or kind in ("Select", "SelectV2", "AddN", "Where"):
            self.set_all(op, self.binary(op, ins))
            return
        if kind in _REDUCE:
            self.set_all(op, self.reduce(op, ins[0]))
            return
        handler = getattr(self, "op_" + kind, None)
        if handler is not None:
            handler(op, ins)
            return
        if kind in _CONVS:
            self.set_all(op, self.conv(op, ins))
            return
        if kind in _MIXERS:
            self.set_all(op, self.mix_all(op, ins))
            return
        # unknown: keep what arrives, mark the verdict as assumed
        merged = _merge_flags(ins)
        merged["unknown"] = True
        pads = ins[0].pads if ins else {}
        self.set_all(op, _State({a: replace(p, fill=OTHER) for a, p in pads.items()}, **merged))

    def binary(self, op: Any, ins: list[_State]) -> _State:
        kind = op.type
        if kind in ("Select", "SelectV2", "Where"):
            return self.select(op, ins)
        masks = [s for s in ins if s.mask]
        others = [s for s in ins if not s.mask]
        out_shape = _shape(op.outputs[0]) or ()
        if masks and not any(s.data or s.pads for s in others):
            # arithmetic on masks and constants stays a mask (1 - mask, mask * -1e9)
            return self.mask_arith(op, ins)
        if kind in _COMPARE and not masks and len(ins) == 2:
            data = [s for s in ins if s.data and s.pads]
            if data and not all(s.data for s in ins):  # tokens != 0: a mask made from values
                axes = {a: p.side for a, p in data[0].pads.items()}
                polarity = "-" if kind == "Equal" else "+"
                return _State(mask=polarity, mask_axes=axes, data=True)
        state = _elementwise(op, ins, self.side)
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
            if const and _positive_constant(const[0]):
                return replace(state, count=False)
            return replace(state, count=any(s.count for s in ins))
        return state

    def mask_arith(self, op: Any, ins: list[_State]) -> _State:
        kind = op.type
        mask = next(s for s in ins if s.mask)
        consts = [t for t, s in zip(op.inputs, ins) if not s.mask]
        value = _scalar(consts[0]) if consts else None
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
        rank = len(_shape(op.outputs[0]) or ())
        axes: dict[int, str] = {}
        for tensor, state in zip(op.inputs, ins):
            offset = rank - len(_shape(tensor) or ())
            for axis, side in state.mask_axes.items():
                axes.setdefault(axis + offset, side)
        return replace(mask, mask=polarity, mask_axes=axes)

    def select(self, op: Any, ins: list[_State]) -> _State:
        cond, a, b = ins[0], ins[1], ins[2]
        out_shape = _shape(op.outputs[0]) or ()
        state = _elementwise(op, [a, b], self.side)
        if cond.mask in ("+", "-"):
            keep = a if cond.mask == "+" else b
            fill = b if cond.mask == "+" else a
            fill_tensor = op.inputs[2] if cond.mask == "+" else op.inputs[1]
            value = _scalar(fill_tensor)
            if value == 0 and not keep.pads and not keep.mask:
                # where(mask, w, 0): a weighted mask, still zero at the padded steps
                return replace(_CLEAN, mask=cond.mask, mask_axes=dict(cond.mask_axes), data=True)
            neutral = NEG if value is not None and value < -1e3 else (ZERO if value == 0 else OTHER)
            if fill.data and fill.pads:
                neutral = OTHER if all(p.fill != DIRTY for p in fill.pads.values()) else DIRTY
            axes = _aligned(cond, op, out_shape)
            pads = dict(keep.pads)
            pads = {ax: replace(p, fill=neutral) if ax in axes and neutral != DIRTY else p
                    for ax, p in pads.items()}
            state = replace(state, pads=pads, tainted=keep.tainted or fill.tainted)
        return state

    def reduce(self, op: Any, state: _State) -> _State:
        axes = _axes_value(op.inputs[1], len(_shape(op.inputs[0]) or ()))
        keep = bool(op.get_attr("keep_dims")) if "keep_dims" in op.node_def.attr else False
        tainted = state.tainted
        pads: dict[int, _Pad] = {}
        for axis, pad in state.pads.items():
            if axes is None or axis in axes:
                # zeros are nothing to a sum, but a mean counts them and a max sees them
                if pad.fill == DIRTY or (pad.fill == ZERO and op.type in _ZEROS_COUNT):
                    tainted = True
                continue
            new = axis if keep else axis - sum(1 for a in (axes or ()) if a < axis)
            pads[new] = pad
        out = replace(state, pads=pads, tainted=tainted)
        if state.mask:
            summed = axes is None or any(a in axes for a in state.mask_axes)
            if summed and op.type in ("Sum", "Mean"):
                return replace(_CLEAN, count=op.type == "Sum", data=True, pads=pads)
            if summed:
                return replace(_CLEAN, data=True)
            return replace(state, mask_axes=_move_axes(state.mask_axes, axes, keep))
        return out

    def conv(self, op: Any, ins: list[_State]) -> _State:
        state = ins[0]
        shape = _shape(op.inputs[0]) or ()
        kernel = None
        if op.type in ("Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv"):
            kernel = (_shape(op.inputs[1]) or ())[:len(shape) - 2]
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
                pad = _Pad(pad.side, DIRTY if pad.fill == DIRTY else OTHER)
            pads[axis] = replace(pad, shift=0)
        return _State(pads, tainted, data=True, absolute=state.absolute,
                      masked_mean=state.masked_mean, unknown=state.unknown)

    def mix_all(self, op: Any, ins: list[_State]) -> _State:
        """Softmax, roll, sort, FFT, resizing: every position along the acted axis sees every other."""
        state = ins[0]
        rank = len(_shape(op.inputs[0]) or ())
        acted = {rank - 1} if op.type in ("Softmax", "LogSoftmax", "TopKV2", "Sort") else \
            set(range(1, max(rank - 1, 2)))
        if op.type == "Roll":
            acted = _axes_value(op.inputs[2], rank) or set(range(1, rank))
        tainted = state.tainted
        pads = {}
        for axis, pad in state.pads.items():
            if axis in acted:
                if pad.fill == DIRTY:
                    tainted = True
                pad = _Pad(pad.side, ZERO if (op.type == "Softmax" and pad.fill == NEG) else OTHER,
                           moved=op.type == "Roll")
            pads[axis] = pad
        return replace(state, pads=pads, tainted=tainted, mask="", mask_axes={})

    # ----- structural operations
    def op_Reshape(self, op: Any, ins: list[_State]) -> None:
        state = ins[0]
        src, dst = _shape(op.inputs[0]), _shape(op.outputs[0])
        if src is None or dst is None or None in src or None in dst:
            self.set_all(op, _unknown(ins) if (state.pads or state.mask) else state)
            return
        pads: dict[int, _Pad] = {}
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
            self.set_all(op, replace(_CLEAN, data=True))
            return
        self.set_all(op, replace(state, pads=pads, tainted=tainted, mask_axes=mask_axes))

    def op_Transpose(self, op: Any, ins: list[_State]) -> None:
        rank = len(_shape(op.inputs[0]) or ())
        perm = _ints(op.inputs[1])
        if perm is None:
            self.set_all(op, _unknown(ins))
            return
        self.set_all(op, _remap(ins[0], lambda a: perm.index(a) if a in perm else None, keep=True))

    def op_ExpandDims(self, op: Any, ins: list[_State]) -> None:
        rank = len(_shape(op.outputs[0]) or ())
        value = _ints(op.inputs[1])
        at = (value[0] % rank) if value else 0
        self.set_all(op, _remap(ins[0], lambda a: a + 1 if a >= at else a, keep=True))

    def op_Squeeze(self, op: Any, ins: list[_State]) -> None:
        src = _shape(op.inputs[0]) or ()
        dims = list(op.get_attr("squeeze_dims")) or [i for i, d in enumerate(src) if d == 1]
        dims = [d % len(src) for d in dims] if src else dims
        self.set_all(op, _remap(ins[0], lambda a: None if a in dims
                                else a - sum(1 for d in dims if d < a), keep=True))

    def op_StridedSlice(self, op: Any, ins: list[_State]) -> None:
        state = ins[0]
        src = _shape(op.inputs[0]) or ()
        begin, strides = _ints(op.inputs[1]), _ints(op.inputs[3])
        bits = {k: op.get_attr(k) for k in ("begin_mask", "end_mask", "ellipsis_mask",
                                            "new_axis_mask", "shrink_axis_mask")}
        if begin is None or strides is None:
            self.set_all(op, _unknown(ins) if (state.pads or state.mask) else state)
            return
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
        pads: dict[int, _Pad] = {}
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
                pads[target] = _Pad(pad.side, OTHER)
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
            self.set_all(op, replace(_CLEAN, data=True))
            return
        self.set_all(op, replace(state, pads=pads, tainted=tainted, mask_axes=mask_axes))

    def op_Slice(self, op: Any, ins: list[_State]) -> None:
        begin = _ints(op.inputs[1])
        state = ins[0]
        if begin is None:
            self.set_all(op, _unknown(ins) if state.pads else state)
            return
        pads = {a: replace(p, shift=p.shift + begin[a]) if a < len(begin) else p
                for a, p in state.pads.items()}
        self.set_all(op, replace(state, pads=pads))

    def op_ConcatV2(self, op: Any, ins: list[_State]) -> None:
        rank = len(_shape(op.outputs[0]) or ())
        axis = _ints(op.inputs[-1])
        axis = axis[0] % rank if axis else None
        parts = ins[:-1]
        self.set_all(op, self.concat(op, parts, axis))

    def op_Pack(self, op: Any, ins: list[_State]) -> None:
        axis = op.get_attr("axis")
        rank = len(_shape(op.outputs[0]) or ())
        axis %= rank
        moved = [_remap(s, lambda a: a + 1 if a >= axis else a, keep=True) for s in ins]
        self.set_all(op, self.concat(op, moved, None))

    def concat(self, op: Any, parts: list[_State], axis: int | None) -> _State:
        flags = _merge_flags(parts)
        pads: dict[int, _Pad] = {}
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
            size = (_shape(tensor) or ())[axis] if axis is not None and axis < len(
                _shape(tensor) or ()) else None
            offset += size or 0
        masks = [p for p in parts if p.mask]
        if masks and len(masks) == len(parts):
            return replace(masks[0])
        return _State(pads, **flags)

    def op_Unpack(self, op: Any, ins: list[_State]) -> None:
        axis = op.get_attr("axis") % len(_shape(op.inputs[0]) or (1,))
        self.set_all(op, self.reduce_like(ins[0], axis, "pick"))

    def op_Split(self, op: Any, ins: list[_State]) -> None:
        rank = len(_shape(op.inputs[1]) or ())
        axis = _ints(op.inputs[0])
        self.set_all(op, self.split(ins[1], axis[0] % rank if axis else None))

    def op_SplitV(self, op: Any, ins: list[_State]) -> None:
        rank = len(_shape(op.inputs[0]) or ())
        axis = _ints(op.inputs[2])
        self.set_all(op, self.split(ins[0], axis[0] % rank if axis else None))

    def split(self, state: _State, axis: int | None) -> _State:
        if axis is None or axis in state.pads:
            return _unknown([state]) if state.pads else state
        return state

    def reduce_like(self, state: _State, axis: int, how: str) -> _State:
        pads = {}
        tainted = state.tainted
        for a, p in state.pads.items():
            if a == axis:
                if p.fill == DIRTY:
                    tainted = True
                continue
            pads[a - 1 if a > axis else a] = p
        return replace(state, pads=pads, tainted=tainted)

    def op_Pad(self, op: Any, ins: list[_State]) -> None:
        amounts = _values(op.inputs[1])
        state = ins[0]
        if amounts is None:
            self.set_all(op, _unknown(ins) if state.pads else state)
            return
        pads = {}
        for a, p in state.pads.items():
            before = int(amounts[a][0]) if a < len(amounts) else 0
            pads[a] = replace(p, shift=p.shift - before, moved=p.moved or before != 0)
        self.set_all(op, replace(state, pads=pads))

    op_PadV2 = op_Pad
    op_MirrorPad = op_Pad

    def op_ReverseV2(self, op: Any, ins: list[_State]) -> None:
        rank = len(_shape(op.inputs[0]) or ())
        axes = _axes_value(op.inputs[1], rank) or set()
        state = ins[0]
        pads = {a: replace(p, side=PRE if p.side == POST else POST, shift=-p.shift, moved=True)
                if a in axes else p for a, p in state.pads.items()}
        mask_axes = {a: (PRE if s == POST else POST) if a in axes else s
                     for a, s in state.mask_axes.items()}
        self.set_all(op, replace(state, pads=pads, mask_axes=mask_axes))

    def op_Tile(self, op: Any, ins: list[_State]) -> None:
        reps = _ints(op.inputs[1])
        state = ins[0]
        if reps is None or any(reps[a] != 1 for a in state.pads if a < len(reps)):
            self.set_all(op, _unknown(ins) if state.pads else state)
            return
        self.set_all(op, state)

    def op_BroadcastTo(self, op: Any, ins: list[_State]) -> None:
        src, dst = _shape(op.inputs[0]) or (), _shape(op.outputs[0]) or ()
        offset = len(dst) - len(src)
        self.set_all(op, _remap(ins[0], lambda a: a + offset, keep=True))

    def op_GatherV2(self, op: Any, ins: list[_State]) -> None:
        params, indices = ins[0], ins[1]
        axis = _ints(op.inputs[2])
        axis = axis[0] if axis else 0
        if not params.pads and not params.mask:
            # an embedding lookup: each position reads its own row
            prefix = axis
            state = _remap(indices, lambda a: a + prefix, keep=True)
            self.set_all(op, replace(state, mask="", mask_axes={}, data=True,
                                     tainted=indices.tainted or params.tainted))
            return
        if axis in params.pads:
            self.set_all(op, replace(_unknown(ins), tainted=params.pads[axis].fill == DIRTY
                                     or params.tainted))
            return
        self.set_all(op, replace(params, tainted=params.tainted or indices.tainted))

    def op_OneHot(self, op: Any, ins: list[_State]) -> None:
        self.set_all(op, replace(ins[0], mask="", mask_axes={}))

    def op_SparseSoftmaxCrossEntropyWithLogits(self, op: Any, ins: list[_State]) -> None:
        """Per-row cross-entropy: the class axis (last) is reduced, rows stay apart."""
        features = self.reduce_like(ins[0], len(_shape(op.inputs[0]) or (1, 1)) - 1, "pick")
        labels = ins[1]
        if ins[1].pads and len(_shape(op.inputs[1]) or ()) == len(_shape(op.inputs[0]) or ()):
            labels = self.reduce_like(ins[1], len(_shape(op.inputs[1]) or (1, 1)) - 1, "pick")
        merged = _merge_flags([features, labels])
        pads = {**labels.pads, **features.pads}
        state = _State(pads, **merged)
        self.states[op.outputs[0].name] = state
        for out in op.outputs[1:]:  # the gradient, shaped like the logits
            self.states[out.name] = ins[0]

    op_SoftmaxCrossEntropyWithLogits = op_SparseSoftmaxCrossEntropyWithLogits

    def op_Cumsum(self, op: Any, ins: list[_State]) -> None:
        state = ins[0]
        rank = len(_shape(op.inputs[0]) or ())
        axis = _ints(op.inputs[1])
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
        self.set_all(op, replace(state, pads=pads, tainted=tainted, mask="", mask_axes={}))

    op_Cumprod = op_Cumsum
    op_CumulativeLogsumexp = op_Cumsum

    def op_AddN(self, op: Any, ins: list[_State]) -> None:
        self.set_all(op, _elementwise(op, ins, self.side))

    def op_MatMul(self, op: Any, ins: list[_State]) -> None:
        ta, tb = op.get_attr("transpose_a"), op.get_attr("transpose_b")
        self.set_all(op, self.contract(op, ins, "ij,jk->ik" if not ta and not tb else
                                       "ji,jk->ik" if ta and not tb else
                                       "ij,kj->ik" if not ta else "ji,kj->ik"))

    def op_BatchMatMulV2(self, op: Any, ins: list[_State]) -> None:
        rank = len(_shape(op.inputs[0]) or ())
        adj_x = op.get_attr("adj_x")
        adj_y = op.get_attr("adj_y")
        batch = "".join("abcdefgh"[i] for i in range(rank - 2))
        left = batch + ("ji" if adj_x else "ij")
        right = batch + ("kj" if adj_y else "jk")
        self.set_all(op, self.contract(op, ins, f"{left},{right}->{batch}ik"))

    op_BatchMatMulV3 = op_BatchMatMulV2
    op_BatchMatMul = op_BatchMatMulV2

    def op_Einsum(self, op: Any, ins: list[_State]) -> None:
        equation = op.get_attr("equation").decode().replace(" ", "")
        if "." in equation or "->" not in equation:
            self.set_all(op, _unknown(ins))
            return
        self.set_all(op, self.contract(op, ins, equation))

    def contract(self, op: Any, ins: list[_State], equation: str) -> _State:
        lhs, out = equation.split("->")
        terms = lhs.split(",")
        if len(terms) != len(ins):
            return _unknown(ins)
        flags = _merge_flags(ins)
        pads: dict[int, _Pad] = {}
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
        return _State(pads, **flags)


# -------------------------------------------------------------- helpers ----

def _elementwise(op: Any, ins: list[_State], side: str) -> _State:
    """Broadcast the inputs' padded axes onto the output (numpy alignment from the right)."""
    out_shape = _shape(op.outputs[0]) or ()
    rank = len(out_shape)
    flags = _merge_flags(ins)
    pads: dict[int, _Pad] = {}
    for tensor, state in zip(op.inputs, ins):
        in_rank = len(_shape(tensor) or ())
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
        shape = _shape(tensor) or ()
        offset = rank - len(shape)
        for axis, pad in pads.items():
            i = axis - offset
            if 0 <= i < len(shape) and shape[i] not in (None, 1) and pad.side == PRE:
                flags["absolute"] = True
    return _State(pads, **flags)


def _unzeroed(state: _State) -> _State:
    if not any(p.fill == ZERO for p in state.pads.values()):
        return state
    return replace(state, pads={a: replace(p, fill=OTHER) if p.fill == ZERO else p
                                for a, p in state.pads.items()})


def _aligned(mask: _State, op: Any, out_shape: tuple) -> set[int]:
    """The output axes a mask operand covers (masks keep their axis numbers when
    expanded at the end, mask[..., None])."""
    return {axis for axis in mask.mask_axes if axis < len(out_shape)}


def _remap(state: _State, mapping: Any, keep: bool = False) -> _State:
    pads: dict[int, _Pad] = {}
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


def _unknown(ins: list[_State]) -> _State:
    flags = _merge_flags(ins)
    flags["unknown"] = True
    pads = {a: replace(p, fill=OTHER if p.fill != DIRTY else DIRTY)
            for s in ins[:1] for a, p in s.pads.items()}
    return _State(pads, **flags)


def _move_axes(mask_axes: Mapping[int, str], axes: set[int] | None, keep: bool) -> dict[int, str]:
    if keep or not axes:
        return dict(mask_axes)
    return {a - sum(1 for r in axes if r < a): s for a, s in mask_axes.items() if a not in axes}


def _invert(polarity: str) -> str:
    return {"+": "-", "-": "+"}.get(polarity, polarity)


def _negate(polarity: str) -> str:
    return polarity


def _values(tensor: Any) -> Any:
    import tensorflow as tf

    try:
        return tf.get_static_value(tensor)
    except Exception:
        return None


def _ints(tensor: Any) -> list[int] | None:
    value = _values(tensor)
    if value is None:
        return None
    try:
        return [int(v) for v in (value.reshape(-1) if hasattr(value, "reshape") else [value])]
    except (TypeError, ValueError):
        return None


def _scalar(tensor: Any) -> float | None:
    value = _values(tensor)
    if value is None:
        return None
    try:
        flat = value.reshape(-1)
        return float(flat[0]) if flat.size and (flat == flat[0]).all() else None
    except (AttributeError, TypeError, ValueError):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None


def _positive_constant(tensor: Any) -> bool:
    value = _scalar(tensor)
    return value is not None and value > 0


def _axes_value(tensor: Any, rank: int) -> set[int] | None:
    values = _ints(tensor)
    if values is None or not rank:
        return None
    return {v % rank for v in values}
