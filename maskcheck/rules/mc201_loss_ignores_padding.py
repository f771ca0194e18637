from __future__ import annotations

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class LossIgnoresPadding(Rule):
    """A compiled loss receives an output with a padded axis but no mask, ignore_class or sample weights.

    Why is this bad?
        Padded label positions are counted in the loss: the model learns to
        predict padding, and sequences with more padding weigh differently.
    """

    code = "MC201"
    name = "loss-ignores-padding"
    severity = Severity.ERROR
    message = ("Loss {loss!r} on output {layer!r} averages over padded axis {axis} "
               "without a mask, ignore_class or sample weights.")
    fix = "Keep the mask attached to output {layer!r}, pass ignore_class=<pad label>, or pass sample_weight that zeroes padded steps."

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
        h = keras.layers.Conv1D(8, 1)(h)
        y = keras.layers.Dense(5, name="tags")(h)
        model = keras.Model(x, y)
        model.compile(loss="sparse_categorical_crossentropy")
    """, at="tags"),)
