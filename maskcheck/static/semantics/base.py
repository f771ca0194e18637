"""The value a semantics table row holds, and what a row says about one axis.

`LayerSemantics` is the row; `acted_axes` and `effect_on_axis` read it for
an input of a given rank. Both tables (`keras`, `keras_hub`) are built from
these values; this module imports neither keras nor keras_hub.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

POINTWISE, CAUSAL, MIXING, REDUCING = "pointwise", "causal", "mixing", "reducing"
#: Looks only forwards along the axis (x[t], x[t + 1]): safe under pre-padding, a
#: leak under post-padding.
ANTICAUSAL = "anticausal"
SPATIAL, TIME, AXIS, ALL, NONE, LAST = "spatial", "time", "axis", "all", "none", "last"


@dataclass(frozen=True, slots=True)
class LayerSemantics:
    along: str = POINTWISE
    acts_on: str = SPATIAL
    mixes_features: bool = False
    uses_mask: bool = False
    propagates: bool = False
    generates: bool = False
    batch_stats: bool = False
    sample_stats: bool = False
    #: the time length of the output may differ from the input's
    changes_length: bool = False
    #: the layer broadcasts a (batch, time) mask against its whole input (Softmax)
    broadcasts_mask: bool = False
    #: the layer adds positions counted from the start of the axis (absolute
    #: position embeddings): under pre-padding valid steps get other positions
    absolute_positions: bool = False
    #: a mean divided by the mask's sum (masked GlobalAveragePooling1D): 0/0 when
    #: a sample is fully padded
    masked_mean: bool = False
    #: the layer attaches its mask at run time although Keras shows none on the
    #: symbolic graph (keras-hub embeddings): trust the table over the graph
    mask_at_runtime: bool = False
    #: the output runs backwards in time (an RNN with go_backwards and
    #: return_sequences): it reads the sequence from its end, the padding side
    #: swaps, and a mask passed on unchanged no longer lines up
    reverses: bool = False
    #: False for classes missing from the table: their semantics are assumed
    known: bool = True

    @property
    def is_pointwise(self) -> bool:
        return self.along == POINTWISE and not self.mixes_features


def rows(semantics: LayerSemantics, *names: str) -> dict[str, LayerSemantics]:
    """Table rows giving every class in `names` the same `semantics`."""
    return {name: semantics for name in names}


def acted_axes(sem: LayerSemantics, config: Mapping[str, object], rank: int) -> frozenset[int]:
    """The axes (of an input of `rank`) along which `sem.along` applies."""
    if sem.acts_on == NONE or rank < 2:
        axes: set[int] = set()
    elif sem.acts_on == TIME:
        axes = {1}
    elif sem.acts_on == ALL:
        axes = set(range(1, rank))
    elif sem.acts_on == SPATIAL:
        axes = set(range(1, max(rank - 1, 2)))
    else:  # AXIS
        raw = config.get("axis", config.get("axes", -1))
        if raw is None:
            axes = set(range(1, rank))
        else:
            values = raw if isinstance(raw, (list, tuple)) else (raw,)
            axes = {v % rank for v in values if isinstance(v, int) and rank}
    if sem.mixes_features and rank >= 2:
        axes.add(rank - 1)
    return frozenset(axes)


def effect_on_axis(sem: LayerSemantics, config: Mapping[str, object], axis: int,
                   rank: int) -> str:
    """What the layer does along one padded `axis` of an input of `rank`."""
    axes = acted_axes(sem, config, rank)
    if axis not in axes:
        return POINTWISE
    if sem.mixes_features and axis == rank - 1 and not (
            sem.acts_on in (SPATIAL, ALL, TIME) and axis in acted_axes(
                replace(sem, mixes_features=False), config, rank)):
        return MIXING  # a padded axis that became the feature axis is mixed
    return sem.along
