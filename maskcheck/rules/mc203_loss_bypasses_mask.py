from __future__ import annotations

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class LossBypassesMask(Rule):
    """A custom loss, `compute_loss` or `train_step` reduces per-position losses without the mask.

    Why is this bad?
        Keras applies the output mask inside its own loss wrapper. A Loss that
        overrides `__call__`, or a train_step that calls the loss function
        directly, averages padded positions back in while the model looks masked.
    """

    code = "MC203"
    name = "loss-bypasses-mask"
    severity = Severity.ERROR
    engine = "dynamic"
    message = ("The loss of output {layer!r} changes when padded labels change although "
               "the output carries a mask: {loss!r} bypasses it.")
    fix = "Implement Loss.call (not __call__) so Keras applies the mask, or multiply per-position losses by the mask yourself."

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
        class PlainLoss(keras.losses.Loss):
            def __call__(self, y_true, y_pred, sample_weight=None):
                return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
                    y_true, y_pred, from_logits=True))
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5, name="tags")(keras.layers.LSTM(8, return_sequences=True)(h))
        model = keras.Model(x, y)
        model.compile(loss=PlainLoss())
    """, at="tags"),)
