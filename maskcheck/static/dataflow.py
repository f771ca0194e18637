"""Dataflow of padded axes and masks through a MaskGraph.

For every tensor it tracks which axes hold padding (and from which side),
what the padded positions hold on each side (the padding's own values, zeros,
or values computed from valid steps only: only the first leaks padded values),
whether a mask for them travels with it, and whether its valid positions
already depend on padding values ("tainted"). The analysis runs once per
graph in topological order (plus one reverse pass for "is a mask needed
later"), in time linear in the size of the graph, and records events that
the rules turn into findings, so each rule stays a small filter over the
same facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from maskcheck.static import collector_paused
from maskcheck.static.graph import MaskGraph, Node
from maskcheck.static.ops import AxisEffect
from maskcheck.static.semantics import (ANTICAUSAL, CAUSAL, MIXING, POINTWISE, REDUCING,
                                        LayerSemantics,
                                        acted_axes, effect_on_axis, semantics_for)

_READ_KINDS = {"pointwise": POINTWISE, "causal": CAUSAL, "anticausal": ANTICAUSAL,
               "mixing": MIXING}

#: Padding sides. A None-length input axis can be padded either way.
POST, PRE, BOTH = "post", "pre", "both"

_SWAPPED = {POST: PRE, PRE: POST, BOTH: BOTH}

#: What a padded region holds. PADDING: the padding's own values (what a probe perturbs
#: with the mask held fixed); ZEROS: exact zeros (the mask multiplied in); VALID: values
#: computed from valid steps and weights only (a masked RNN's carried state, a bias).
#: REPEAT: the last valid step's values repeated (what a masked RNN carries over trailing
#: padding), a kind of VALID that a max or min over a window reads as nothing new.
#: Only PADDING leaks padded values into a layer that mixes it in; the others leak at
#: most the amount of padding, which is tied to each sample's own length when the axis
#: has a fixed length.
PADDING, ZEROS, VALID, REPEAT = "padding", "zeros", "valid", "repeat"
#: layers and operations that take a max or min over a window or a whole axis: values
#: repeated from a step inside the window change nothing
_MAX_LIKE = frozenset({"GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
                       "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "Max", "Min", "Amax",
                       "Amin"})
#: mixing that reads exact zeros as nothing at all: a convolution reads them as its own
#: zero padding, a running or plain sum adds nothing
_ZERO_NEUTRAL_OPS = frozenset({"Cumsum", "Sum"})
_MERGES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
#: convolutions (padding "same" or "causal") for which zeroed padding is no padding at all
_CONVOLUTIONS = frozenset({"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
                           "SeparableConv1D", "SeparableConv2D"})
#: identities at inference: zeroed padding stays zero
_KEEPS_ZERO = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                         "GaussianDropout", "GaussianNoise", "AlphaDropout",
                         "ActivityRegularization", "Identity"})

#: SPEC section 4: integer or boolean inputs with these names are explicit masks.
_MASK_INPUT = re.compile(r"^(padding_mask|attention_mask|mask|.+_mask)$")


@dataclass(frozen=True, slots=True)
class PaddedAxis:
    axis: int
    side: str
    source: str  # the input or mask generator the padding comes from
    origin: str = ""  # the model input (or generator on a fixed input) it traces back to
    #: why this axis is taken to hold padding when nothing in the model or data says so
    #: (SPEC 4 item 6); empty when the model, the data or the user says it
    assumed: str = ""
    #: what the padded positions hold before the valid steps (pre-padding) and after
    #: them (post-padding): PADDING, ZEROS, VALID or REPEAT (see PADDING above)
    pre_holds: str = PADDING
    post_holds: str = PADDING
    #: the steps were moved (reversed) with no mask to follow them: the finding this
    #: would be (an id in `_Analysis.pending`), reported only if the steps are not moved
    #: back (a second reversal) before something reads them out of place; 0 when aligned
    pending: int = 0

    @property
    def sides(self) -> tuple[str, ...]:
        return (POST, PRE) if self.side == BOTH else (self.side,)

    def holds(self, side: str) -> str:
        """What the padded positions on `side` (PRE: leading, POST: trailing) hold."""
        return self.pre_holds if side == PRE else self.post_holds

    def contents(self, sides: tuple[str, ...] = (PRE, POST)) -> frozenset[str]:
        """What this axis's padding holds on those of `sides` it is padded on."""
        return frozenset(self.holds(s) for s in self.sides if s in sides)

    @property
    def zero(self) -> bool:
        """The padded positions hold exact zeros on every side this axis is padded on."""
        return self.contents() == {ZEROS}

    def holding(self, pre: str, post: str) -> "PaddedAxis":
        return replace(self, pre_holds=pre, post_holds=post)

    def reversed(self) -> "PaddedAxis":
        """The axis read backwards: the padding side and what each end holds swap."""
        return replace(self, side=_SWAPPED[self.side], pre_holds=self.post_holds,
                       post_holds=self.pre_holds)


@dataclass(frozen=True, slots=True)
class MaskInfo:
    source: str  # the layer (or explicit mask input) that created the mask
    axes: tuple[int, ...] = (1,)  # the data axes the mask covers
    also: tuple[str, ...] = ()  # other generators merged into it (Add of two masked inputs)
    #: attached at run time only (keras-hub embeddings): the symbolic graph shows no
    #: mask after it, so what Keras attached symbolically says nothing about it
    runtime: bool = False

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source, *self.also)


@dataclass(frozen=True, slots=True)
class TensorState:
    padded: tuple[PaddedAxis, ...] = ()
    mask: MaskInfo | None = None
    tainted: bool = False
    #: the tensor is itself a mask (boolean, or an explicit mask input)
    is_mask: bool = False

    @property
    def is_padded(self) -> bool:
        return bool(self.padded)

    @property
    def mask_source(self) -> str | None:
        return self.mask.source if self.mask else None


CLEAN = TensorState()


@dataclass(frozen=True, slots=True)
class MixingEvent:
    """A layer mixed values along a padded axis with no usable mask."""

    node: Node
    axis: PaddedAxis
    mask_arrived: str | None  # mask generator whose mask reached the layer unused
    causal: bool = False  # the layer only looks backwards along the axis
    #: the padded positions it reads hold no padding values (zeros, a masked RNN's carried
    #: state): only the amount of padding leaks, along an axis whose length varies
    carried: bool = False
    axes: tuple[int, ...] = ()  # every padded axis it mixes along (images: 1 and 2)


