"""The layer graph as the HTML report draws it: plain JSON values, no Keras objects.

`model_view` turns a MaskGraph and its MaskFlow into nodes (layers and
operations, with what each does to a mask), edges (tensors, each with the
padding state SPEC 6b names) and the nested models that hold them. The
reporter adds what only the findings know (node states, repeated blocks);
this module says only what the dataflow says.
"""

from __future__ import annotations

from typing import Any

from maskcheck.static.dataflow import MaskFlow, TensorState
from maskcheck.static.graph import MaskGraph, Node

#: SPEC 6b edge states, and what each means (the page's legend and tooltips use these)
EDGE_STATES = {
    "masked": "padding with a mask that lines up",
    "unmasked": "padding and no mask",
    "mismatched": "a mask that does not line up with the padding",
    "clean": "no padded axis",
}

#: what a node does with a mask, as the page labels it
MASK_ROLES = ("creates", "consumes", "propagates", "drops", "none")


def model_view(graph: MaskGraph, flow: MaskFlow) -> dict[str, Any]:
    """Nodes, edges and nested-model groups of `graph`, in topological order.

    Node ids are ``n<index>``; `layer` is the path joined by ``/`` (the
    `data-layer` hook and the join of a finding's `path`). Group ids are
    ``g:<path of the nested model>``.
    """
    dropped = {e.node.index for e in flow.drops}
    mismatched = _mismatched_tensors(graph, flow)
    nodes, groups = [], {}
    calls: dict[tuple[str, ...], int] = {}
    for node in graph.nodes:
        calls[node.path] = calls.get(node.path, 0) + 1
    numbered: dict[tuple[str, ...], int] = {}
    for node in graph.nodes:
        call = numbered[node.path] = numbered.get(node.path, 0) + 1
        parent = _group_of(node.path, groups)
        nodes.append({
            "id": f"n{node.index}",
            "layer": "/".join(node.path),
            "name": node.name + (f" (call {call})" if calls[node.path] > 1 else ""),
            "class": node.class_name,
            "kind": "input" if node.is_input else "op" if node.is_op else "layer",
            "group": parent,
            "mask": _mask_role(node, graph, flow, dropped),
            "shape": _shape(graph, node.outputs[0]) if node.outputs else "",
        })
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
            edges.append({
                "from": f"n{producer}", "to": f"n{node.index}",
                "state": _edge_state(state, tid in mismatched, explicit and role == "data"),
                "shape": _shape(graph, tid),
                **({"role": role} if role != "data" else {}),
            })
    outputs = [f"n{graph.tensors[t].producer}" for t in graph.outputs
               if graph.tensors[t].producer is not None]
    return {"nodes": nodes, "edges": edges, "outputs": outputs,
            "groups": [groups[k] for k in sorted(groups, key=lambda g: (g.count("/"), g))]}


def _group_of(path: tuple[str, ...], groups: dict[str, dict[str, Any]]) -> str | None:
    """The id of the nested model that holds a node at `path` (registering its chain)."""
    parent = None
    for depth in range(2, len(path)):  # path[0] is the model itself, path[-1] the layer
        gid = "g:" + "/".join(path[:depth])
        if gid not in groups:
            groups[gid] = {"id": gid, "layer": "/".join(path[:depth]), "name": path[depth - 1],
                           "kind": "model", "parent": parent}
        parent = gid
    return parent


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


def _shape(graph: MaskGraph, tid: int) -> str:
    shape = graph.tensors[tid].shape
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
