"""MaskGraph: the engine's view of a Keras model, free of Keras objects.

`adapter.adapt_model` builds it from a model; rules and the dataflow
analysis in `dataflow` read it. Everything here is a frozen value, so an
analysis can never change the model it describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class Tensor:
    """One symbolic tensor: its shape (None for unknown sizes) and dtype."""

    id: int
    shape: tuple[int | None, ...]
    dtype: str
    producer: int | None = None  # index of the node that computes it
    #: Shape of the mask Keras attached when it built the model; None when
    #: Keras attached none or when that is unknown (inside nested models).
    keras_mask_shape: tuple[int | None, ...] | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_boolean_like(self) -> bool:
        return "bool" in self.dtype


@dataclass(frozen=True, slots=True)
class Node:
    """One call of one layer or operation, in topological order.

    A layer shared by several calls appears once per call (`call_index`).
    Layers of nested models appear inlined, with `path` naming the chain.
    `inputs` are the data tensors; tensors passed as ``mask=``,
    ``padding_mask=``, ``attention_mask=`` (any keyword ending in ``mask``)
    are in `mask_inputs`, so an explicit mask is never mistaken for data.
    """

    index: int
    name: str
    class_name: str
    path: tuple[str, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    #: True for the model's own Input layers.
    is_input: bool = False
    #: True for keras.ops calls and Python operators on symbolic tensors
    #: (they are Operations, not Layers, and never carry a mask).
    is_op: bool = False
    #: `call` takes a `mask` (or `*_mask`) argument, so Keras hands it the mask.
    takes_mask: bool = False
    supports_masking: bool = False
    #: Whether Keras attached a mask to each output when it built the model;
    #: None where that is unknown (layers inside nested models).
    keras_output_masks: tuple[bool, ...] | None = None
    #: Tensors passed as explicit mask keyword arguments, by keyword.
    mask_inputs: tuple[tuple[str, int], ...] = ()
    #: Config entries that decide semantics (padding, go_backwards, mask_zero, ...).
    config: Mapping[str, Any] = field(default_factory=dict)
    call_index: int = 0
    #: Names of the Keras classes it derives from, nearest first (a custom
    #: subclass of Conv1D keeps Conv1D's semantics).
    bases: tuple[str, ...] = ()
    #: what the operation-level reader found in a layer the tables do not know
    #: (`ops.Reading`: plain values), or None for table-known layers
    reading: Any = None


@dataclass(frozen=True, slots=True)
class MaskGraph:
    """A whole model: nodes in topological order and the tensors between them.

    `loss` and `metrics` describe what `compile` attached, per output index:
    ``{output_index: ({"name": ..., "ignore_class": ...}, ...)}``.
    """

    name: str
    nodes: tuple[Node, ...]
    tensors: Mapping[int, Tensor]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    output_names: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()
    losses: Mapping[int, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    metrics: Mapping[int, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    compiled: bool = False
    #: per output index, (loss name, does it reduce the padded steps without the output's
    #: mask?) for code maskcheck read: a Loss with its own __call__, a custom compute_loss
    #: (None: the code could not be read)
    loss_readings: Mapping[int, tuple[tuple[str, bool | None], ...]] = field(default_factory=dict)
    #: a causal LM's generation path (`static.generation.generation_facts`), {} for others
    generation: Mapping[str, Any] = field(default_factory=dict)
    _consumers: dict = field(default_factory=dict, repr=False, compare=False)

    def consumers(self, tensor_id: int) -> tuple[Node, ...]:
        """The nodes that read `tensor_id` (as data or mask), in topological order."""
        if not self._consumers and self.nodes:
            index: dict[int, list[Node]] = {}
            for node in self.nodes:
                for tid in dict.fromkeys(node.inputs + tuple(t for _, t in node.mask_inputs)):
                    index.setdefault(tid, []).append(node)
            self._consumers.update({t: tuple(ns) for t, ns in index.items()})
        return self._consumers.get(tensor_id, ())