@dataclass(frozen=True, slots=True)
class DropEvent:
    """A layer received a mask and neither consumed nor propagated it (or, with
    `not_created`, was configured to create one and Keras attached none)."""

    node: Node
    mask_source: str
    axis: PaddedAxis
    not_created: bool = False


@dataclass(frozen=True, slots=True)
class PropagationEvent:
    """A layer passed a mask on unchanged although it mixes along the padded axis."""

    node: Node
    mask_source: str
    axis: PaddedAxis
    reason: str


@dataclass(frozen=True, slots=True)
class StatsEvent:
    """A layer computes statistics over padded positions (batch or per sample)."""

    node: Node
    axis: PaddedAxis
    scope: str  # "batch" or "sample"
    mask_arrived: str | None


@dataclass(frozen=True, slots=True)
class MismatchEvent:
    """A mask does not line up with the padded axes of its tensor."""

    node: Node
    mask_source: str
    detail: str
    #: the mask is wrong for this layer's input (a broadcast against the wrong axes),
    #: not a wrong mask on its output
    at_input: bool = False


@dataclass(frozen=True, slots=True)
class AssumedEvent:
    """An unknown layer class received padding; its semantics were assumed."""

    node: Node
    axis: PaddedAxis
    assumption: str
    mask_arrived: str | None = None  # the mask that reached the layer, if any
    passes_mask: bool = False  # the layer hands that mask on (supports_masking)


@dataclass(frozen=True, slots=True)
class AbsoluteEvent:
    """A layer adds positions counted from the start of a padded axis that may be pre-padded."""

    node: Node
    axis: PaddedAxis


@dataclass(frozen=True, slots=True)
class MeanEvent:
    """A layer divides by the sum of a mask that is all zeros for a fully padded sample."""

    node: Node
    axis: PaddedAxis
    mask_source: str


@dataclass(frozen=True)
class MaskFlow:
    states: dict[int, TensorState] = field(default_factory=dict)
    mixing: tuple[MixingEvent, ...] = ()
    drops: tuple[DropEvent, ...] = ()
    propagations: tuple[PropagationEvent, ...] = ()
    stats: tuple[StatsEvent, ...] = ()
    mismatches: tuple[MismatchEvent, ...] = ()
    assumed: tuple[AssumedEvent, ...] = ()
    #: mask sources that some layer consumed or that reach a model output
    used_masks: frozenset[str] = frozenset()
    #: tensors whose padding some later layer, output, loss or metric cares about
    needs_mask: frozenset[int] = frozenset()
    #: nodes that themselves need a mask for the padding they receive
    needs_self: frozenset[int] = frozenset()
    #: tensor id -> the nodes that read it, in topological order
    consumers: dict[int, tuple[Node, ...]] = field(default_factory=dict)
    absolute: tuple[AbsoluteEvent, ...] = ()
    means: tuple[MeanEvent, ...] = ()


def is_mask_input(name: str, dtype: str) -> bool:
    """SPEC 4: an integer or boolean input named padding_mask, mask, <name>_mask, ..."""
    return bool(_MASK_INPUT.match(name)) and ("int" in dtype or "bool" in dtype)


#: What SPEC 4 item 6 assumes of a token input nothing else declares padded.
TOKEN_CONVENTION = ("token ids padded with 0 on either side (the pad_sequences / "
                    "TextVectorization convention)")

#: Layers that map ids to ids: an input reaching an Embedding through them holds tokens.
_ID_LAYERS = ("IntegerLookup", "StringLookup", "Hashing", "IndexLookup")


def token_inputs(graph: MaskGraph) -> dict[str, tuple[int, float]]:
    """Inputs whose values index an Embedding (directly, through lookup layers and ops,
    or inside a custom layer): input name -> (vocabulary size, raw pad value).

    The raw pad value is 0, or the `mask_token` of an IntegerLookup on the way (the raw
    id that the lookup maps to index 0)."""
    found: dict[str, tuple[int, float]] = {}
    for node in graph.nodes:
        if not node.is_input:
            continue
        pad, frontier, seen = 0.0, [node.outputs[0]], set()
        while frontier:
            tid = frontier.pop(0)
            for nxt in graph.consumers(tid):
                if nxt.index in seen or tid not in nxt.inputs:
                    continue
                seen.add(nxt.index)
                vocab = nxt.config.get("embeds")
                if isinstance(vocab, int):
                    found.setdefault(node.name, (vocab, pad))
                    continue
                id_layer = nxt.class_name in _ID_LAYERS or any(b in _ID_LAYERS for b in nxt.bases)
                if id_layer and isinstance(nxt.config.get("mask_token"), (int, float)):
                    pad = float(nxt.config["mask_token"])
                if nxt.is_op or id_layer:
                    frontier.extend(nxt.outputs)
    return found


def _input_state(graph: MaskGraph, node: Node, side: str, declared_masks: frozenset[str],
                 declared_axes: tuple[int, ...], assume: bool = True,
                 tokens: frozenset[str] = frozenset()) -> TensorState:
    tensor = graph.tensors[node.outputs[0]]
    if (tensor.is_boolean_like or node.name in declared_masks
            or is_mask_input(node.name, tensor.dtype)):
        return TensorState(is_mask=True, mask=MaskInfo(node.name))
    spatial = tensor.shape[1:]
    if not assume:  # --padded none: only what the user declares by hand
        axes = []
    elif len(tensor.shape) == 4:  # images (B, H, W, C): both spatial axes may be padded
        axes = [i + 1 for i, size in enumerate(spatial[:2]) if size is None]
    else:
        axes = [1] if spatial and spatial[0] is None else []
    axes = sorted(set(axes) | {a for a in declared_axes if 0 < a < len(tensor.shape)})
    if not axes and assume and node.name in tokens and len(tensor.shape) >= 2:
        return TensorState((PaddedAxis(1, side, node.name, node.name, TOKEN_CONVENTION),))
    return TensorState(tuple(PaddedAxis(a, side, node.name, node.name) for a in axes))


