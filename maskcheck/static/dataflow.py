"""Dataflow of padded axes and masks through a MaskGraph.

For every tensor it tracks which axes hold padding (and from which side),
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

from maskcheck.static import collector_paused
from maskcheck.static.graph import MaskGraph, Node
from maskcheck.static.ops import AxisEffect
from maskcheck.static.semantics import (CAUSAL, MIXING, POINTWISE, REDUCING, LayerSemantics,
                                        acted_axes, effect_on_axis, semantics_for)

#: Looks only forwards along the axis (a reversed cumsum, x[t + 1]): safe under
#: pre-padding, a leak under post-padding. Only the op-level reader reports it.
ANTICAUSAL = "anticausal"
_READ_KINDS = {"pointwise": POINTWISE, "causal": CAUSAL, "anticausal": ANTICAUSAL,
               "mixing": MIXING}

#: Padding sides. A None-length input axis can be padded either way.
POST, PRE, BOTH = "post", "pre", "both"

_SWAPPED = {POST: PRE, PRE: POST, BOTH: BOTH}
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
    #: the padded positions hold exact zeros (the mask was multiplied in): a
    #: convolution reads them as its own zero padding, so they add nothing
    zero: bool = False


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
    #: padded positions hold a masked RNN's carried state: they depend on the
    #: amount of padding, not on the padding values
    carried: bool = False
    #: the tensor is itself a mask (boolean, or an explicit mask input)
    is_mask: bool = False
    #: an earlier culprit moved the steps (reversed, shifted) with no mask to follow:
    #: where padding now sits depends on how that culprit gets fixed
    moved: bool = False

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
    carried: bool = False  # padded values were a masked RNN's carried state
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
    for node in graph.nodes:
        a.visit(node)
    return a.finish()


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

    def rank(self, tid: int) -> int:
        return len(self.graph.tensors[tid].shape)

    def visit(self, node: Node) -> None:
        graph = self.graph
        if node.is_input:
            for tid in node.outputs:
                self.states[tid] = _input_state(graph, node, self.side, self.declared_masks,
                                                tuple(self.declared_axes.get(node.name, ())),
                                                self.assume, self.tokens)
            return
        ins = [self.states.get(t, CLEAN) for t in node.inputs]
        data = [(t, s) for t, s in zip(node.inputs, ins) if not s.is_mask]
        mask_like = [s for s in ins if s.is_mask]
        sem = semantics_for(node.class_name, node.config, is_op=node.is_op, bases=node.bases)
        in_rank = self.rank(data[0][0]) if data else 0
        first_by_axis: dict[int, PaddedAxis] = {}
        for _, state in data:
            for p in state.padded:
                first_by_axis.setdefault(p.axis, p)
        padded = tuple(first_by_axis.values())
        zero_axes = {a for a in first_by_axis
                     if all(q.zero for _, st in data for q in st.padded if q.axis == a)}
        tainted = any(s.tainted for _, s in data)
        carried = any(s.carried for _, s in data)
        moved_before = any(s.moved for _, s in data)
        arrived = next((s.mask for _, s in data if s.mask is not None), None)
        if arrived is not None and len(data) > 1:  # merges combine every input's mask
            others = tuple(dict.fromkeys(src for _, s in data if s.mask is not None
                                         for src in s.mask.sources if src != arrived.source))
            if others:
                arrived = replace(arrived, also=others)
        explicit = bool(node.mask_inputs) and not node.is_op
        consumes = not node.is_op and (explicit or (arrived is not None and node.takes_mask))
        if explicit:
            for _, tid in node.mask_inputs:
                state = self.states.get(tid)
                if state is not None and state.mask is not None:
                    self.used.update(state.mask.sources)
        if consumes and arrived is not None:
            # Keras records the mask it hands over as a `mask=` argument too, so an
            # explicit-looking mask next to an arriving one is usually that same mask.
            self.used.update(arrived.sources)
        if sem.generates:
            self.generates.add(node.index)
        if data and mask_like:  # e.g. x * cast(padding_mask): the mask is applied by hand
            for state in mask_like:
                if state.mask is not None:
                    self.used.update(state.mask.sources)

        reading = node.reading if node.reading is not None and not node.reading.failed else None
        self.read = {}
        if reading is not None:  # the op-level reader's verdict replaces the unknown row
            sem = replace(sem, known=True, propagates=reading.mask_out == "passes",
                          generates=reading.mask_out == "generates" and arrived is None)
            for p in padded:
                index = next((i for i, (_, st) in enumerate(data)
                              if any(q.axis == p.axis for q in st.padded)), 0)
                effect = reading.effect(arrived is not None, index, p.axis, p.axis in zero_axes)
                if effect is not None:
                    self.read[p.axis] = effect
        elif node.is_op and node.class_name == "Flip" and padded:
            flipped = acted_axes(sem, node.config, in_rank)
            self.read = {p.axis: AxisEffect("pointwise", p.axis, flipped=True, moved=True)
                         for p in padded if p.axis in flipped}
        elif sem.reverses and padded:
            # read from the end: masked steps are skipped, unmasked post-padding is read first
            kind = "pointwise" if (consumes and arrived is not None) else "anticausal"
            self.read = {p.axis: AxisEffect(kind, p.axis, flipped=True, moved=True)
                         for p in padded if p.axis == 1}
        # Is the mask this node would need there? (for MC101 / MC104)
        effects = {p.axis: (_READ_KINDS[self.read[p.axis].kind] if p.axis in self.read
                            else _effect(node, sem, p.axis, in_rank) if sem.known else POINTWISE)
                   for p in padded}
        mixes = [p for p in padded if effects[p.axis] in (MIXING, REDUCING)
                 or (effects[p.axis] == CAUSAL and p.side != POST)
                 or (effects[p.axis] == ANTICAUSAL and p.side != PRE)]
        if zero_axes and _is_convolution(node):
            mixes = [p for p in mixes if p.axis not in zero_axes]
        moves_padding = False
        if self.read and not (consumes and arrived is not None):
            # reversed with no mask to follow it: valid positions now hold padding
            flipped = [p for p in padded if p not in mixes and p.axis in self.read
                       and self.read[p.axis].flipped]
            mixes += flipped
            moves_padding = bool(flipped)
        explicit_axes = set(range(1, max(in_rank - 1, 2))) if explicit else set()
        if padded and (any(p.axis not in explicit_axes for p in mixes)
                       or ((sem.batch_stats or sem.sample_stats) and not explicit)
                       or (node.takes_mask and not explicit) or not sem.known):
            self.needs_self.add(node.index)

        out_mask = self._output_mask(node, sem, arrived, in_rank)
        covered = set(arrived.axes) if (consumes and arrived) else set()
        covered |= explicit_axes
        if self.read:
            covered = set()  # the reading already says what the mask it got protects

        node_tainted = False
        if padded and not sem.known:
            self._assume(node, padded[0], consumes, out_mask is not None,
                         arrived.source if arrived else None, node.reading)
        elif padded and reading is not None and reading.unknown_ops:
            self.assumed.append(AssumedEvent(
                node, padded[0], "to keep positions apart in the operations maskcheck does not "
                "read (" + ", ".join(reading.unknown_ops[:4]) + ")",
                arrived.source if arrived else None, out_mask is not None and arrived is not None))
        if padded:
            p = padded[0]
            effect = self.read.get(p.axis)
            if (sem.absolute_positions or (effect is not None and effect.absolute)) \
                    and any(q.side != POST for q in padded):
                self.absolute.append(AbsoluteEvent(node, next(q for q in padded if q.side != POST)))
            if arrived is not None and ((sem.masked_mean and consumes)
                                        or (effect is not None and effect.masked_mean)):
                self.means.append(MeanEvent(node, p, arrived.source))
        # Every culprit is its own finding, also past an earlier one (fixing that one would
        # leave this one leaking), unless what the padded positions hold here is no longer
        # padding values: a masked RNN's carried state, or steps an earlier culprit moved.
        follows_culprit = tainted and (carried or moved_before)
        leaking = [] if follows_culprit else [p for p in mixes if p.axis not in covered]
        moved = [p for p in padded if p.axis in self.read and self.read[p.axis].moved]
        follows = reading is not None and reading.mask_follows
        if moved and out_mask is not None and arrived is not None and not follows \
                and out_mask.source == arrived.source:
            # steps moved under a mask passed through unchanged: the mask no longer lines up
            self.mismatches.append(MismatchEvent(
                node, arrived.source, f"it moves the steps along axis {moved[0].axis} (reversed "
                "or shifted) but passes the mask through unchanged"))
            leaking = []
            node_tainted = True
        if leaking:
            p = leaking[0]
            if out_mask is not None and arrived is not None and out_mask.source == arrived.source:
                self.propagations.append(PropagationEvent(
                    node, arrived.source, p, f"mixes values along axis {p.axis}"))
            else:
                self.mixing.append(MixingEvent(node, p, arrived.source if arrived else None,
                                               effects[p.axis] == CAUSAL, carried,
                                               tuple(q.axis for q in leaking)))
            node_tainted = True
        stats_axes = [p for p in padded if p.axis in range(1, max(in_rank - 1, 2))]
        if sem.batch_stats and stats_axes and not (set(p.axis for p in stats_axes) <= covered):
            self.stats.append(StatsEvent(node, stats_axes[0], "batch",
                                         arrived.source if arrived else None))
            node_tainted = True
        if sem.sample_stats and stats_axes and not covered:
            p = stats_axes[0]
            if out_mask is not None and arrived is not None and out_mask.source == arrived.source:
                self.propagations.append(PropagationEvent(
                    node, arrived.source, p, f"normalizes with statistics over axis {p.axis}"))
            else:
                self.stats.append(StatsEvent(node, p, "sample", arrived.source if arrived else None))
            node_tainted = True

        if arrived is not None and out_mask is None and not consumes and padded:
            self.drops.append(DropEvent(node, arrived.source, padded[0]))
        elif sem.generates and out_mask is None and node.outputs:
            axis = padded[0] if padded else PaddedAxis(1, BOTH, node.name, node.name)
            self.drops.append(DropEvent(node, node.name, axis, not_created=True))

        out_padded = self._zeroed(node, padded,
                                  self._out_padded(node, sem, padded, effects, data, in_rank),
                                  zero_axes, data, mask_like, consumes and arrived is not None)
        self._check_mismatch(node, sem, data, arrived, out_mask, consumes, in_rank, padded,
                             out_padded)

        rnn_carry = (consumes and sem.along in (CAUSAL, MIXING) and sem.uses_mask
                     and sem.acts_on == "time" and out_mask is not None)
        for tid in node.outputs:
            tensor = self.graph.tensors[tid]
            if tensor.is_boolean_like or (mask_like and not data):
                source = mask_like[0].mask.source if mask_like and mask_like[0].mask else node.name
                self.states[tid] = TensorState(is_mask=True, mask=MaskInfo(source))
                continue
            axes = tuple(p for p in out_padded if p.axis < tensor.rank)
            mask = out_mask if axes else None
            self.states[tid] = TensorState(axes, mask, tainted or node_tainted,
                                           (carried or rnn_carry) and bool(axes),
                                           moved=moved_before or (moves_padding and node_tainted))

    def _zeroed(self, node: Node, padded: tuple[PaddedAxis, ...],
                out_padded: tuple[PaddedAxis, ...], zero_axes: set[int], data: list,
                mask_like: list, consumed: bool) -> tuple[PaddedAxis, ...]:
        """Which output axes hold exact zeros at their padded positions."""
        if node.is_op and node.class_name == "Multiply" and data and mask_like:
            zero = {p.axis for p in out_padded}  # x * cast(mask)[..., None]: by hand
        elif node.class_name == "Bidirectional" and consumed:
            zero = {1}  # Keras 3 zeroes both directions' outputs at masked steps
        elif self.read:
            zero = set()
            for p in padded:
                effect = self.read.get(p.axis)
                sides = {POST, PRE} if p.side == BOTH else {p.side}
                if effect is not None and effect.out_axis is not None \
                        and sides <= effect.zero_sides:
                    zero.add(effect.out_axis)
        elif node.class_name in _KEEPS_ZERO or (node.is_op and node.class_name == "Multiply"):
            zero = zero_axes
        else:
            zero = set()
        return tuple(replace(p, zero=p.axis in zero) for p in out_padded)

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
            return arrived if arrived is not None else MaskInfo(node.name)
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
            return (PaddedAxis(1, BOTH, node.name, node.name),) if out.rank >= 2 else ()
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
                    moved.append(replace(p, axis=effect.out_axis,
                                         side=_SWAPPED[p.side] if effect.flipped else p.side))
            return tuple(moved)
        if node.class_name in ("Permute", "Transpose"):
            return self._permuted(node, padded, in_rank)
        if node.is_op and node.class_name == "Flip":  # reversing time swaps the padding side
            axes = acted_axes(sem, node.config, in_rank)
            return tuple(replace(p, side=_SWAPPED[p.side]) if p.axis in axes else p
                         for p in padded)
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
