"""The one module that reads Keras internals: a built model becomes a MaskGraph.

It walks Keras's own symbolic graph (the nodes that the Functional API
records when a model is built), never runs a forward pass, and inlines
nested Sequential and Functional models so their layers keep a path.
`keras.ops` calls and Python operators on symbolic tensors are nodes too
(Keras records them as Operations): they are kept, marked `is_op`, because
they drop masks without a warning.
"""

from __future__ import annotations

import inspect
from typing import Any

from maskcheck.static import collector_paused
from maskcheck.static.generation import generation_facts
from maskcheck.static.graph import MaskGraph, Node, Tensor

#: Layer and op attributes that decide semantics (see `semantics.semantics_for`).
_CONFIG_ATTRS = (
    "padding", "go_backwards", "return_sequences", "mask_zero", "mask_value",
    "kernel_size", "strides", "pool_size", "axis", "axes", "dims", "target_shape",
    "groups", "data_format", "dilation_rate", "mask_token", "num_oov_indices",
    "invert", "output_mode", "cropping", "size", "keepdims", "reverse", "newshape",
    "exclusive", "merge_mode", "center", "scale", "synchronized", "mode",
    "output_sequence_length", "use_causal_mask", "is_causal",
)
_SCALARS = (bool, int, float, str, type(None))


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.tensors: dict[int, Tensor] = {}
        self._ids: dict[int, int] = {}  # id(KerasTensor) -> tensor id
        self._keep: list[Any] = []  # keeps KerasTensors alive so ids stay unique

    def tensor_id(self, kt: Any, alias: dict[int, int], observed: bool) -> int:
        if id(kt) in alias:
            return alias[id(kt)]
        key = id(kt)
        if key not in self._ids:
            tid = len(self._ids)
            self._ids[key] = tid
            self._keep.append(kt)
            mask = getattr(kt, "_keras_mask", None) if observed else None
            mask_shape = tuple(mask.shape) if mask is not None and hasattr(mask, "shape") else None
            self.tensors[tid] = Tensor(tid, tuple(kt.shape), str(kt.dtype),
                                       keras_mask_shape=mask_shape)
        return self._ids[key]

    def set_producer(self, tid: int, index: int) -> None:
        t = self.tensors[tid]
        if t.producer is None:
            self.tensors[tid] = Tensor(t.id, t.shape, t.dtype, index, t.keras_mask_shape)


def _functional_of(model: Any) -> Any | None:
    """The Functional graph behind a model, or None for subclassed models."""
    from keras.src.models.functional import Functional

    if isinstance(model, Functional):
        return model
    inner = getattr(model, "_functional", None)
    return inner if isinstance(inner, Functional) else None


def _ordered_nodes(functional: Any) -> list[Any]:
    """Keras nodes of a Functional model, inputs first, deterministic, O(n log n)."""
    position = {id(op): i for i, op in enumerate(functional.operations)}
    ordered = []
    for depth in sorted(functional._nodes_by_depth, reverse=True):
        nodes = functional._nodes_by_depth[depth]
        ordered.extend(sorted(nodes, key=lambda n: (position.get(id(n.operation), -1),
                                                  _call_index(n))))
    return ordered


def _call_index(knode: Any) -> int:
    outputs = knode.outputs
    if outputs and hasattr(outputs[0], "_keras_history"):
        return int(outputs[0]._keras_history.node_index)
    return 0


_TAKES_MASK: dict[type, bool] = {}


def _takes_mask(op: Any) -> bool:
    cls = type(op)
    if cls not in _TAKES_MASK:
        try:
            params = inspect.signature(op.call).parameters
        except (AttributeError, TypeError, ValueError):
            params = {}
        _TAKES_MASK[cls] = any(p == "mask" or (p.endswith("_mask") and p != "use_causal_mask")
                               for p in params)
    return _TAKES_MASK[cls]