@collector_paused()
def analyze(graph: MaskGraph, *, side: str = BOTH,
            mask_inputs: tuple[tuple[str, str], ...] = (),
            padded: tuple[tuple[str, int], ...] = (), assume: bool = True) -> MaskFlow:
    """Run the padded-axis dataflow over `graph` in topological order.

    Args:
        graph: the model.
        side: how variable-length inputs are padded (``post``, ``pre`` or
            ``both`` when unknown); causal layers are safe under ``post``.
        mask_inputs: ``(input, mask input)`` pairs declared by the user
            (``--mask-input``): the mask input is a mask whatever its name.
        padded: ``(input, axis)`` pairs declared by the user (``--padded``).
        assume: apply SPEC 4 items 4 and 6 (None-length axes, token inputs padded
            with 0); False for ``--padded none``.
    """
    a = _Analysis(graph, side)
    a.assume = assume
    a.tokens = frozenset(token_inputs(graph)) if assume else frozenset()
    a.declared_masks = frozenset(m for _, m in mask_inputs)
    a.declared_axes = {}
    for name, axis in padded:
        a.declared_axes.setdefault(name, []).append(int(axis))
    a.mask_lengths = _mask_input_lengths(graph, a.declared_masks)
    for node in graph.nodes:
        a.visit(node)
    return a.finish()


def _mask_input_lengths(graph: MaskGraph, declared: frozenset[str]) -> dict[int, str]:
    """Fixed lengths of explicit mask inputs (SPEC 4 item 2) -> the mask input's name: a
    data input of that length along axis 1 is padded where the mask says."""
    found: dict[int, str] = {}
    for node in graph.nodes:
        if not node.is_input:
            continue
        tensor = graph.tensors[node.outputs[0]]
        if tensor.rank == 2 and tensor.shape[1] is not None and (
                node.name in declared or is_mask_input(node.name, tensor.dtype)):
            found.setdefault(tensor.shape[1], node.name)
    return found


@dataclass(slots=True)
class _Visit:
    """What `_Analysis.visit` has established about one node so far, step by step."""

    node: Node
    sem: LayerSemantics
    ins: list[TensorState]
    #: (tensor id, state) of the inputs that are not masks
    data: list[tuple[int, TensorState]]
    #: the inputs that are masks (applied by hand: ``x * cast(mask)``)
    mask_like: list[TensorState]
    in_rank: int
    multiply: bool
    #: the padded axes that arrive, merged over the data inputs
    padded: tuple[PaddedAxis, ...]
    tainted: bool
    #: the mask Keras hands over with the inputs
    arrived: MaskInfo | None
    #: the node takes explicit mask inputs
    explicit: bool
    #: the node applies a mask (explicit, or the one that arrives)
    consumes: bool
    #: the op-level reader's verdict (None where it did not read the node or failed)
    reading: Any
    #: what the node does along each padded axis (POINTWISE, CAUSAL, ...)
    effects: dict[int, str] = field(default_factory=dict)
    #: axes whose steps an earlier layer moved out of place and this node moves back
    realigned: set[int] = field(default_factory=set)
    #: output axis -> held finding, for steps still out of place after this node
    carried_pending: dict[int, int] = field(default_factory=dict)
    #: the node reads steps an earlier culprit moved out of place
    out_of_place: bool = False
    #: a recurrent layer that carries its state over padded steps when it applies its mask
    rnn_like: bool = False
    #: padded axes through which padding changes valid outputs (`_leaks`) ...
    mixes: list[PaddedAxis] = field(default_factory=list)
    #: ... of which only the amount of padding leaks through these
    amount_only: set[int] = field(default_factory=set)
    #: padded axes moved with no mask to follow them
    moves: list[PaddedAxis] = field(default_factory=list)
    #: each padded axis's length in the input that holds it (None: it varies)
    lengths: dict[int, int | None] = field(default_factory=dict)
    #: the axes explicit mask inputs cover
    explicit_axes: set[int] = field(default_factory=set)
    out_mask: MaskInfo | None = None
    #: the padded axes the mask the node applies protects
    covered: set[int] = field(default_factory=set)
    #: the node itself makes its outputs depend on padding
    node_tainted: bool = False
    #: output axis -> finding held until the steps it moved are read out of place
    parked: dict[int, int] = field(default_factory=dict)


