from __future__ import annotations

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class MaskShapeMismatch(Rule):
    """A mask does not line up with the padded axes of the tensor it is attached to.

    Why is this bad?
        A layer that changes the time length but passes the mask through, a
        Softmax over axis 1 receiving a (batch, time) mask for a (batch, time,
        features) tensor, or merged tensors whose masks disagree: Keras either
        broadcasts the mask onto the wrong positions or fails only at run time.
    """

    code = "MC103"
    name = "mask-shape-mismatch"
    severity = Severity.ERROR
    message = ("The mask reaching {layer!r} ({layer_class}) has shape {mask_shape} but its "
               "input has padded axes {axes}; masked positions no longer match padding.")
    fix = "Recompute the mask after {layer!r} (e.g. with a Masking layer) or keep the time length unchanged."

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Softmax(axis=-1)(h)
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Softmax(axis=1, name="softmax_time")(h)
    """, at="softmax_time"),)
