"""Which remedy applies to a finding: what the graph says about the mask upstream of a layer.

A layer that needs a mask and gets none can have three different causes, and each has
its own fix: a mask is made upstream but lost on the way (keep it flowing), an explicit
mask input exists but is never passed (pass it), or no mask exists at all (create one:
`Embedding(mask_zero=True)` for token ids, `Masking(mask_value=...)` for padded values).
Rules read this module to word their `fix`; it holds no rule of its own (the registry
reads only ``mcNNN_*`` modules) and never imports Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskcheck.static.semantics import lookup

#: classes whose layers turn token ids into vectors and can make a mask (mask_zero)
_EMBEDDINGS = ("Embedding", "ReversibleEmbedding", "TokenAndPositionEmbedding")
#: Keras's own classes whose semantics come from user code they wrap, not a table row
_KERAS_UNTABLED = frozenset({"Lambda", "Functional", "Sequential", "Model"})
#: Keras recurrent layers (and their wrappers): they apply a mask that reaches them
RNNS = frozenset({"LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D"})


@dataclass(frozen=True)
class MaskCause:
    """Why no mask reaches a layer.

    `kind`: "dropped" (a mask made upstream is dropped at `where`), "not_created" (a
    layer configured to make one attaches none: `where`), "input" (the explicit mask
    input `where` is never passed to it), "tokens" (token ids reach it through the
    Embedding `where`, which has no mask_zero) or "values" (padded values from input
    `where`, and nothing makes a mask)."""

    kind: str
    where: str
    source: str = ""

    @property
    def exists(self) -> bool:
        """A mask exists somewhere upstream (made, or given as an input)."""
        return self.kind in ("dropped", "input")


def producer(graph: Any, tid: int) -> Any:
    """The node that computes tensor `tid`, or None for a model input's tensor."""
    index = graph.tensors[tid].producer
    return None if index is None else graph.nodes[index]


def ancestors(graph: Any, node: Any) -> list[Any]:
    """Every node upstream of `node`'s data inputs, nearest first."""
    seen: dict[int, Any] = {}
    frontier = list(node.inputs)
    while frontier:
        tid = frontier.pop(0)
        up = producer(graph, tid)
        if up is None or up.index in seen:
            continue
        seen[up.index] = up
        frontier.extend(up.inputs)
    return sorted(seen.values(), key=lambda n: -n.index)


def is_custom(node: Any) -> bool:
    """A layer class maskcheck's tables do not know by its own name: the user's own class
    (a subclass of a Keras layer keeps that layer's semantics, but is still the user's)."""
    if node.is_op or node.is_input or node.class_name in _KERAS_UNTABLED:
        return False
    return not lookup(node.class_name).known


def mask_cause(graph: Any, flow: Any, node: Any) -> MaskCause:
    """Why no mask reaches `node`'s padded input, from the dataflow: the nearest drop of a
    mask upstream, an explicit mask input nobody passes, else no mask at all."""
    ups = ancestors(graph, node)
    indices = {n.index for n in ups}
    drops = [e for e in flow.drops if e.node.index in indices]
    if drops:
        last = max(drops, key=lambda e: e.node.index)
        kind = "not_created" if last.not_created else "dropped"
        return MaskCause(kind, last.node.name, last.mask_source or "")
    for up in ups:  # a mask made upstream that stops on the way (no drop recorded)
        for tid in up.outputs:
            state = flow.states.get(tid)
            if state is not None and state.mask is not None and not state.is_mask:
                return MaskCause("dropped", up.name, state.mask.source)
    for tid in graph.inputs:
        state = flow.states.get(tid)
        if state is not None and state.is_mask:
            return MaskCause("input", producer_name(graph, tid))
    for up in ups:
        if _is_embedding(up) and not up.config.get("mask_zero"):
            return MaskCause("tokens", up.name)
    origin = next((p.origin or p.source for tid in node.inputs
                   for p in getattr(flow.states.get(tid), "padded", ())), "")
    return MaskCause("values", origin)


def producer_name(graph: Any, tid: int) -> str:
    """The name of the input layer (or node) that makes tensor `tid`."""
    up = producer(graph, tid)
    if up is not None:
        return up.name
    for node in graph.nodes:
        if tid in node.outputs:
            return node.name
    return "the mask input"


def _is_embedding(node: Any) -> bool:
    return not node.is_op and (node.class_name in _EMBEDDINGS
                               or any(b in _EMBEDDINGS for b in node.bases))