class _Analysis:
    def __init__(self, graph: MaskGraph, side: str) -> None:
        self.graph = graph
        self.side = side
        self.states: dict[int, TensorState] = {}
        self.mixing: list[MixingEvent] = []
        self.drops: list[DropEvent] = []
        self.propagations: list[PropagationEvent] = []
        self.stats: list[StatsEvent] = []
        self.mismatches: list[MismatchEvent] = []
        self.assumed: list[AssumedEvent] = []
        self.absolute: list[AbsoluteEvent] = []
        self.means: list[MeanEvent] = []
        self.read: dict[int, object] = {}  # padded axis -> ops.AxisEffect, for the node visited
        self.used: set[str] = set()
        self.needs_self: set[int] = set()
        self.generates: set[int] = set()
        self.declared_masks: frozenset[str] = frozenset()
        self.declared_axes: dict[str, list[int]] = {}
        self.assume = True
        self.tokens: frozenset[str] = frozenset()
        self.mask_lengths: dict[int, str] = {}
        #: findings waiting on steps moved out of place (PaddedAxis.pending)
        self.pending: dict[int, tuple[str, object]] = {}

    def rank(self, tid: int) -> int:
        return len(self.graph.tensors[tid].shape)

    def visit(self, node: Node) -> None:
        """One node, in topological order: what arrives, what the node does to each padded
        axis, the events that follow, and the states of its outputs."""
        if node.is_input:
            self._visit_input(node)
            return
        v = self._arrive(node)
        self._note_mask_use(v)
        self._apply_reading(v)
        v.effects = {p.axis: (_READ_KINDS[self.read[p.axis].kind] if p.axis in self.read
                              else _effect(node, v.sem, p.axis, v.in_rank) if v.sem.known
                              else POINTWISE)
                     for p in v.padded}
        self._settle_moved_steps(v)
        self._find_leaks(v)
        self._note_needs_mask(v)
        v.out_mask = self._output_mask(node, v.sem, v.arrived, v.in_rank)
        v.covered = self._covered(v)
        self._report_assumptions(v)
        self._report_leaks(v)
        self._report_stats(v)
        self._report_drops(v)
        out_padded = self._outputs_padded(v)
        self._check_mismatch(node, v.sem, v.data, v.arrived, v.out_mask, v.consumes, v.in_rank,
                             v.padded, out_padded)
        self._write_outputs(v, out_padded)

    def _visit_input(self, node: Node) -> None:
        """A model input: padded where SPEC 4 assumes or the user declares, or a mask."""
        graph = self.graph
        for tid in node.outputs:
            state = _input_state(graph, node, self.side, self.declared_masks,
                                 tuple(self.declared_axes.get(node.name, ())),
                                 self.assume, self.tokens)
            tensor = graph.tensors[tid]
            if (not state.is_mask and not any(p.axis == 1 and not p.assumed
                                               for p in state.padded)
                    and tensor.rank >= 2 and tensor.shape[1] in self.mask_lengths):
                # a fixed-length input beside an explicit mask input of its length
                state = TensorState((PaddedAxis(1, self.side, node.name, node.name),))
            self.states[tid] = state

    def _arrive(self, node: Node) -> _Visit:
        """What reaches the node: its inputs' padded axes, taint and mask, and its row."""
        ins = [self.states.get(t, CLEAN) for t in node.inputs]
        data = [(t, s) for t, s in zip(node.inputs, ins) if not s.is_mask]
        mask_like = [s for s in ins if s.is_mask]
        sem = semantics_for(node.class_name, node.config, is_op=node.is_op, bases=node.bases)
        in_rank = self.rank(data[0][0]) if data else 0
        first_by_axis: dict[int, PaddedAxis] = {}
        for _, state in data:
            for p in state.padded:
                first_by_axis.setdefault(p.axis, p)
        multiply = node.class_name == "Multiply"
        padded = tuple(_merged(p, [s for _, s in data], multiply)
                       for p in first_by_axis.values())
        tainted = any(s.tainted for _, s in data)
        arrived = next((s.mask for _, s in data if s.mask is not None), None)
        if arrived is not None and len(data) > 1:  # merges combine every input's mask
            others = tuple(dict.fromkeys(src for _, s in data if s.mask is not None
                                         for src in s.mask.sources if src != arrived.source))
            if others:
                arrived = replace(arrived, also=others)
        explicit = bool(node.mask_inputs) and not node.is_op
        consumes = not node.is_op and (explicit or (arrived is not None and node.takes_mask))
        reading = node.reading if node.reading is not None and not node.reading.failed else None
        return _Visit(node, sem, ins, data, mask_like, in_rank, multiply, padded, tainted,
                      arrived, explicit, consumes, reading)

    def _note_mask_use(self, v: _Visit) -> None:
        """Masks the node applies (for MC104) and whether it generates one."""
        node, arrived = v.node, v.arrived
        if v.explicit:
            for _, tid in node.mask_inputs:
                state = self.states.get(tid)
                if state is not None and state.mask is not None:
                    self.used.update(state.mask.sources)
        if v.consumes and arrived is not None:
            # Keras records the mask it hands over as a `mask=` argument too, so an
            # explicit-looking mask next to an arriving one is usually that same mask.
            self.used.update(arrived.sources)
        if v.sem.generates:
            self.generates.add(node.index)
        if v.data and v.mask_like:  # e.g. x * cast(padding_mask): the mask is applied by hand
            for state in v.mask_like:
                if state.mask is not None:
                    self.used.update(state.mask.sources)

    def _apply_reading(self, v: _Visit) -> None:
        """`self.read`: per padded axis, what read code (or a reversing layer) does to it."""
        node, sem, padded, reading, ins = v.node, v.sem, v.padded, v.reading, v.ins
        self.read = {}
        if reading is not None:  # the op-level reader's verdict replaces the unknown row
            v.sem = replace(sem, known=True, propagates=reading.mask_out == "passes",
                            generates=reading.mask_out == "generates" and v.arrived is None)
            zero_axes = {p.axis for p in padded if p.zero}
            # the padding mask handed over as an ordinary argument (pool(h, mask))
            as_masks = bool(reading.mask_positions) and all(
                j < len(ins) and ins[j].is_mask for j in reading.mask_positions)
            for p in padded:
                index = next((i for i, st in enumerate(ins) if not st.is_mask
                              and any(q.axis == p.axis for q in st.padded)), 0)
                effect = reading.effect(v.arrived is not None, index, p.axis, p.axis in zero_axes,
                                        as_masks)
                if effect is not None:
                    self.read[p.axis] = effect
        elif node.is_op and node.class_name == "Flip" and padded:
            flipped = acted_axes(sem, node.config, v.in_rank)
            self.read = {p.axis: AxisEffect("pointwise", p.axis, flipped=True, moved=True)
                         for p in padded if p.axis in flipped}
        elif sem.reverses and padded:
            # read from the end: masked steps are skipped, unmasked post-padding is read first
            kind = "pointwise" if v.consumes else "anticausal"
            self.read = {p.axis: AxisEffect(kind, p.axis, flipped=True, moved=True)
                         for p in padded if p.axis == 1}

    def _settle_moved_steps(self, v: _Visit) -> None:
        """Steps an earlier layer moved out of place: moved back here (realigned), still
        out of place after a position-wise layer (carried), or read out of place (the
        earlier finding stands, and the node's outputs are tainted)."""
        flips = {p.axis for p in v.padded if p.axis in self.read and self.read[p.axis].flipped}
        for p in v.padded:
            ids = {q.pending for _, st in v.data for q in st.padded if q.axis == p.axis}
            if ids == {0}:
                continue
            if len(ids) == 1 and p.axis in flips:
                v.realigned.add(p.axis)
                self.pending.pop(p.pending, None)
            elif len(ids) == 1 and v.effects.get(p.axis) == POINTWISE and not (
                    v.consumes and v.arrived is not None) and not v.mask_like:
                v.carried_pending[p.axis] = p.pending
            else:
                for pid in ids - {0}:
                    self._emit(pid)
                v.tainted = v.out_of_place = True

    def _find_leaks(self, v: _Visit) -> None:
        """The padded axes the node reads across or moves with no mask to follow, and
        which of them leak padding values or only the amount of padding (`_leaks`)."""
        node, sem, padded, effects = v.node, v.sem, v.padded, v.effects
        mixes = [p for p in padded if effects[p.axis] in (MIXING, REDUCING)
                 or (effects[p.axis] == CAUSAL and p.side != POST)
                 or (effects[p.axis] == ANTICAUSAL and p.side != PRE)]
        follows = v.reading is not None and v.reading.mask_follows and v.arrived is not None
        # a recurrent layer: applying its mask, it carries its state over padded steps
        v.rnn_like = ((sem.along == CAUSAL or sem.reverses) and sem.uses_mask
                      and sem.acts_on == "time")
        moves = []
        if self.read and not (v.consumes and v.arrived is not None) and not follows:
            # reversed with no mask to follow it: valid positions now hold padding
            moves = [p for p in padded if p not in mixes and p.axis in self.read
                     and self.read[p.axis].flipped and p.axis not in v.realigned]
            if v.consumes and sem.reverses and sem.uses_mask:
                # a masked backward RNN moves its own outputs, which hold no padding values
                moves = [p.holding(ZEROS, REPEAT) for p in moves]
        v.moves = moves
        v.lengths = {p.axis: next((self.graph.tensors[t].shape[p.axis] for t, st in v.data
                                   if any(q.axis == p.axis for q in st.padded)
                                   and p.axis < self.rank(t)), None)
                     for p in padded}
        v.mixes, v.amount_only = _leaks(node, mixes, moves, effects, v.lengths)
        v.explicit_axes = set(range(1, max(v.in_rank - 1, 2))) if v.explicit else set()

    def _note_needs_mask(self, v: _Visit) -> None:
        """Is the mask this node would need there? (for MC101 / MC104)"""
        node, sem = v.node, v.sem
        if v.padded and (any(p.axis not in v.explicit_axes for p in v.mixes)
                         or ((sem.batch_stats or sem.sample_stats) and not v.explicit)
                         or (node.takes_mask and not v.explicit) or not sem.known):
            self.needs_self.add(node.index)

    def _covered(self, v: _Visit) -> set[int]:
        """The padded axes the mask the node applies protects."""
        covered = set(v.arrived.axes) if (v.consumes and v.arrived) else set()
        covered |= v.explicit_axes
        if self.read:
            covered = set()  # the reading already says what the mask it got protects
        return covered

    def _report_assumptions(self, v: _Visit) -> None:
        """Assumed semantics (unknown rows, unread operations), absolute positions under
        pre-padding, and means over a mask that can be all zeros."""
        node, sem, padded, arrived, reading = v.node, v.sem, v.padded, v.arrived, v.reading
        if padded and not sem.known:
            self._assume(node, padded[0], v.consumes, v.out_mask is not None,
                         arrived.source if arrived else None, node.reading)
        elif padded and reading is not None and reading.unknown_ops:
            self.assumed.append(AssumedEvent(
                node, padded[0], "to keep positions apart in the operations maskcheck does not "
                "read (" + ", ".join(reading.unknown_ops[:4]) + ")",
                arrived.source if arrived else None,
                v.out_mask is not None and arrived is not None))
        if padded:
            p = padded[0]
            effect = self.read.get(p.axis)
            if (sem.absolute_positions or (effect is not None and effect.absolute)) \
                    and any(q.side != POST for q in padded):
                self.absolute.append(AbsoluteEvent(node, next(q for q in padded if q.side != POST)))
            if arrived is not None and ((sem.masked_mean and v.consumes)
                                        or (effect is not None and effect.masked_mean)):
                self.means.append(MeanEvent(node, p, arrived.source))

    def _report_leaks(self, v: _Visit) -> None:
        """Every culprit is its own finding, also past an earlier one (fixing that one would
        leave this one leaking), unless it reads steps an earlier culprit moved out of
        place (that culprit's finding) or only the amount of padding leaks through it."""
        node, arrived, out_mask = v.node, v.arrived, v.out_mask
        leaking = [p for p in v.mixes if p.axis not in v.covered]
        if v.tainted:
            leaking = [] if v.out_of_place else [p for p in leaking if p.axis not in v.amount_only]
        if self._report_moved_steps(v):
            leaking = []
        only_moves = leaking and all(p.axis in {q.axis for q in v.moves} for p in leaking) \
            and not v.amount_only
        if leaking and only_moves and all(self.read[p.axis].flipped for p in leaking):
            p = leaking[0]
            v.parked = self._park("mixing", MixingEvent(
                node, p, arrived.source if arrived else None, False, False,
                tuple(q.axis for q in leaking)), leaking)
            leaking = []
        if leaking:
            p = leaking[0]
            if out_mask is not None and arrived is not None and out_mask.source == arrived.source:
                self.propagations.append(PropagationEvent(
                    node, arrived.source, p, f"mixes values along axis {p.axis}"))
            else:
                self.mixing.append(MixingEvent(node, p, arrived.source if arrived else None,
                                               v.effects[p.axis] == CAUSAL,
                                               p.axis in v.amount_only,
                                               tuple(q.axis for q in leaking)))
            v.node_tainted = True

    def _report_moved_steps(self, v: _Visit) -> bool:
        """Steps moved (reversed, shifted) under a mask passed through unchanged: the mask
        no longer lines up. Held until the steps are read out of place when they were only
        reversed. True when reported (the node's mixing is then not reported)."""
        node, arrived, out_mask, reading = v.node, v.arrived, v.out_mask, v.reading
        moved = [p for p in v.padded if p.axis in self.read and self.read[p.axis].moved
                 and p.axis not in v.realigned]
        follows = reading is not None and reading.mask_follows
        if moved and v.rnn_like and v.consumes and all(
                v.lengths.get(p.axis) is not None for p in moved):
            # a masked RNN's own outputs, which hold no padding values, over a fixed length
            moved = []
        if not (moved and out_mask is not None and arrived is not None and not follows
                and out_mask.source == arrived.source):
            return False
        event = MismatchEvent(
            node, arrived.source, f"it moves the steps along axis {moved[0].axis} (reversed "
            "or shifted) but passes the mask through unchanged")
        if all(self.read[p.axis].flipped for p in moved) and not v.tainted:
            v.parked = self._park("mismatch", event, moved)
        else:
            self.mismatches.append(event)
            v.node_tainted = True
        return True

    def _report_stats(self, v: _Visit) -> None:
        """Statistics over the batch or over a sample's padded axis (BatchNormalization,
        GroupNormalization, image statistics)."""
        node, sem, arrived, out_mask, covered = v.node, v.sem, v.arrived, v.out_mask, v.covered
        stats_axes = [p for p in v.padded if p.axis in range(1, max(v.in_rank - 1, 2))]
        if sem.batch_stats and stats_axes and not (set(p.axis for p in stats_axes) <= covered):
            self.stats.append(StatsEvent(node, stats_axes[0], "batch",
                                         arrived.source if arrived else None))
            v.node_tainted = True
        if sem.sample_stats and stats_axes and not covered:
            p = stats_axes[0]
            if out_mask is not None and arrived is not None and out_mask.source == arrived.source:
                self.propagations.append(PropagationEvent(
                    node, arrived.source, p, f"normalizes with statistics over axis {p.axis}"))
            else:
                self.stats.append(StatsEvent(node, p, "sample", arrived.source if arrived else None))
            v.node_tainted = True

    def _report_drops(self, v: _Visit) -> None:
        """A mask that arrives and goes nowhere, or one the node should generate and does not."""
        node, arrived, padded = v.node, v.arrived, v.padded
        if arrived is not None and v.out_mask is None and not v.consumes and padded:
            self.drops.append(DropEvent(node, arrived.source, padded[0]))
        elif v.sem.generates and v.out_mask is None and node.outputs:
            axis = padded[0] if padded else PaddedAxis(1, BOTH, node.name, node.name)
            self.drops.append(DropEvent(node, node.name, axis, not_created=True))

    def _outputs_padded(self, v: _Visit) -> tuple[PaddedAxis, ...]:
        """The output's padded axes: where they land, what they hold, and what is still
        (or now) out of place on each."""
        node = v.node
        rnn_carry = v.rnn_like and v.consumes and v.out_mask is not None
        out_padded = self._contents(node, self._out_padded(node, v.sem, v.padded, v.effects,
                                                           v.data, v.in_rank),
                                    v.effects, v.mask_like, v.consumes and v.arrived is not None,
                                    rnn_carry, v.multiply)
        return tuple(replace(q, pending=v.parked.get(q.axis, v.carried_pending.get(q.axis, 0)))
                     for q in out_padded)

    def _write_outputs(self, v: _Visit, out_padded: tuple[PaddedAxis, ...]) -> None:
        node, mask_like = v.node, v.mask_like
        for tid in node.outputs:
            tensor = self.graph.tensors[tid]
            if tensor.is_boolean_like or (mask_like and not v.data):
                source = mask_like[0].mask.source if mask_like and mask_like[0].mask else node.name
                self.states[tid] = TensorState(is_mask=True, mask=MaskInfo(source))
                continue
            axes = tuple(p for p in out_padded if p.axis < tensor.rank)
            mask = v.out_mask if axes else None
            self.states[tid] = TensorState(axes, mask, v.tainted or v.node_tainted)

    def _park(self, kind: str, event: object, axes: list[PaddedAxis]) -> dict[int, int]:
        """Hold a finding about steps moved out of place until they are read there."""
        pid = len(self.pending) + 1
        while pid in self.pending:
            pid += 1
        self.pending[pid] = (kind, event)
        return {(self.read[p.axis].out_axis if self.read[p.axis].out_axis is not None
                 else p.axis): pid for p in axes}

    def _emit(self, pid: int) -> None:
        """Report a held finding: the steps it moved were read out of place."""
        held = self.pending.pop(pid, None)
        if held is None:
            return
        kind, event = held
        (self.mismatches if kind == "mismatch" else self.mixing).append(event)

    def _contents(self, node: Node, out_padded: tuple[PaddedAxis, ...], effects: dict[int, str],
                  mask_like: list, consumed: bool, rnn_carry: bool,
                  multiply: bool) -> tuple[PaddedAxis, ...]:
        """What the output's padded positions hold (PADDING, ZEROS, VALID, REPEAT; per side).

        `out_padded` carries what the input held there (moved with the axis); the
        node's own effect then decides: the mask multiplied in by hand or a masked
        Bidirectional zeroes them; a masked RNN holds its initial (zero) state over
        leading padding and repeats its last valid output over trailing padding; a
        position-wise layer keeps padding values as such and turns zeros into a
        constant (VALID) unless it maps 0 to 0; what mixes padding values in holds them."""
        out = []
        for q in out_padded:
            if q.source == node.name:  # padding this node declares (a mask generator)
                out.append(q)
            elif node.is_op and multiply and mask_like:
                out.append(q.holding(ZEROS, ZEROS))  # x * cast(mask)[..., None]: by hand
            elif node.class_name == "Bidirectional" and consumed:
                out.append(q.holding(ZEROS, ZEROS))  # Keras 3 zeroes both directions there
            elif rnn_carry:  # its initial zero state, then its last valid output repeated
                out.append(q.holding(ZEROS, REPEAT))
            elif self.read:
                out.append(self._read_contents(q))
            else:
                kind = effects.get(q.axis, POINTWISE)
                keeps_zero = (kind == POINTWISE
                              and (node.class_name in _KEEPS_ZERO or multiply))
                reads_all = kind in (MIXING, REDUCING)
                dirty = PADDING in (q.pre_holds, q.post_holds)

                def after(held: str) -> str:
                    if held == PADDING or (reads_all and dirty):
                        return PADDING
                    if held == REPEAT and kind == POINTWISE:
                        return REPEAT  # f(last valid step), repeated
                    return ZEROS if held == ZEROS and keeps_zero else VALID
                out.append(q.holding(after(q.pre_holds), after(q.post_holds)))
        return tuple(out)

    def _read_contents(self, q: PaddedAxis) -> PaddedAxis:
        """What read code leaves at the padded positions of output axis `q`."""
        effect = next((e for e in self.read.values() if e.out_axis == q.axis), None)
        if effect is None:
            return q
        held = {}
        for side in (PRE, POST):
            source = _SWAPPED[side] if effect.flipped else side  # the input's side
            if source in effect.zero_sides:
                held[side] = ZEROS
            elif q.holds(side) == REPEAT and effect.kind == "pointwise":
                held[side] = REPEAT
            elif source in effect.clean_sides or q.holds(side) != PADDING:
                held[side] = VALID
            else:
                held[side] = PADDING
        return q.holding(held[PRE], held[POST])

    def _output_mask(self, node: Node, sem: LayerSemantics, arrived: MaskInfo | None,
                     in_rank: int) -> MaskInfo | None:
        if node.is_op:
            return None
        if sem.generates and sem.mask_at_runtime:
            return MaskInfo(node.name, runtime=True)  # invisible on the symbolic graph
        if sem.generates and node.keras_output_masks is not None and not any(node.keras_output_masks):
            return None  # configured to generate, but Keras attached nothing
        if sem.generates:
            if node.class_name == "Masking" or "Masking" in node.bases:
                return MaskInfo(node.name, tuple(range(1, max(in_rank - 1, 2))))
            return MaskInfo(node.name)
        if node.class_name == "Concatenate" and arrived is not None:
            states = [self.states.get(t, CLEAN) for t in node.inputs]
            if any(s.mask is None for s in states if not s.is_mask):
                # Keras 3.15 fills a missing input mask with ones and ORs the masks over
                # the features: the mask it attaches marks every position valid.
                return None
        if node.keras_output_masks is not None and not (arrived is not None and arrived.runtime):
            # what Keras itself attached (it never saw a mask that exists at run time only)
            if sem.mask_at_runtime and sem.propagates and arrived is not None:
                return arrived
            if not any(node.keras_output_masks):
                return None
            if arrived is None:  # a mask passed explicitly (mask=...) and handed on
                passed = next((self.states[t].mask for _, t in node.mask_inputs
                               if t in self.states and self.states[t].mask is not None), None)
                return passed if passed is not None else MaskInfo(node.name)
            return arrived
        if node.reading is not None and not node.reading.failed:
            if node.reading.mask_out == "generates":
                return MaskInfo(node.name)
            return arrived if node.reading.mask_out == "passes" else None
        propagates = sem.propagates if sem.known else node.supports_masking
        if propagates and arrived is not None and node.class_name in _MERGES:
            # Keras 3.15 merges drop the mask unless every input carries one.
            states = [self.states.get(t, CLEAN) for t in node.inputs]
            if any(s.mask is None for s in states if not s.is_mask):
                return None
        return arrived if (propagates and arrived is not None) else None

    def _assume(self, node: Node, axis: PaddedAxis, consumes: bool, propagates: bool,
                arrived: str | None, reading: object = None) -> None:
        failed = getattr(reading, "failed", "")
        if failed:
            text = ("to keep positions apart: its code could not be read on symbolic inputs ("
                    + failed + ")")
        elif consumes:
            text = "to apply the mask it receives"
        elif propagates:
            text = "to be position-wise, since it passes the mask on (supports_masking)"
        else:
            text = "to keep positions apart; if it mixes along the padded axis, padding leaks"
        self.assumed.append(AssumedEvent(node, axis, text, arrived,
                                         propagates and arrived is not None))

    def _out_padded(self, node: Node, sem: LayerSemantics, padded: tuple[PaddedAxis, ...],
                    effects: dict[int, str], data: list, in_rank: int) -> tuple[PaddedAxis, ...]:
        if not node.outputs:
            return ()
        out = self.graph.tensors[node.outputs[0]]
        if sem.generates and all(p.assumed for p in padded):
            # the model itself says where padding is: the assumption is no longer needed
            return (PaddedAxis(1, self.side, node.name, node.name),) if out.rank >= 2 else ()
        if node.class_name == "TextVectorization":
            return (PaddedAxis(1, POST, node.name, node.name),) if out.rank >= 2 else ()
        if not padded:
            return ()
        in_shape = self.graph.tensors[data[0][0]].shape if data else ()
        if self.read:
            moved = []
            for p in padded:
                effect = self.read.get(p.axis)
                if effect is None:
                    moved.append(p)
                elif effect.out_axis is not None and effect.out_axis < out.rank:
                    moved.append(replace(p.reversed() if effect.flipped else p,
                                         axis=effect.out_axis))
            return tuple(moved)
        if node.class_name in ("Permute", "Transpose"):
            return self._permuted(node, padded, in_rank)
        if node.is_op and node.class_name == "Flip":  # reversing time swaps the padding side
            axes = acted_axes(sem, node.config, in_rank)
            return tuple(p.reversed() if p.axis in axes else p for p in padded)
        if node.class_name == "Reshape":
            if _time_preserved(in_shape, out.shape):
                return tuple(p for p in padded if p.axis == 1)
            return ()
        kept = []
        for p in padded:
            if effects.get(p.axis) == REDUCING:
                continue
            if p.axis >= out.rank:
                continue
            if out.rank != in_rank or (sem.along == REDUCING and p.axis in acted_axes(
                    sem, node.config, in_rank)):
                if out.shape[p.axis] != in_shape[p.axis]:
                    continue
            kept.append(p)
        return tuple(kept)

    def _permuted(self, node: Node, padded: tuple[PaddedAxis, ...], in_rank: int):
        dims = node.config.get("dims") if node.class_name == "Permute" else node.config.get("axes")
        if not isinstance(dims, tuple):
            if node.class_name == "Transpose" and dims is None:
                order = tuple(reversed(range(in_rank)))
            else:
                return padded
        else:
            order = (0,) + dims if node.class_name == "Permute" else dims
        moved = []
        for p in padded:
            if p.axis in order:
                moved.append(replace(p, axis=order.index(p.axis)))
        return tuple(moved)

    def _check_mismatch(self, node, sem, data, arrived, out_mask, consumes, in_rank,
                        padded, out_padded) -> None:
        reading = node.reading
        if reading is not None and not reading.failed and out_mask is not None and padded:
            if reading.mask_mismatch:
                self.mismatches.append(MismatchEvent(node, out_mask.source, reading.mask_mismatch))
                return
            changed = [p.axis for p in padded if p.axis in self.read
                       and self.read[p.axis].length_changed]
            if changed and arrived is not None and out_mask.source == arrived.source \
                    and not reading.mask_follows:
                self.mismatches.append(MismatchEvent(
                    node, arrived.source, f"it changes the length of axis {changed[0]} but "
                    "passes the mask through unchanged"))
                return
        if arrived is not None and consumes and sem.broadcasts_mask and in_rank > len(arrived.axes) + 1:
            self.mismatches.append(MismatchEvent(
                node, arrived.source,
                f"a mask of rank {len(arrived.axes) + 1} is broadcast against a rank-{in_rank} "
                "input, so it lines up with the last axes instead of the time axis", at_input=True))
            return
        follows = reading is not None and not reading.failed and reading.mask_follows
        if out_mask is not None and arrived is not None and out_mask.source == arrived.source \
                and node.outputs and not follows:
            in_shape = self.graph.tensors[data[0][0]].shape
            out_shape = self.graph.tensors[node.outputs[0]].shape
            for axis in arrived.axes:
                changed = (axis >= len(out_shape) or axis >= len(in_shape)
                           or in_shape[axis] != out_shape[axis]
                           or (sem.changes_length and axis in acted_axes(sem, node.config, in_rank)))
                if changed:
                    self.mismatches.append(MismatchEvent(
                        node, arrived.source,
                        f"it changes the length of axis {axis} ({_dim(in_shape, axis)} -> "
                        f"{_dim(out_shape, axis)}) but passes the mask through unchanged"))
                    return
        masked = [s for _, s in data if s.mask is not None and s.padded]
        if len(masked) > 1 and len({s.mask.source for s in masked}) > 1:
            origins = {p.origin for s in masked for p in s.padded if p.axis == 1}
            if len(origins) > 1:
                self.mismatches.append(MismatchEvent(
                    node, masked[0].mask.source,
                    "it merges tensors padded independently (from "
                    + ", ".join(repr(o) for o in sorted(origins))
                    + "), so their masks disagree position by position"))
                return
        for tid in node.outputs:
            tensor = self.graph.tensors[tid]
            shape = tensor.keras_mask_shape
            if shape is None:
                continue
            bad = len(shape) > tensor.rank or any(
                m is not None and t is not None and m != t for m, t in zip(shape, tensor.shape))
            if bad:
                self.mismatches.append(MismatchEvent(
                    node, arrived.source if arrived else node.name,
                    f"Keras attached a mask of shape {shape} to an output of shape {tensor.shape}"))
                return

    def finish(self) -> MaskFlow:
        graph = self.graph
        for tid in graph.outputs:  # steps still out of place at a model output
            for p in self.states.get(tid, CLEAN).padded:
                if p.pending:
                    self._emit(p.pending)
        consumers: dict[int, list[Node]] = {}
        for n in graph.nodes:
            for t in dict.fromkeys(n.inputs):
                consumers.setdefault(t, []).append(n)
        outputs = set(graph.outputs)
        for tid in graph.outputs:
            state = self.states.get(tid)
            if state is not None and state.mask is not None:
                self.used.update(state.mask.sources)
        needs: set[int] = set()
        for node in reversed(graph.nodes):
            for tid in node.outputs:
                if not self.states.get(tid, CLEAN).is_padded:
                    continue
                if tid in outputs:
                    needs.add(tid)
                    continue
                for nxt in consumers.get(tid, ()):
                    if nxt.index in self.needs_self or (
                            nxt.index not in self.generates
                            and any(o in needs for o in nxt.outputs)):
                        needs.add(tid)
                        break
        return MaskFlow(self.states, tuple(self.mixing), tuple(self.drops),
                        tuple(self.propagations), tuple(self.stats), tuple(self.mismatches),
                        tuple(self.assumed), frozenset(self.used), frozenset(needs),
                        frozenset(self.needs_self),
                        {t: tuple(ns) for t, ns in consumers.items()},
                        tuple(self.absolute), tuple(self.means))


