from __future__ import annotations

from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc102_unmasked_mixing import UnmaskedMixing
from maskcheck.rules.mc105_false_propagation import FalsePropagation


class PadLengthSensitivity(Rule):
    """Valid outputs change when only the amount of padding changes.

    Why is this bad?
        Under left padding, absolute position embeddings or a state carried
        over padded steps make the prediction depend on the batch's longest
        sequence, so the same input scores differently in different batches.
    """

    code = "MC304"
    name = "pad-length-sensitivity"
    severity = Severity.WARNING
    cause = "values"
    engine = "dynamic"
    message = ("Valid outputs change by up to {max_abs_diff:.3g} when {extra} more padded "
               "steps are added ({padding}-padding), starting at {layer!r} ({layer_class}).")
    fix = "Use post-padding, positions relative to the first valid step, or keep the mask up to {layer!r}."

    programs = ("inference",)
    covers = "amount"
    confirms = (UnmaskedMixing, FalsePropagation)
    reclassifies = (UnmaskedMixing,)

    def probe(self, ctx: Any) -> Iterator[Any]:
        """Layers whose valid outputs change with the amount of padding."""
        for measured in ctx.pad_amount:
            yield self.result(measured.leak, measured.fields)

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(8)(h)
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None, 4))
        # trained biases: the state drifts over zero-padded steps
        h = keras.layers.LSTM(8, return_sequences=True, bias_initializer="random_normal",
                              name="lstm")(x)
        y = keras.layers.Dense(1)(h)
    """, at="lstm"),)
