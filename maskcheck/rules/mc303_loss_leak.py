from __future__ import annotations

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class LossLeak(Rule):
    """The loss or its gradients change when padded labels or padded inputs change.

    Why is this bad?
        What the model learns then depends on padding: it is trained to
        predict the pad label, or its gradients carry noise from padded steps.
    """

    code = "MC303"
    name = "loss-leak"
    severity = Severity.ERROR
    engine = "dynamic"
    message = ("The loss changes by {loss_diff:.3g} when only padded {what} change, at output {layer!r}.")
    fix = "Keep the mask attached to output {layer!r}, or pass sample weights or ignore_class for padded steps."

    @classmethod
    def implemented(cls) -> bool:
        return True  # checked by the dynamic engine (maskcheck.dynamic.findings)

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5)(keras.layers.LSTM(8, return_sequences=True)(h))
        model = keras.Model(x, y)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5, name="tags")(keras.layers.Conv1D(8, 1)(h))
        model = keras.Model(x, y)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """, at="tags"),)
