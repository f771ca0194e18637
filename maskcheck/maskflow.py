"""Dataflow of padded axes and masks through a MaskGraph.

For every tensor it tracks which axes hold padding (and from which side),
whether a mask for them travels with it, and whether its valid positions
already depend on padding values ("tainted"). The analysis runs once per
graph in topological order and records events that the rules turn into
findings, so each rule stays a small filter over the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maskcheck.graph import MaskGraph, Node
from maskcheck.semantics import CAUSAL, MIXING, POINTWISE, REDUCING, semantics_for

#: Padding sides. A None-length input axis can be padded either way.
POST, PRE, BOTH = "post", "pre", "both"


@dataclass(frozen=True, slots=True)
class PaddedAxis:
    axis: int
    side: str
    source: str  # the input or mask generator the padding comes from


@dataclass(frozen=True, slots=True)
class TensorState:
    padded: tuple[PaddedAxis, ...] = ()
    mask_source: str | None = None  # the layer that generated the attached mask
    tainted: bool = False

    @property
    def is_padded(self) -> bool:
        return bool(self.padded)


CLEAN = TensorState()


@dataclass(frozen=True, slots=True)
class MixingEvent:
    """A layer mixed values along a padded axis with no usable mask."""

    node: Node
    axis: PaddedAxis
    mask_arrived: str | None  # mask generator whose mask reached the layer unused
    causal: bool = False  # the layer only looks backwards along the axis


@dataclass(frozen=True, slots=True)
class DropEvent:
    """A layer received a mask and neither consumed nor propagated it."""

    node: Node
    mask_source: str
    axis: PaddedAxis


@dataclass(frozen=True)
class MaskFlow:
    states: dict[int, TensorState] = field(default_factory=dict)
    mixing: tuple[MixingEvent, ...] = ()
    drops: tuple[DropEvent, ...] = ()
    #: tensor id -> the nodes that read it, in topological order
    consumers: dict[int, tuple[Node, ...]] = field(default_factory=dict)


def _input_state(graph: MaskGraph, node: Node) -> TensorState:
    tensor = graph.tensors[node.outputs[0]]
    if "bool" in tensor.dtype:
        return CLEAN
    spatial = tensor.shape[1:]
    if len(tensor.shape) == 4:  # images (B, H, W, C): both spatial axes may be padded
        axes = [i + 1 for i, size in enumerate(spatial[:2]) if size is None]
    else:
        axes = [1] if spatial and spatial[0] is None and len(tensor.shape) >= 2 else []
    return TensorState(tuple(PaddedAxis(a, BOTH, node.name) for a in axes))


def _is_data(graph: MaskGraph, tid: int) -> bool:
    return "bool" not in graph.tensors[tid].dtype


def analyze(graph: MaskGraph) -> MaskFlow:
    """Run the padded-axis dataflow over `graph` in topological order."""
    states: dict[int, TensorState] = {}
    mixing: list[MixingEvent] = []
    drops: list[DropEvent] = []
    for node in graph.nodes:
        if node.is_input:
            states[node.outputs[0]] = _input_state(graph, node)
            continue
        ins = [states.get(t, CLEAN) for t in node.inputs if _is_data(graph, t)]
        first = ins[0] if ins else CLEAN
        explicit_mask = any(not _is_data(graph, t) for t in node.inputs) and node.takes_mask
        sem = semantics_for(node.class_name, node.config)
        padded = tuple({a.axis: a for s in ins for a in s.padded}.values())
        tainted = any(s.tainted for s in ins)
        mask = first.mask_source
        consumes = node.takes_mask and (mask is not None or explicit_mask)

        if sem.along_padded in (MIXING, CAUSAL, REDUCING) and padded and not tainted and not consumes:
            for axis in padded:
                if sem.along_padded == CAUSAL and axis.side == POST:
                    continue
                mixing.append(MixingEvent(node, axis, mask, sem.along_padded == CAUSAL))
                tainted = True
                break

        out_mask = _output_mask(node, sem.generates, mask)
        if mask is not None and out_mask is None and not consumes and padded:
            drops.append(DropEvent(node, mask, padded[0]))

        out_rank = len(graph.tensors[node.outputs[0]].shape) if node.outputs else 0
        if sem.generates:
            source = PaddedAxis(1, padded[0].side if padded else BOTH, node.name)
            out_padded: tuple[PaddedAxis, ...] = (source,)
            out_mask = node.name
        elif sem.along_padded == REDUCING:
            out_padded = ()
        else:
            out_padded = tuple(a for a in padded if a.axis < out_rank)
        state = TensorState(out_padded, out_mask if out_padded else None, tainted)
        for tid in node.outputs:
            states[tid] = state if _is_data(graph, tid) else CLEAN
    consumers: dict[int, list[Node]] = {}
    for n in graph.nodes:
        for t in n.inputs:
            consumers.setdefault(t, []).append(n)
    return MaskFlow(states, tuple(mixing), tuple(drops),
                    {t: tuple(ns) for t, ns in consumers.items()})


def _output_mask(node: Node, generates: bool, mask: str | None) -> str | None:
    """The mask source attached to the node's outputs."""
    if generates:
        return node.name
    if mask is None:
        return None
    if node.keras_output_masks is not None:  # what Keras itself attached
        return mask if any(node.keras_output_masks) else None
    return mask if node.supports_masking else None


def mask_needed_after(graph: MaskGraph, flow: MaskFlow, node: Node) -> bool:
    """Whether padding leaving `node` later meets mixing, an output, or a loss.

    Follows the padded tensors downstream; a layer that generates a fresh
    mask ends the search along its branch.
    """
    frontier = [t for t in node.outputs if flow.states.get(t, CLEAN).is_padded]
    if node.index in {e.node.index for e in flow.mixing}:
        return True
    seen: set[int] = set()
    while frontier:
        tid = frontier.pop()
        if tid in seen:
            continue
        seen.add(tid)
        if tid in graph.outputs:
            return True
        for nxt in flow.consumers.get(tid, ()):
            sem = semantics_for(nxt.class_name, nxt.config)
            if sem.generates:
                continue
            if sem.along_padded != POINTWISE:
                return True
            frontier.extend(t for t in nxt.outputs if flow.states.get(t, CLEAN).is_padded)
    return False

