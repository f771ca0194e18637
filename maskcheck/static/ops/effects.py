"""What the op-level reader returns: plain values the static dataflow consults.

`Reading` is the reader's verdict on one layer call, in place of a table row;
`AxisEffect` what the call does to one padded axis of one input. Neither knows
TensorFlow, Keras or how the verdict was reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

#: The kind of an `AxisEffect` that reads across the axis both ways.
MIXING_KIND = "mixing"


@dataclass(frozen=True, slots=True)
class AxisEffect:
    """What the layer does to one padded axis of one input, both sides read."""

    kind: str  # pointwise, causal, anticausal, mixing, reducing
    out_axis: int | None  # where the padded axis is in the output (None: gone)
    flipped: bool = False  # post and pre padding swap (time reversed)
    absolute: bool = False  # positions counted from the start reach valid outputs under pre-padding
    masked_mean: bool = False  # divides by the mask's sum, 0/0 for a fully padded sample
    #: the output length along the axis differs from the input's
    length_changed: bool = False
    #: steps moved along the axis (reversed, shifted)
    moved: bool = False
    #: the padding sides (of the input) for which the output's padded positions hold
    #: exact zeros (the mask was multiplied in; a cumsum over leading zeros)
    zero_sides: frozenset[str] = frozenset()
    #: the padding sides (of the input) for which the output's padded positions hold no
    #: padding values at all (zeros, a large negative number, values of valid steps)
    clean_sides: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Reading:
    """The result of reading one layer call: effects per (masked, input, axis)."""

    effects: Mapping[tuple[bool, int, int], AxisEffect] = field(default_factory=dict)
    #: what the layer's compute_mask returns when handed the mask: "none",
    #: "passes" (derived from the mask it got), "generates" (from values)
    mask_out: str = "none"
    #: a returned mask that does not line up with the output ("" when it does)
    mask_mismatch: str = ""
    #: operation types the reader does not know (the verdict stays assumed)
    unknown_ops: tuple[str, ...] = ()
    #: why the layer could not be read ("" when it was)
    failed: str = ""
    #: the same effects when the input's padded positions hold exact zeros
    zero_effects: Mapping[tuple[bool, int, int], AxisEffect] = field(default_factory=dict)
    #: compute_mask transforms the mask the way call transforms the steps (sliced,
    #: reversed, shifted with them): it lines up although the length or order changed
    mask_follows: bool = False
    #: inputs of shape (batch, time) beside a larger data input: the padding mask when
    #: the model hands it over as an ordinary argument (``pool(h, mask)``, ``pool([h, m])``)
    mask_positions: tuple[int, ...] = ()
    #: the effects (and zero-fill effects) when those inputs hold the padding mask
    mask_effects: Mapping[tuple[bool, int, int], AxisEffect] = field(default_factory=dict)
    mask_zero_effects: Mapping[tuple[bool, int, int], AxisEffect] = field(default_factory=dict)

    def effect(self, masked: bool, index: int, axis: int, zero: bool = False,
               as_masks: bool = False) -> AxisEffect | None:
        """What the layer does to padded `axis` of input `index`; `masked`: Keras hands it
        the mask; `zero`: the padded positions hold zeros; `as_masks`: the inputs at
        `mask_positions` are the padding mask."""
        if as_masks and self.mask_effects:
            table = (self.mask_zero_effects if zero and self.mask_zero_effects
                     else self.mask_effects)
        else:
            table = self.zero_effects if zero and self.zero_effects else self.effects
        found = table.get((masked, index, axis))
        if found is None and masked:
            found = table.get((False, index, axis))
        return found
