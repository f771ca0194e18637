from __future__ import annotations

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class CrossSampleLeak(Rule):
    """One sample's outputs change when only another sample's padding changes.

    Why is this bad?
        Training-mode batch statistics mix samples: a long padded neighbour
        shifts the normalization of every other sample in the batch.
    """

    code = "MC302"
    name = "cross-sample-leak"
    severity = Severity.ERROR
    engine = "dynamic"
    message = ("Sample {sample}'s valid outputs change by up to {max_abs_diff:.3g} when only "
               "sample {other}'s padding changes, starting at {layer!r} ({layer_class}).")
    fix = "Keep the mask attached to {layer!r} or normalize per sample (LayerNormalization)."

    @classmethod
    def implemented(cls) -> bool:
        return True  # checked by the dynamic engine (maskcheck.dynamic.findings)

    VALID = (Valid("""
        x = keras.Input((None, 4))
        y = keras.layers.LayerNormalization()(keras.layers.Masking()(x))
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None, 4))
        y = keras.layers.BatchNormalization(name="bn")(x)
    """, at="bn"),)
