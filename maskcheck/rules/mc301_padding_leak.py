from __future__ import annotations

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class PaddingLeak(Rule):
    """Valid outputs change when padded values change while the mask is held fixed.

    Why is this bad?
        This is the leak itself, measured: the prediction for a real position
        depends on what happens to sit in the padding.
    """

    code = "MC301"
    name = "padding-leak"
    severity = Severity.ERROR
    engine = "dynamic"
    message = ("Valid outputs change by up to {max_abs_diff:.3g} when only padded values change; "
               "the leak starts at {layer!r} ({layer_class}).")
    fix = "Make {layer!r} mask-aware or keep the mask attached up to it (see MC101/MC102 for the cause)."

    @classmethod
    def implemented(cls) -> bool:
        return True  # checked by the dynamic engine (maskcheck.dynamic.findings)

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(3)(keras.layers.LSTM(8, return_sequences=True)(h))
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(3)(keras.layers.Conv1D(8, 3, padding="same", name="conv")(h))
    """, at="conv"),)
