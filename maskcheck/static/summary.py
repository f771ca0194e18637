"""What the static engine read about a model's layer graph, as plain values: `summarize`.

`summarize` turns a MaskGraph and its MaskFlow into a `GraphSummary`: the
nodes (layers and operations, with what each does to a mask) and the tensors
between them (each with the padding state SPEC 6b names), plus the probes'
per-position change profiles. No Keras objects, no presentation: ids, labels,
nested-model groups and what to show are the HTML reporter's to decide
(`maskcheck.reporters.graphview`); this module says only what the dataflow says.
"""

from __future__ import annotations

from typing import Any, Mapping

from maskcheck.finding import GraphEdge, GraphNode, GraphSummary
from maskcheck.static.dataflow import MaskFlow, TensorState
from maskcheck.static.graph import MaskGraph, Node

#: SPEC 6b edge states (`GraphEdge.padding`), and what each means
EDGE_STATES = {
    "masked": "padding with a mask that lines up",
    "unmasked": "padding and no mask",
    "mismatched": "a mask that does not line up with the padding",
    "clean": "no padded axis",
}

#: what a node does with a mask (`GraphNode.mask_role`)
MASK_ROLES = ("creates", "consumes", "propagates", "drops", "none")

def summarize(graph: MaskGraph, flow: MaskFlow,
              profiles: Mapping[str, Any] | None = None) -> GraphSummary:
    """Nodes and edges of `graph` in topological order, with `profiles` (by layer path).

    One edge per distinct tensor a node reads (data inputs first, then masks passed
    explicitly, each under its keyword as `role`).
    """
    dropped = {e.node.index for e in flow.drops}
    mismatched = _mismatched_tensors(graph, flow)
    nodes = tuple(
        GraphNode(index=node.index, path=tuple(node.path), name=node.name, class_name=node.class_name,
                  kind="input" if node.is_input else "op" if node.is_op else "layer",
                  mask_role=_mask_role(node, graph, flow, dropped),
                  shape=tuple(graph.tensors[node.outputs[0]].shape) if node.outputs else None)
        for node in graph.nodes)
    edges = []
    for node in graph.nodes:
        seen: set[tuple[int, int]] = set()
        feeds = [(t, "data") for t in node.inputs] + [(t, key) for key, t in node.mask_inputs]
        # a mask passed explicitly (padding_mask=...) masks the padded data it comes with
        explicit = any(flow.states.get(t, TensorState()).is_mask
                       or flow.states.get(t, TensorState()).padded for _, t in node.mask_inputs)
        for tid, role in feeds:
            producer = graph.tensors[tid].producer
            if producer is None or (producer, tid) in seen:
                continue
            seen.add((producer, tid))
            state = flow.states.get(tid, TensorState())
            edges.append(GraphEdge(
                source=producer, target=node.index,
                padding=_edge_state(state, tid in mismatched, explicit and role == "data"),
                shape=tuple(graph.tensors[tid].shape), role=role))
    outputs = tuple(graph.tensors[t].producer for t in graph.outputs
                    if graph.tensors[t].producer is not None)
    return GraphSummary(nodes=nodes, edges=tuple(edges), outputs=outputs, profiles=profiles or {})


def _mask_role(node: Node, graph: MaskGraph, flow: MaskFlow, dropped: set[int]) -> str:
    """creates / consumes / propagates / drops / none, by the masks on its tensors."""
    if node.index in dropped:
        return "drops"
    arrived = {s.mask.source for t in node.inputs if (s := flow.states.get(t)) and s.mask}
    explicit = bool(node.mask_inputs)
    left = {s.mask.source for t in node.outputs if (s := flow.states.get(t)) and s.mask}
    if left - arrived:
        return "creates"
    if left:
        return "propagates"
    if arrived or explicit:
        return "consumes"
    return "none"


def _edge_state(state: TensorState, mismatched: bool, explicit_mask: bool = False) -> str:
    if not state.padded:
        return "clean"
    if state.mask is None:
        return "masked" if state.is_mask or explicit_mask else "unmasked"
    return "mismatched" if mismatched else "masked"


def _mismatched_tensors(graph: MaskGraph, flow: MaskFlow) -> set[int]:
    """Tensors carrying a mask that does not line up: the outputs of a layer the dataflow
    flagged (its masked inputs, when the mask is wrong for the layer's input or the layer
    consumed it), and every tensor the same mask reaches after it unchanged."""
    at = {e.node.index: e.at_input for e in flow.mismatches}
    bad: set[int] = set()
    for node in graph.nodes:
        outs = [t for t in node.outputs if (s := flow.states.get(t)) and s.mask is not None]
        if node.index in at:
            if outs and not at[node.index]:
                bad.update(outs)
            else:
                bad.update(t for t in node.inputs if (s := flow.states.get(t)) and s.mask is not None)
            continue
        carried = {flow.states[t].mask.source for t in node.inputs if t in bad}
        bad.update(t for t in outs if flow.states[t].mask.source in carried)
    return bad
