"""Traced-graph access: code traced on symbolic inputs, and what its tensors say.

A custom layer's `call` (with its `compute_mask`), or a loss, is traced once
with `tf.function` into a TensorFlow graph: no data, no forward pass on values.
The result is a program, the graph's operations in order, in which every
sub-layer the tables know (`known(layer)` gives its row) is one block instead
of its operations. The helpers below read what a graph tensor says without
data: its static shape, or its value when it is a constant.

TensorFlow and Keras are imported inside the functions only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Sizes given to unknown axes when tracing; distinct so that a broadcast can
#: tell a position table (size T along the padded axis) from a feature vector.
BATCH = 3
UNKNOWN_SIZES = (7, 6, 5, 9)


class Slot(int):
    """In a call layout: the input tensor at this index."""

    def __repr__(self) -> str:
        return f"Slot({int(self)})"


def concrete_shape(shape: tuple) -> tuple[int, ...]:
    """`shape` with the batch and every unknown axis given a size to trace with."""
    sizes = iter(UNKNOWN_SIZES)
    return tuple(BATCH if i == 0 else (d if d is not None else next(sizes, 7))
                 for i, d in enumerate(shape))


@dataclass
class Trace:
    """One traced call: its program and where the inputs, mask and outputs are.

    `program` lists ``("op", operation)`` and ``("block", (row, inputs, outputs,
    masks))`` in graph order; a block is a sub-layer the tables know, read with
    its row."""

    program: list
    inputs: list
    #: the mask handed to the call (None: traced without one)
    mask: Any
    output: Any
    #: the mask the call returns with its output (compute_mask)
    out_mask: Any
    #: the explicit masks passed by keyword (``padding_mask=``)
    keyword_masks: list = field(default_factory=list)


def trace_call(layer: Any, shapes: list[tuple], dtypes: list[str], masked: bool, known: Any,
               mask_keywords: tuple = (), layout: Any = None) -> Trace:
    """Trace `layer` on inputs of concrete `shapes`, handed a mask of the valid steps
    when `masked`. See `reader.read_layer` for `known`, `mask_keywords` and `layout`."""
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
    keyword_specs = [tf.TensorSpec(concrete_shape(tuple(time if i else d
                                                        for i, d in enumerate(shape)))
                                   if len(shape) > 1 else concrete_shape(shape), dtype)
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
        if masked and takes(layer, "mask") and not binds(layer, "mask", args, kwargs):
            m = tensors[-1]
            kwargs["mask"] = m if len(xs) == 1 else [m] + [None] * (len(xs) - 1)
        elif masked:  # call takes no mask: Keras hands the attached one to compute_mask
            with_mask(xs[0], tensors[-1])
        if takes(layer, "training") and "training" not in kwargs:
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
    return Trace(program, captured.get("inputs", []), captured.get("mask"),
                 captured.get("output"), captured.get("out_mask"),
                 captured.get("keyword_masks", []))


@dataclass
class LossTrace:
    """One traced loss: its operations, the padded output's labels and predictions, the
    mask attached to the predictions, and the value the loss returns."""

    program: list
    labels: Any
    pred: Any
    mask: Any
    value: Any


def trace_loss(loss: Any, shapes: list[tuple], pred_dtypes: list[str], index: int,
               structure: Any, sparse: bool) -> LossTrace | None:
    """Trace ``loss(y_true, y_pred)`` on predictions of concrete `shapes`, output `index`
    carrying a mask over axis 1; `sparse`: labels (batch, time) for predictions of rank 3
    and more. None when the loss does not trace."""
    import tensorflow as tf

    padded_shape = shapes[index]
    labels = [(s[:-1], "int32") if sparse and len(s) > 2 else (s, "float32") for s in shapes]
    captured: dict[str, Any] = {}

    def traced(*tensors):
        n = len(shapes)
        ys, preds, mask = list(tensors[:n]), list(tensors[n:2 * n]), tensors[-1]
        preds[index] = with_mask(preds[index], mask)
        y_true = ys[0] if structure is None and n == 1 else tf.nest.pack_sequence_as(structure, ys)
        y_pred = preds[0] if structure is None and n == 1 else \
            tf.nest.pack_sequence_as(structure, preds)
        value = loss(y_true, y_pred)
        captured.update(labels=ys[index], pred=preds[index], mask=mask,
                        value=tf.nest.flatten(value)[0])
        return value

    specs = [tf.TensorSpec(shape, dtype) for shape, dtype in labels]
    specs += [tf.TensorSpec(s, d if "float" in d else "float32")
              for s, d in zip(shapes, pred_dtypes)]
    specs.append(tf.TensorSpec(padded_shape[:2], "bool"))
    try:
        graph = tf.function(traced, autograph=False).get_concrete_function(*specs).graph
    except Exception:
        return None
    return LossTrace([("op", op) for op in graph.get_operations()], captured["labels"],
                     captured["pred"], captured["mask"], captured["value"])


def with_mask(tensor: Any, mask: Any) -> Any:
    """Attach `mask` the way Keras hands an output's mask to its loss."""
    try:
        from keras.src.backend import set_keras_mask

        set_keras_mask(tensor, mask)
    except ImportError:
        tensor._keras_mask = mask
    return tensor


def binds(layer: Any, argument: str, args: list, kwargs: dict) -> bool:
    """The call already passes `argument` (positionally or by keyword)."""
    import inspect
    try:
        bound = inspect.signature(layer.call).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return False
    return argument in bound.arguments


def takes(layer: Any, argument: str) -> bool:
    """`layer.call` has a parameter named `argument` (mask, training)."""
    import inspect
    try:
        return argument in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


# ------------------------------------------------- reading graph tensors ----

def shape_of(tensor: Any) -> tuple | None:
    """A graph tensor's static shape (None: unknown rank, or no tensor)."""
    if tensor is None:
        return None
    try:
        return tuple(tensor.shape.as_list())
    except (ValueError, AttributeError):
        return None


def static_value(tensor: Any) -> Any:
    """A graph tensor's value when it is known without data (a constant), else None."""
    import tensorflow as tf

    try:
        return tf.get_static_value(tensor)
    except Exception:
        return None


def ints(tensor: Any) -> list[int] | None:
    """A constant tensor's values as integers (axes, sizes, begins), flattened."""
    value = static_value(tensor)
    if value is None:
        return None
    try:
        return [int(v) for v in (value.reshape(-1) if hasattr(value, "reshape") else [value])]
    except (TypeError, ValueError):
        return None


def scalar(tensor: Any) -> float | None:
    """A constant tensor's value when all its elements are equal."""
    value = static_value(tensor)
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


def positive_constant(tensor: Any) -> bool:
    value = scalar(tensor)
    return value is not None and value > 0


def axes_value(tensor: Any, rank: int) -> set[int] | None:
    """A constant tensor of axes, as non-negative axes of a rank-`rank` tensor."""
    values = ints(tensor)
    if values is None or not rank:
        return None
    return {v % rank for v in values}