def _effect(node: Node, sem: LayerSemantics, axis: int, rank: int) -> str:
    """Like `effect_on_axis`, plus indexing: `x[:, 0]` reads a fixed position, which
    is valid under post-padding only; `x[:, -1]` under pre-padding only."""
    if node.is_op and node.class_name == "GetItem":
        if axis in node.config.get("index_from_start", ()):
            return CAUSAL
        if axis in node.config.get("index_from_end", ()):
            return MIXING
        return POINTWISE  # slices move positions but mix nothing
    return effect_on_axis(sem, node.config, axis, rank)


def _merged(first: PaddedAxis, states: list[TensorState], multiply: bool) -> PaddedAxis:
    """The padded axis of a node's inputs, holding what their padding holds together: the
    worst content of any input on each side (an input without the axis holds no padding
    there, but its values are not zeros), or zeros where one factor of a product is zero."""
    held = {}
    for side in (PRE, POST):
        found = [next((q.holds(side) for q in st.padded if q.axis == first.axis), VALID)
                 for st in states]
        if multiply and ZEROS in found:
            held[side] = ZEROS
        elif not found:
            held[side] = first.holds(side)
        elif len(set(found)) == 1:
            held[side] = found[0]
        else:
            held[side] = PADDING if PADDING in found else VALID
    return first.holding(held[PRE], held[POST])


