from __future__ import annotations

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class PaddingValueCollision(Rule):
    """The padding value is also a real value, so real data gets masked as padding.

    Why is this bad?
        `Masking(mask_value=0.0)` over features where 0.0 is a legitimate value,
        or `Embedding(mask_zero=True)` fed by a lookup layer whose index 0 is the
        OOV token or a real word, silently hides real positions from every
        mask-aware layer.
    """

    code = "MC107"
    name = "padding-value-collision"
    severity = Severity.WARNING
    message = ("Layer {layer!r} ({layer_class}) treats {value!r} as padding, but {reason}.")
    fix = "Reserve a value for padding that real data never take (e.g. mask_token in the lookup layer)."

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int64")
        ids = keras.layers.IntegerLookup(vocabulary=[7, 8, 9], mask_token=0)(x)
        y = keras.layers.Embedding(5, 4, mask_zero=True)(ids)
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int64")
        ids = keras.layers.IntegerLookup(vocabulary=[7, 8, 9], mask_token=None)(x)
        y = keras.layers.Embedding(5, 4, mask_zero=True, name="emb")(ids)
    """, at="emb"),)
