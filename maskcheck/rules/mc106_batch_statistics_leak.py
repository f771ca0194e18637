from __future__ import annotations

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class BatchStatisticsLeak(Rule):
    """A layer computes statistics across batch or time over padded positions in training.

    Why is this bad?
        BatchNormalization without a mask averages padded steps into its mean
        and variance, so the amount of padding in a batch shifts every valid
        output during training and the moving statistics used at inference.
    """

    code = "MC106"
    name = "batch-statistics-leak"
    severity = Severity.ERROR
    message = ("Layer {layer!r} ({layer_class}) computes statistics over padded axis {axis} "
               "(padding from {source!r}) during training.")
    fix = "Keep the mask attached to {layer!r}'s input (BatchNormalization then skips padded steps) or use LayerNormalization."

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.BatchNormalization()(h)
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None, 4))
        y = keras.layers.BatchNormalization(name="bn")(x)
    """, at="bn"),)