def _plain(value: Any) -> Any:
    """A config value as a plain scalar or tuple, or None when it is not one."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value):
        return tuple(value)
    return None


def _config(op: Any, knode: Any) -> dict[str, object]:
    """The plain attributes and call arguments that `semantics_for` reads."""
    config: dict[str, object] = {}
    attrs = vars(op) if hasattr(op, "__dict__") else {}
    for attr in _CONFIG_ATTRS:
        value = attrs.get(attr)
        if value is None:
            value = attrs.get("_" + attr)
        plain = _plain(value)
        if plain is not None:
            config[attr] = plain
    # Bidirectional, TimeDistributed, RNN, keras-hub TokenAndPositionEmbedding
    for wrapped_attr in ("forward_layer", "layer", "cell", "token_embedding"):
        inner = attrs.get(wrapped_attr)
        if inner is not None and hasattr(inner, "name"):
            config["inner"] = type(inner).__name__
            for attr in ("return_sequences", "go_backwards", "mask_zero", "padding", "kernel_size"):
                plain = _plain(getattr(inner, attr, None))
                if plain is not None:
                    config.setdefault(attr, plain)
                    config["inner_" + attr] = plain
            break
    if attrs.get("backward_layer") is not None:
        config["bidirectional"] = True
    vocab = _embedding_vocab(op)
    if vocab is not None:  # its inputs are token ids (SPEC 4 item 6)
        config["embeds"] = vocab
    if type(op).__name__ == "GetItem" and len(knode.arguments.args) > 1:
        config.update(_index_config(knode.arguments.args[1]))
    for key, value in knode.arguments.kwargs.items():  # use_causal_mask=True, training=...
        plain = _plain(value)
        if plain is not None and not isinstance(plain, tuple):
            config["call:" + key] = plain
    return config


def _layout(knode: Any) -> Any:
    """How the model calls a layer: (args, kwargs), each input tensor replaced by its
    `Slot` (its index among the node's inputs, in the order `_walk` lists them); mask
    keywords are left out (the reader passes them itself). None when the call holds
    something the reader cannot pass again."""
    from keras.src import tree
    from keras.src.backend.common.keras_tensor import KerasTensor

    from maskcheck.static.ops import Slot

    count = [0]
    plain = (type(None), bool, int, float, str)

    def slot(value: Any) -> Any:
        if isinstance(value, KerasTensor):
            count[0] += 1
            return Slot(count[0] - 1)
        if not isinstance(value, plain):
            raise TypeError(type(value).__name__)
        return value

    try:
        args = tree.map_structure(slot, list(knode.arguments.args))
        kwargs = {key: tree.map_structure(slot, value)
                  for key, value in knode.arguments.kwargs.items() if not _is_mask_keyword(key)}
    except TypeError:
        return None
    return (tuple(args), kwargs)


def _read_unknown(op: Any, data: list[Any], masks: list[tuple[str, Any]] = (),
                  layout: Any = None) -> Any:
    """The op-level reading of a layer the semantics tables do not know, else None."""
    from maskcheck.static.ops import read_layer
    from maskcheck.static.semantics import lookup

    if lookup(type(op).__name__, _bases(type(op))).known or not data:
        return None
    if not getattr(op, "built", True):
        return None
    shapes = [tuple(kt.shape) for kt in data]
    dtypes = [str(kt.dtype) for kt in data]
    mask_aware = (_takes_mask(op) or bool(getattr(op, "supports_masking", False))
                  or type(op).compute_mask is not _base_compute_mask())
    keywords = tuple((key, tuple(kt.shape), str(kt.dtype)) for key, kt in masks)
    return read_layer(op, shapes, dtypes, takes_mask=mask_aware, known=_known_sublayer,
                      mask_keywords=keywords, layout=layout)


def _base_compute_mask() -> Any:
    from keras.src.layers.layer import Layer

    return Layer.compute_mask


def _known_sublayer(layer: Any) -> Any:
    """Table semantics for a sub-layer inside read code, or None to read it op by op."""
    from maskcheck.static.semantics import lookup, semantics_for

    name, bases = type(layer).__name__, _bases(type(layer))
    if hasattr(layer, "operations") or not lookup(name, bases).known:
        return None
    return semantics_for(name, _layer_config(layer), bases=bases)


def _layer_config(op: Any) -> dict[str, object]:
    attrs = vars(op) if hasattr(op, "__dict__") else {}
    config: dict[str, object] = {}
    for attr in _CONFIG_ATTRS:
        value = attrs.get(attr, attrs.get("_" + attr))
        plain = _plain(value)
        if plain is not None:
            config[attr] = plain
    return config


def _embedding_vocab(op: Any) -> int | None:
    """The smallest input_dim of the Embedding `op` is, or of those inside a custom layer."""
    dims = []
    if isinstance(getattr(op, "input_dim", None), int):
        dims.append(op.input_dim)
    elif hasattr(op, "_flatten_layers") and not hasattr(op, "operations"):
        dims.extend(l.input_dim for l in op._flatten_layers(include_self=False, recursive=True)
                    if isinstance(getattr(l, "input_dim", None), int))
    return min(dims) if dims else None


_GENERIC_BASES = frozenset({"Layer", "Operation", "Model", "Functional", "Sequential", "object",
                            "Trainer", "TFLayer", "TorchLayer", "JaxLayer", "KerasSaveable",
                            "TensorFlowTrainer", "BaseConv", "BasePooling", "Wrapper"})


def _bases(cls: type) -> tuple[str, ...]:
    return tuple(c.__name__ for c in cls.__mro__[1:]
                 if c.__module__.startswith(("keras.", "keras_hub.", "keras_nlp."))
                 and c.__name__ not in _GENERIC_BASES)


def _index_config(key: Any) -> dict[str, tuple[int, ...]]:
    """Which axes `x[key]` reads at a fixed position counted from the start or the end,
    and which it slices; empty when the key is not understood (Ellipsis, tensors)."""
    key = tuple(key) if isinstance(key, (list, tuple)) else (key,)
    if any(k is Ellipsis or k is None for k in key):
        return {}
    start, end, sliced = [], [], []
    for axis, k in enumerate(key):
        if isinstance(k, int) and not isinstance(k, bool):
            (start if k >= 0 else end).append(axis)
        elif isinstance(k, slice):
            if k.start not in (None, 0) or k.stop is not None or k.step not in (None, 1):
                sliced.append(axis)
        else:  # a tensor, a bool, a list: not understood
            return {}
    return {"index_from_start": tuple(start), "index_from_end": tuple(end),
            "sliced": tuple(sliced)}


def _flat_tensors(structure: Any) -> list[Any]:
    from keras.src import tree
    from keras.src.backend.common.keras_tensor import KerasTensor

    return [t for t in tree.flatten(structure) if isinstance(t, KerasTensor)]


def _is_mask_keyword(key: str) -> bool:
    return key == "mask" or (key.endswith("mask") and key != "use_causal_mask")


def _walk(builder: _Builder, functional: Any, path: tuple[str, ...],
          alias: dict[int, int], top_level: bool) -> None:
    from keras.src.layers.layer import Layer

    for knode in _ordered_nodes(functional):
        op = knode.operation
        if knode.is_input:
            if not top_level:
                continue  # nested inputs are aliased to the outer tensors
            for kt in knode.outputs:
                tid = builder.tensor_id(kt, alias, top_level)
                index = len(builder.nodes)
                builder.nodes.append(Node(index, op.name, type(op).__name__, path + (op.name,),
                                          (), (tid,), is_input=True))
                builder.set_producer(tid, index)
            continue
        data = _flat_tensors(knode.arguments.args)
        masks: list[tuple[str, Any]] = []
        for key, value in knode.arguments.kwargs.items():
            tensors = _flat_tensors(value)
            if not _is_mask_keyword(key):
                data.extend(tensors)
        # Keras records the masks it passes implicitly (the inputs' _keras_mask)
        # as `mask=` arguments too; only other tensors are explicit masks.
        implicit = {id(getattr(kt, "_keras_mask", None)) for kt in data}
        for key, value in knode.arguments.kwargs.items():
            if _is_mask_keyword(key):
                masks.extend((key, t) for t in _flat_tensors(value) if id(t) not in implicit)
        in_ids = tuple(builder.tensor_id(kt, alias, top_level) for kt in data)
        mask_ids = tuple((k, builder.tensor_id(kt, alias, top_level)) for k, kt in masks)
        nested = _functional_of(op) if hasattr(op, "layers") else None
        if nested is not None:
            inner_alias = dict(alias)
            inner_flat = list(nested.inputs)
            outer_flat = _flat_tensors(knode.arguments.args[0]) if knode.arguments.args else data
            if len(outer_flat) != len(inner_flat):
                outer_flat = data
            for inner_kt, outer_kt in zip(inner_flat, outer_flat):
                inner_alias[id(inner_kt)] = builder.tensor_id(outer_kt, alias, top_level)
            _walk(builder, nested, path + (op.name,), inner_alias, top_level=False)
            for inner_kt, outer_kt in zip(nested.outputs, knode.outputs):
                alias[id(outer_kt)] = builder.tensor_id(inner_kt, inner_alias, False)
            continue
        out_ids = tuple(builder.tensor_id(kt, alias, top_level) for kt in knode.outputs)
        index = len(builder.nodes)
        observed = (tuple(getattr(kt, "_keras_mask", None) is not None for kt in knode.outputs)
                    if top_level else None)
        is_layer = isinstance(op, Layer)
        reading = _read_unknown(op, data, masks, _layout(knode)) if is_layer else None
        builder.nodes.append(Node(
            index=index,
            name=op.name,
            class_name=type(op).__name__,
            path=path + (op.name,),
            inputs=in_ids,
            outputs=out_ids,
            is_op=not is_layer,
            takes_mask=is_layer and _takes_mask(op),
            supports_masking=bool(getattr(op, "supports_masking", False)) if is_layer else False,
            keras_output_masks=observed,
            mask_inputs=mask_ids,
            config=_config(op, knode),
            call_index=_call_index(knode),
            bases=_bases(type(op)),
            reading=reading,
        ))
        for tid in out_ids:
            builder.set_producer(tid, index)


def _describe_loss(loss: Any) -> dict[str, Any] | None:
    """What maskcheck needs to know about one compiled loss, or None for no loss."""
    if loss is None:
        return None
    if isinstance(loss, str):
        return {"name": loss, "ignore_class": None, "custom_call": False}
    config_fn = getattr(loss, "get_config", None)
    config: dict[str, Any] = {}
    if callable(config_fn):
        try:
            config = dict(config_fn() or {})
        except Exception:  # a custom loss with a broken get_config
            config = {}
    kwargs = getattr(loss, "_fn_kwargs", None) or {}
    ignore = config.get("ignore_class", kwargs.get("ignore_class"))
    name = config.get("name") or getattr(loss, "name", None) or getattr(loss, "__name__", None) \
        or type(loss).__name__
    from keras.src.losses.loss import Loss

    custom_call = isinstance(loss, Loss) and type(loss).__call__ is not Loss.__call__
    return {"name": str(name), "ignore_class": ignore, "custom_call": custom_call}


def _describe_metric(metric: Any, weighted: bool) -> dict[str, Any] | None:
    if metric is None:
        return None
    from keras.src.metrics.reduction_metrics import MeanMetricWrapper

    if isinstance(metric, str):
        name = metric
        applies_mask = True  # "accuracy", "mae", ... become MeanMetricWrapper
        try:
            import keras

            if metric not in ("accuracy", "acc", "crossentropy", "ce"):
                resolved = keras.metrics.get(metric)
                applies_mask = not hasattr(resolved, "update_state") or isinstance(resolved, MeanMetricWrapper)
        except Exception:
            pass
    elif hasattr(metric, "update_state"):
        name = getattr(metric, "name", type(metric).__name__)
        applies_mask = isinstance(metric, MeanMetricWrapper)
    else:  # a plain function: Keras wraps it in MeanMetricWrapper
        name = getattr(metric, "__name__", type(metric).__name__)
        applies_mask = True
    return {"name": str(name), "weighted": weighted, "applies_mask": applies_mask}


def _per_output(spec: Any, output_names: tuple[str, ...], *, nested_lists: bool) -> dict[int, list[Any]]:
    """Spread a compile argument (single, list or dict) over output indices."""
    n = len(output_names)
    result: dict[int, list[Any]] = {i: [] for i in range(n)}
    if spec is None:
        return result
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key in output_names:
                items = value if (nested_lists and isinstance(value, (list, tuple))) else [value]
                result[output_names.index(key)].extend(items)
        return result
    if isinstance(spec, (list, tuple)):
        if nested_lists:
            if n > 1 and len(spec) == n and all(isinstance(v, (list, tuple, type(None))) for v in spec):
                for i, value in enumerate(spec):
                    result[i].extend(value or [])
            else:
                for i in range(n):
                    result[i].extend(spec)
            return result
        if len(spec) == n:
            for i, value in enumerate(spec):
                result[i].append(value)
            return result
    for i in range(n):
        result[i].append(spec)
    return result


def _loss_spec(model: Any) -> Any:
    """The loss argument `compile` got (single, list or dict), or None."""
    compile_loss = getattr(model, "_compile_loss", None)
    spec = getattr(compile_loss, "_user_loss", None) if compile_loss is not None else None
    return spec if spec is not None else getattr(model, "loss", None)


def _compile_info(model: Any, output_names: tuple[str, ...]) -> tuple[bool, dict, dict]:
    compile_loss = getattr(model, "_compile_loss", None)
    loss_spec = _loss_spec(model)
    weights_spec = getattr(compile_loss, "_user_loss_weights", None) if compile_loss is not None else None
    compiled = bool(getattr(model, "compiled", False)) or loss_spec is not None
    weights = _per_output(weights_spec, output_names, nested_lists=False)
    losses: dict[int, tuple] = {}
    for i, items in _per_output(loss_spec, output_names, nested_lists=False).items():
        described = []
        for item in items:
            info = _describe_loss(item)
            if info is None:
                continue
            weight = weights[i][0] if weights[i] else None
            info["weight"] = float(weight) if isinstance(weight, (int, float)) else None
            described.append(info)
        losses[i] = tuple(described)
    compile_metrics = getattr(model, "_compile_metrics", None)
    metrics: dict[int, list] = {i: [] for i in range(len(output_names))}
    if compile_metrics is not None:
        for spec, weighted in ((getattr(compile_metrics, "_user_metrics", None), False),
                               (getattr(compile_metrics, "_user_weighted_metrics", None), True)):
            for i, items in _per_output(spec, output_names, nested_lists=True).items():
                metrics[i].extend(d for d in (_describe_metric(m, weighted) for m in items) if d)
    return compiled, losses, {i: tuple(v) for i, v in metrics.items()}


@collector_paused()
def adapt_model(model: Any) -> MaskGraph:
    """Build the MaskGraph of a Functional or Sequential Keras model.

    Raises:
        ValueError: the model has no symbolic graph (a subclassed model, or a
            Sequential model that was never built on an input shape).
    """
    functional = _functional_of(model)
    if functional is None:
        raise ValueError(
            f"model {model.name!r} ({type(model).__name__}) has no symbolic graph to walk "
            "(subclassed, or Sequential without an Input); static checks need a "
            "Functional or built Sequential model")
    builder = _Builder()
    alias: dict[int, int] = {}
    _walk(builder, functional, (model.name,), alias, top_level=True)
    inputs = tuple(builder.tensor_id(kt, alias, True) for kt in functional.inputs)
    outputs = tuple(builder.tensor_id(kt, alias, True) for kt in functional.outputs)
    output_names = _output_names(model, functional, builder, outputs)
    input_names = tuple(builder.nodes[builder.tensors[t].producer].name
                        if builder.tensors[t].producer is not None else f"input_{i}"
                        for i, t in enumerate(inputs))
    compiled, losses, metrics = _compile_info(model, output_names)
    return MaskGraph(model.name, tuple(builder.nodes), dict(builder.tensors), inputs, outputs,
                     output_names=output_names, input_names=input_names, losses=losses,
                     metrics=metrics, compiled=compiled,
                     loss_readings=_loss_readings(model, functional, output_names),
                     generation=generation_facts(model))


def _loss_readings(model: Any, functional: Any, output_names: tuple[str, ...]) -> dict:
    """Read the loss code Keras does not apply the mask for: a Loss that overrides
    `__call__` and a model's own `compute_loss` (ops.read_loss), per output."""
    import keras

    from maskcheck.static.ops import read_loss
    from keras.src.losses.loss import Loss

    outputs = list(functional.outputs)
    shapes = [tuple(kt.shape) for kt in outputs]
    dtypes = [str(kt.dtype) for kt in outputs]
    structure = getattr(functional, "_outputs_struct", None)
    if structure is None or len(outputs) == 1:
        structure = None
    readings: dict[int, list[tuple[str, bool | None]]] = {}
    for index, items in _per_output(_loss_spec(model), output_names, nested_lists=False).items():
        for loss in items:
            if isinstance(loss, Loss) and type(loss).__call__ is not Loss.__call__ \
                    and _per_step(shapes[index]):
                # a per-output Loss sees that output's labels and predictions only
                verdict = read_loss(loss, [shapes[index]], [dtypes[index]], 0)
                readings.setdefault(index, []).append((type(loss).__name__, verdict))
    if type(model).compute_loss is not keras.Model.compute_loss:
        name = f"{type(model).__name__}.compute_loss"

        takes_training = "training" in inspect.signature(model.compute_loss).parameters

        def compute(y_true, y_pred):
            extra = {"training": True} if takes_training else {}
            return model.compute_loss(x=None, y=y_true, y_pred=y_pred, sample_weight=None, **extra)

        for index, shape in enumerate(shapes):
            if _per_step(shape):
                verdict = read_loss(compute, shapes, dtypes, index, structure)
                readings.setdefault(index, []).append((name, verdict))
    return {i: tuple(v) for i, v in readings.items()}


def _per_step(shape: tuple) -> bool:
    """An output with a step axis a loss could average padding over."""
    return len(shape) >= 3 or (len(shape) == 2 and shape[1] is None)


def _output_names(model: Any, functional: Any, builder: _Builder,
                  outputs: tuple[int, ...]) -> tuple[str, ...]:
    names = getattr(model, "output_names", None) or getattr(functional, "output_names", None)
    if names and len(names) == len(outputs):
        return tuple(str(n) for n in names)
    result = []
    for i, tid in enumerate(outputs):
        producer = builder.tensors[tid].producer
        result.append(builder.nodes[producer].name if producer is not None else f"output_{i}")
    return tuple(result)