def _leaks(node: Node, mixes: list[PaddedAxis], moves: list[PaddedAxis], effects: dict[int, str],
           lengths: dict[int, int | None]) -> tuple[list[PaddedAxis], set[int]]:
    """Of the padded axes a node reads across (`mixes`) or moves with no mask to follow
    (`moves`), those through which padding changes its valid outputs, and the axes among
    them through which only the amount of padding does (no padding values are read).

    Padding values leak wherever the positions read hold PADDING. Zeros and values of
    valid steps leak only the amount of padding, and only along an axis whose length
    varies (a fixed length ties the padding to each sample's own length); zeros do not
    even do that to a convolution, a running sum or a sum, nor the last valid step
    repeated to a max or min over a window or the axis. `lengths`: each padded axis's
    length in the input that holds it (None: it varies)."""
    leaking, amount = [], set()
    for p in [*mixes, *moves]:
        kind = MIXING if p in moves else effects.get(p.axis, MIXING)
        read = (PRE,) if kind == CAUSAL else (POST,) if kind == ANTICAUSAL else (PRE, POST)
        held = p.contents(read) or p.contents()
        if PADDING in held:
            leaking.append(p)
            continue
        if lengths.get(p.axis) is not None:  # a fixed length: no amount to change
            continue
        if held == {ZEROS} and p not in moves and (
                _is_convolution(node) or (node.is_op and node.class_name in _ZERO_NEUTRAL_OPS)):
            continue
        if held == {REPEAT} and p not in moves and (
                node.class_name in _MAX_LIKE or any(b in _MAX_LIKE for b in node.bases)):
            continue
        leaking.append(p)
        amount.add(p.axis)
    return leaking, amount


