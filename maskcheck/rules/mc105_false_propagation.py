from __future__ import annotations

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class FalsePropagation(Rule):
    """A layer passes the mask through unchanged yet mixes values along the padded axis.

    Why is this bad?
        `supports_masking = True` tells Keras the layer is position-wise. A
        custom layer that also smooths or attends over time then hands a mask
        downstream that claims padded positions are untouched while valid
        positions already hold padding values.
    """

    code = "MC105"
    name = "false-propagation"
    severity = Severity.ERROR
    message = ("Layer {layer!r} ({layer_class}) propagates the mask from {source!r} unchanged "
               "but mixes values along padded axis {axis}.")
    fix = "Apply the mask inside {layer!r}.call (take a `mask` argument) or stop claiming supports_masking."

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.GroupNormalization(groups=1, axis=-1)(keras.layers.Dense(8)(h))
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.GroupNormalization(groups=1, axis=1, name="groupnorm_time")(h)
    """, at="groupnorm_time"),)
