"""MaskGraph: the engine's view of a Keras model, free of Keras objects.

`keras_adapter.adapt_model` builds it from a model; rules and the dataflow
analysis in `maskflow` read it. Everything here is a frozen value, so an
analysis can never change the model it describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True, slots=True)
class Tensor:
    """One symbolic tensor: its shape (None for unknown sizes) and dtype."""

    id: int
    shape: tuple[int | None, ...]
    dtype: str
    producer: int | None = None  # index of the node that computes it

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(frozen=True, slots=True)
class Node:
    """One call of one layer or operation, in topological order.

    A layer shared by several calls appears once per call (`call_index`).
    Layers of nested models appear inlined, with `path` naming the chain.
    """

    index: int
    name: str
    class_name: str
    path: tuple[str, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    #: True for the model's own Input layers.
    is_input: bool = False
    #: `call` takes a `mask` (or `*_mask`) argument, so Keras hands it the mask.
    takes_mask: bool = False
    supports_masking: bool = False
    #: Whether Keras attached a mask to each output when it built the model;
    #: None where that is unknown (layers inside nested models).
    keras_output_masks: tuple[bool, ...] | None = None
    #: Config entries that decide semantics (padding, go_backwards, mask_zero, ...).
    config: Mapping[str, object] = field(default_factory=dict)
    call_index: int = 0


@dataclass(frozen=True, slots=True)
class MaskGraph:
    """A whole model: nodes in topological order and the tensors between them."""

    name: str
    nodes: tuple[Node, ...]
    tensors: Mapping[int, Tensor]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def consumers(self, tensor_id: int) -> tuple[Node, ...]:
        """The nodes that read `tensor_id`, in topological order."""
        return tuple(n for n in self.nodes if tensor_id in n.inputs)