def _is_convolution(node: Node) -> bool:
    return ((node.class_name in _CONVOLUTIONS or any(b in _CONVOLUTIONS for b in node.bases))
            and node.config.get("padding") in ("same", "causal"))


def _dim(shape: tuple, axis: int) -> str:
    if axis >= len(shape):
        return "gone"
    return "None" if shape[axis] is None else str(shape[axis])


def _time_preserved(in_shape: tuple, out_shape: tuple) -> bool:
    """Reshape keeps axis 1 when it only regroups the features of each step."""
    if len(in_shape) < 2 or len(out_shape) < 2 or in_shape[1] != out_shape[1]:
        return False
    rest_in, rest_out = in_shape[2:], out_shape[2:]
    if None in rest_in or None in rest_out:
        return False
    prod_in = 1
    for d in rest_in:
        prod_in *= d
    prod_out = 1
    for d in rest_out:
        prod_out *= d
    return prod_in == prod_out


def mask_needed_after(graph: MaskGraph, flow: MaskFlow, node: Node) -> bool:
    """Whether the padding leaving `node` later meets mixing, statistics, a
    mask consumer, an output, a loss or a metric (or `node` itself mixes)."""
    if node.index in flow.needs_self:
        return True
    return any(t in flow.needs_mask for t in node.outputs)