def supply(cause: MaskCause, layer: str) -> str:
    """How to get a mask to `layer`, as an imperative clause for the cause at hand."""
    if cause.kind == "dropped":
        return (f"the mask from {cause.source!r} is dropped at {cause.where!r} before "
                f"{layer!r}: keep it flowing past {cause.where!r} (see MC101 there), or pass "
                f"it to {layer!r} explicitly (mask=...)")
    if cause.kind == "not_created":
        return (f"{cause.where!r} attaches no mask although it has mask_zero=True: pass the "
                f"padding mask to {layer!r} explicitly (mask=... / padding_mask=...)")
    if cause.kind == "input":
        return (f"pass the mask input {cause.where!r} to {layer!r} (mask=..., or "
                f"padding_mask= / attention_mask= where the layer takes one)")
    return create(cause)


def create(cause: MaskCause) -> str:
    """How to create the mask that does not exist anywhere upstream."""
    if cause.kind == "tokens":
        return (f"give the Embedding {cause.where!r} mask_zero=True, so that a mask exists at "
                f"all (token id 0 then marks padding), or feed a padding_mask input and pass it "
                f"on (mask=...)")
    where = f"input {cause.where!r}" if cause.where else "the padded input"
    return (f"put keras.layers.Masking(mask_value=<your pad value, e.g. 0.0>) right after "
            f"{where}, so that a mask exists at all, or feed a padding_mask input and pass it "
            f"on (mask=...)")


def node_at(graph: Any, finding: Any) -> Any:
    """The graph node a finding names: by path, else the node whose path is the longest
    prefix of the finding's (a Bidirectional's forward layer names its wrapper), else by
    layer name; None when the graph has no such layer."""
    path = tuple(finding.path or ())
    best = None
    for node in graph.nodes:
        if node.path == path:
            return node
        if path and len(node.path) < len(path) and path[:len(node.path)] == node.path and (
                best is None or len(node.path) > len(best.path)):
            best = node
    if best is not None and not best.is_input:
        return best
    return next((n for n in graph.nodes if n.name == finding.layer), None)


def received_mask(flow: Any, node: Any) -> str | None:
    """The source of the mask that reaches `node` with its data, or None."""
    for tid in node.inputs:
        state = flow.states.get(tid)
        if state is not None and state.mask is not None and not state.is_mask:
            return state.mask.source
    return None


def output_is_padded(graph: Any, flow: Any, output: str | None) -> bool | None:
    """Whether the model output named `output` keeps a padded axis (a per-step output);
    None when the graph has no output of that name."""
    for index, tid in enumerate(graph.outputs):
        names = {graph.output_names[index] if index < len(graph.output_names) else ""}
        up = producer(graph, tid)
        if up is not None:
            names.add(up.name)
        if output in names:
            state = flow.states.get(tid)
            return bool(state is not None and state.is_padded)
    return None


def applies_masks(node: Any) -> bool:
    """The layer applies a mask that reaches it (an RNN, attention, masked pooling, ...)."""
    from maskcheck.static.semantics import semantics_for

    if node.is_op or node.is_input:
        return False
    return semantics_for(node.class_name, node.config, bases=node.bases).uses_mask


def is_bidirectional(node: Any) -> bool:
    return node.class_name == "Bidirectional" or "Bidirectional" in node.bases


def give_mask(graph: Any, flow: Any, node: Any) -> str:
    """How to make `node` (where a probe measured a leak) skip padding, by cause: apply the
    mask that reaches it, get one to it (keep it flowing, pass the mask input, create one),
    or, for a layer that cannot apply a mask, keep padding out of its input."""
    name = node.name
    arrived = received_mask(flow, node)
    if arrived is not None and is_custom(node):
        return (f"{node.class_name} ignores the mask from {arrived!r} that reaches it: give "
                f"its call a `mask` argument and apply it")
    if arrived is not None and applies_masks(node):
        return (f"{name!r} does not apply the mask from {arrived!r} that reaches it: pass the "
                f"mask explicitly (mask=...), or use a mask-aware layer there")
    if applies_masks(node):
        text = supply(mask_cause(graph, flow, node), name)
        if is_bidirectional(node):
            text += (". Without a mask its backward direction starts inside the padding, so "
                     "it leaks whichever side the sequences are padded on")
        return text
    return (f"{name!r} cannot apply a mask: multiply its input by the mask and read only "
            f"valid steps after it (see the static finding at {name!r} for what to change)")
