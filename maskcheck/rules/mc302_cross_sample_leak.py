from __future__ import annotations

from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc106_batch_statistics_leak import BatchStatisticsLeak


class CrossSampleLeak(Rule):
    """One sample's outputs change when only another sample's padding changes.

    Why is this bad?
        Training-mode batch statistics mix samples: a long padded neighbour
        shifts the normalization of every other sample in the batch.
    """

    code = "MC302"
    name = "cross-sample-leak"
    severity = Severity.ERROR
    cause = "training"
    engine = "dynamic"
    message = ("Sample {sample}'s valid outputs change by up to {max_abs_diff:.3g} when only "
               "sample {other}'s padding changes, starting at {layer!r} ({layer_class}).")
    fix = "Keep the mask attached to {layer!r} or normalize per sample (LayerNormalization)."

    programs = ("training",)
    covers = "training"
    confirms = (BatchStatisticsLeak,)

    def probe(self, ctx: Any) -> Iterator[Any]:
        """Layers where, in training, one sample's padding changes another's valid outputs."""
        for measured in ctx.cross_sample:
            yield self.result(measured.leak, measured.fields)

    VALID = (Valid("""
        x = keras.Input((None, 4))
        y = keras.layers.LayerNormalization()(keras.layers.Masking()(x))
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None, 4))
        y = keras.layers.BatchNormalization(name="bn")(x)
    """, at="bn"),)
