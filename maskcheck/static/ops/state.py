"""The abstract value each tensor of a traced graph carries through the reader.

Per padded axis, a tensor records which side the padding is on, whether its
padded positions still depend on the padding values (DIRTY) or were
neutralised by the mask (ZERO: multiplied in; NEG: pushed to a large negative
number; OTHER: replaced), and by how many positions it is shifted; it is
"tainted" once valid positions depend on padding values. A tensor can also be
the mask itself (or its inverse, or a bias built from it), or a count of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

#: Padding sides.
POST, PRE = "post", "pre"
#: What a tensor's padded positions hold.
DIRTY, ZERO, NEG, OTHER = "dirty", "zero", "neg", "other"


@dataclass(frozen=True, slots=True)
class Pad:
    side: str
    fill: str = DIRTY  # what the padded positions hold: DIRTY, or a neutral ZERO/NEG/OTHER
    shift: int = 0  # position u holds the value of position u + shift
    #: (stride, size) when a reshape merged the padded axis into a larger one
    merged: tuple[int, int] | None = None
    #: steps were moved along the axis (reversed, shifted, padded): a mask passed
    #: through unchanged no longer lines up
    moved: bool = False


@dataclass(frozen=True, slots=True)
class State:
    pads: Mapping[int, Pad] = field(default_factory=dict)
    tainted: bool = False
    #: the tensor is the mask (True at valid positions: +1) or its inverse (-1),
    #: or a large negative bias at padded positions ("neg")
    mask: str = ""
    mask_axes: Mapping[int, str] = field(default_factory=dict)  # axis -> side
    count: bool = False  # a sum of the mask: can be 0
    data: bool = False  # derived from an input (not only from weights and constants)
    absolute: bool = False
    masked_mean: bool = False
    unknown: bool = False


#: A tensor that holds no padding: weights, constants, shapes.
CLEAN = State()


def merge_flags(states: Iterable[State]) -> dict[str, bool]:
    """The flags an operation's output inherits from all its inputs."""
    states = list(states)
    return dict(tainted=any(s.tainted for s in states), data=any(s.data for s in states),
                absolute=any(s.absolute for s in states),
                masked_mean=any(s.masked_mean for s in states),
                unknown=any(s.unknown for s in states))


def first_axis(state: State) -> int | None:
    """The lowest padded axis of a tensor (None: it holds no padding)."""
    return min(state.pads) if state.pads else None
