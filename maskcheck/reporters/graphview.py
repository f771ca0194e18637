"""What the HTML report's graph shows: the picture of a model, node states, repeated blocks.

`model_view` draws a model's picture from what the engines know about its
layer graph (a `GraphSummary`, built by `maskcheck.static.summary`): node ids,
labels (which call of a shared layer), nested models as groups, shapes as
text; `ModelReport.view` is this picture. `prepare` takes a picture and the
model's findings and returns the plain data the page draws: every node with its SPEC 6b state (`leak` for an error or
warning there, `suppressed`-free `suspect` for an info, `ok`) and the indices
of its findings; every group (nested models, and runs of identical blocks)
with whether it starts collapsed. Standard library only.

Decisions (so large models stay usable):
* A *block* is the stretch of layers between two cut nodes (layers every
  later path passes through, such as the Add that closes a residual block).
  Three or more consecutive blocks with the same structure, the same mask
  roles and padding states and no finding become one group; the first block
  stays drawn, the others start collapsed into one node (click to expand).
  Only in graphs of more than `REPEAT_MIN_NODES` nodes: a small model is
  drawn whole.
* A nested model starts expanded unless the graph has more than
  `EXPAND_MAX_NODES` nodes and nothing inside it has a finding.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from maskcheck.finding import Finding, GraphSummary, Severity

REPEAT_MIN_NODES = 40
REPEAT_MIN_BLOCKS = 3
EXPAND_MAX_NODES = 150


def model_view(graph: GraphSummary) -> dict[str, Any]:
    """The picture of one model: nodes, edges, outputs, nested-model groups, profiles.

    Node ids are ``n<index>``; `layer` is the path joined by ``/`` (the
    `data-layer` hook and the join of a finding's `path`); a layer called more
    than once is named ``name (call k)`` at its k-th call. Group ids are
    ``g:<path of the nested model>``. Plain JSON values.
    """
    groups: dict[str, dict[str, Any]] = {}
    calls: dict[tuple[str, ...], int] = {}
    for node in graph.nodes:
        calls[node.path] = calls.get(node.path, 0) + 1
    numbered: dict[tuple[str, ...], int] = {}
    nodes = []
    for node in graph.nodes:
        call = numbered[node.path] = numbered.get(node.path, 0) + 1
        parent = _group_of(node.path, groups)
        nodes.append({
            "id": f"n{node.index}",
            "layer": "/".join(node.path),
            "name": node.name + (f" (call {call})" if calls[node.path] > 1 else ""),
            "class": node.class_name,
            "kind": node.kind,
            "group": parent,
            "mask": node.mask_role,
            "shape": _shape(node.shape) if node.shape is not None else "",
        })
    edges = [{"from": f"n{e.source}", "to": f"n{e.target}", "state": e.padding, "shape": _shape(e.shape),
              **({"role": e.role} if e.role != "data" else {})} for e in graph.edges]
    return {"nodes": nodes, "edges": edges, "outputs": [f"n{i}" for i in graph.outputs],
            "groups": [groups[k] for k in sorted(groups, key=lambda g: (g.count("/"), g))],
            "profiles": dict(graph.profiles)}


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


def _shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def node_state(findings: Iterable[Finding]) -> str:
    """SPEC 6b: `leak` for an error or warning, `suspect` for an info, else `ok`."""
    ranks = [f.severity.rank for f in findings]
    if any(r >= Severity.WARNING.rank for r in ranks):
        return "leak"
    return "suspect" if ranks else "ok"


def prepare(view: Mapping[str, Any], findings: tuple[Finding, ...]) -> dict[str, Any]:
    """The page's graph for one model: nodes with states, edges, groups, profiles."""
    by_layer: dict[str, list[int]] = {}
    for i, f in enumerate(findings):  # a related finding's layer shows its primary
        for layer in dict.fromkeys("/".join(r.path) for r in (f, *f.related)):
            by_layer.setdefault(layer, []).append(i)
    nodes = [{**n, "findings": by_layer.get(n["layer"], []),
              "state": node_state(findings[i] for i in by_layer.get(n["layer"], []))}
             for n in view["nodes"]]
    groups = [{**g, "findings": by_layer.get(g["layer"], [])} for g in view["groups"]]
    for g in groups:
        g["state"] = node_state(findings[i] for i in g["findings"])
    by_id = {g["id"]: g for g in groups}
    holds_finding = {g["id"]: False for g in groups}
    for n in nodes:
        parent = n["group"]
        while parent is not None:
            if n["findings"]:
                holds_finding[parent] = True
            parent = by_id[parent]["parent"]
    for g in groups:
        g["collapsed"] = len(nodes) > EXPAND_MAX_NODES and not holds_finding[g["id"]]
    repeats = _repeats(nodes, view["edges"], groups) if len(nodes) > REPEAT_MIN_NODES else []
    return {"nodes": nodes, "edges": list(view["edges"]), "outputs": list(view.get("outputs", [])),
            "groups": groups + repeats, "profiles": dict(view.get("profiles", {}))}


def _repeats(nodes: list[dict[str, Any]], edges: list[dict[str, Any]],
             groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups for runs of identical blocks (each run but its first block); rewires the
    member nodes' and nested groups' parents to the new group."""
    pos = {n["id"]: i for i, n in enumerate(nodes)}
    inputs: dict[int, list[tuple[int, str]]] = {}
    reach = [0] * len(nodes)
    for e in edges:
        a, b = pos[e["from"]], pos[e["to"]]
        inputs.setdefault(b, []).append((a, e["state"]))
        reach[a] = max(reach[a], b)
    blocks, start, furthest = [], 0, -1
    for i in range(len(nodes)):  # i is a cut node when no edge from before i goes past it
        if furthest <= i and i >= start:
            blocks.append((start, i))
            start = i + 1
        furthest = max(furthest, reach[i])
    if start < len(nodes):
        blocks.append((start, len(nodes) - 1))
    signatures = [_signature(nodes, inputs, a, b) for a, b in blocks]
    by_id = {g["id"]: g for g in groups}
    found, k = [], 0
    while k < len(blocks):
        j = k
        while j + 1 < len(blocks) and signatures[j + 1] == signatures[k] and signatures[k] is not None:
            j += 1
        if j - k + 1 >= REPEAT_MIN_BLOCKS:
            group = _collapse(nodes, by_id, blocks[k + 1][0], blocks[j][1], len(found), j - k + 1)
            if group is not None:
                found.append(group)
                by_id[group["id"]] = group
        k = j + 1
    return found


def _signature(nodes: list[dict[str, Any]], inputs: dict[int, list[tuple[int, str]]],
               a: int, b: int) -> tuple | None:
    """What makes two blocks the same picture; None for a block that must stay drawn."""
    seen_groups: dict[str | None, int] = {}
    parts = []
    for i in range(a, b + 1):
        n = nodes[i]
        if n["findings"] or n["kind"] == "input":
            return None
        group = seen_groups.setdefault(n["group"], len(seen_groups))
        feeds = tuple(sorted((p - a if p >= a else -1 if p == a - 1 else -2, s)
                             for p, s in inputs.get(i, [])))
        parts.append((n["class"], n["kind"], n["mask"], n["shape"], group, feeds))
    return tuple(parts)


def _collapse(nodes: list[dict[str, Any]], by_id: dict[str, dict[str, Any]], a: int, b: int,
              number: int, blocks: int) -> dict[str, Any] | None:
    """The repeat group over nodes a..b, when the nested models it touches lie inside it
    (or all hold it whole); None when it would cut a nested model in two."""
    members = nodes[a:b + 1]
    touched: dict[str, int] = {}
    for n in members:
        g = n["group"]
        while g is not None:
            touched[g] = touched.get(g, 0) + 1
            g = by_id[g]["parent"]
    totals: dict[str, int] = {}
    for n in nodes:
        g = n["group"]
        while g is not None:
            if g in touched:
                totals[g] = totals.get(g, 0) + 1
            g = by_id[g]["parent"]
    around = [g for g in touched if touched[g] < totals[g]]  # groups holding the run
    if any(touched[g] != len(members) for g in around):
        return None  # the run would cut a nested model in two
    parent = max(around, key=lambda g: by_id[g]["layer"].count("/"), default=None)
    gid = f"r:{number}"
    for n in members:
        if n["group"] == parent:
            n["group"] = gid
    for g in touched:
        if g not in around and by_id[g]["parent"] == parent:
            by_id[g]["parent"] = gid
    return {"id": gid, "layer": None, "name": f"{blocks - 1} more identical blocks",
            "kind": "repeat", "parent": parent, "findings": [], "state": "ok",
            "collapsed": True, "layers": len(members)}
