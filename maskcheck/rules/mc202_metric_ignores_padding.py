from __future__ import annotations

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class MetricIgnoresPadding(Rule):
    """A compiled metric receives an output with a padded axis but no mask or sample weights.

    Why is this bad?
        Accuracy over padded positions rewards predicting the pad label: a
        tagger that is right on padding looks better than it is.
    """

    code = "MC202"
    name = "metric-ignores-padding"
    severity = Severity.WARNING
    message = "Metric {metric!r} on output {layer!r} counts padded positions along axis {axis}."
    fix = "Use weighted_metrics with sample weights that zero padded steps, or keep the mask attached to {layer!r}."

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5)(h)
        model = keras.Model(x, y)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None, 4))
        y = keras.layers.Dense(5, name="tags")(x)
        model = keras.Model(x, y)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    """, at="tags"),)
