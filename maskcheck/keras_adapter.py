"""The one module that reads Keras internals: a built model becomes a MaskGraph.

It walks Keras's own symbolic graph (the nodes that the Functional API
records when a model is built), never runs a forward pass, and inlines
nested Sequential and Functional models so their layers keep a path.
"""

from __future__ import annotations

import inspect
from typing import Any

from maskcheck.graph import MaskGraph, Node, Tensor

#: Layer attributes that decide semantics (see `semantics.semantics_for`).
_CONFIG_ATTRS = ("padding", "go_backwards", "return_sequences", "mask_zero",
                 "mask_value", "kernel_size", "strides", "axis")


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.tensors: dict[int, Tensor] = {}
        self._ids: dict[int, int] = {}  # id(KerasTensor) -> tensor id

    def tensor_id(self, kt: Any, alias: dict[int, int] | None = None) -> int:
        if alias and id(kt) in alias:
            return alias[id(kt)]
        key = id(kt)
        if key not in self._ids:
            tid = len(self._ids)
            self._ids[key] = tid
            self.tensors[tid] = Tensor(tid, tuple(kt.shape), str(kt.dtype))
        return self._ids[key]

    def set_producer(self, tid: int, index: int) -> None:
        t = self.tensors[tid]
        if t.producer is None:
            self.tensors[tid] = Tensor(t.id, t.shape, t.dtype, index)


def _functional_of(model: Any) -> Any | None:
    """The Functional graph behind a model, or None for subclassed models."""
    from keras.src.models.functional import Functional

    if isinstance(model, Functional):
        return model
    inner = getattr(model, "_functional", None)
    return inner if isinstance(inner, Functional) else None


def _ordered_nodes(functional: Any) -> list[Any]:
    """Keras nodes of a Functional model, inputs first, deterministic."""
    position = {id(op): i for i, op in enumerate(functional.operations)}
    ordered = []
    for depth in sorted(functional._nodes_by_depth, reverse=True):
        nodes = functional._nodes_by_depth[depth]
        ordered.extend(sorted(nodes, key=lambda n: (position.get(id(n.operation), 0),
                                                  n.operation._inbound_nodes.index(n))))
    return ordered


def _takes_mask(op: Any) -> bool:
    call = getattr(op, "call", None)
    if call is None:
        return False
    try:
        params = inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False
    return any(p == "mask" or (p.endswith("_mask") and p != "use_causal_mask") for p in params)


def _config(op: Any) -> dict[str, object]:
    config: dict[str, object] = {}
    for attr in _CONFIG_ATTRS:
        value = getattr(op, attr, None)
        if isinstance(value, (bool, int, float, str)) or (
                isinstance(value, tuple) and all(isinstance(v, int) for v in value)):
            config[attr] = value
    forward = getattr(op, "forward_layer", None)  # Bidirectional
    if forward is not None:
        config["return_sequences"] = bool(getattr(forward, "return_sequences", False))
    return config


def _walk(builder: _Builder, functional: Any, path: tuple[str, ...],
          alias: dict[int, int], top_level: bool) -> None:
    for knode in _ordered_nodes(functional):
        op = knode.operation
        if knode.is_input:
            if not top_level:
                continue  # nested inputs are aliased to the outer tensors
            for kt in knode.output_tensors:
                tid = builder.tensor_id(kt, alias)
                index = len(builder.nodes)
                builder.nodes.append(Node(index, op.name, type(op).__name__, path + (op.name,),
                                          (), (tid,), is_input=True))
                builder.set_producer(tid, index)
            continue
        in_ids = tuple(builder.tensor_id(kt, alias) for kt in knode.input_tensors)
        nested = _functional_of(op) if hasattr(op, "layers") else None
        if nested is not None:
            data_inputs = [kt for kt in knode.input_tensors if "bool" not in str(kt.dtype)]
            inner_alias = dict(alias)
            for inner_kt, outer_kt in zip(nested.inputs, data_inputs):
                inner_alias[id(inner_kt)] = builder.tensor_id(outer_kt, alias)
            _walk(builder, nested, path + (op.name,), inner_alias, top_level=False)
            for inner_kt, outer_kt in zip(nested.outputs, knode.output_tensors):
                alias[id(outer_kt)] = builder.tensor_id(inner_kt, inner_alias)
            continue
        out_ids = tuple(builder.tensor_id(kt, alias) for kt in knode.output_tensors)
        index = len(builder.nodes)
        observed = (tuple(getattr(kt, "_keras_mask", None) is not None for kt in knode.output_tensors)
                    if top_level else None)
        builder.nodes.append(Node(
            index=index,
            name=op.name,
            class_name=type(op).__name__,
            path=path + (op.name,),
            inputs=in_ids,
            outputs=out_ids,
            takes_mask=_takes_mask(op),
            supports_masking=bool(getattr(op, "supports_masking", False)),
            keras_output_masks=observed,
            config=_config(op),
            call_index=op._inbound_nodes.index(knode),
        ))
        for tid in out_ids:
            builder.set_producer(tid, index)


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
    inputs = tuple(builder.tensor_id(kt, alias) for kt in functional.inputs)
    outputs = tuple(builder.tensor_id(kt, alias) for kt in functional.outputs)
    return MaskGraph(model.name, tuple(builder.nodes), dict(builder.tensors), inputs, outputs)
