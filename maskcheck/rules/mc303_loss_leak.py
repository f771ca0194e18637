from __future__ import annotations

from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc201_loss_ignores_padding import LossIgnoresPadding
from maskcheck.rules.mc203_loss_bypasses_mask import LossBypassesMask


class LossLeak(Rule):
    """The loss or its gradients change when padded labels or padded inputs change.

    Why is this bad?
        What the model learns then depends on padding: it is trained to
        predict the pad label, or its gradients carry noise from padded steps.
    """

    code = "MC303"
    name = "loss-leak"
    severity = Severity.ERROR
    cause = "loss"
    engine = "dynamic"
    message = ("The loss changes by {loss_diff:.3g} when only padded {what} change, at output {layer!r}.")
    fix = "Keep the mask attached to output {layer!r}, or pass sample weights or ignore_class for padded steps."

    programs = ("loss",)
    needs = ("loss-leaks",)
    covers = "loss"
    confirms = (LossIgnoresPadding,)
    refutes = (LossIgnoresPadding, LossBypassesMask)
    #: the data's per-step weights keep padded steps out of the loss
    void_when = ("weights_cover_padding",)

    def probe(self, ctx: Any) -> Iterator[Any]:
        """Padded labels, inputs or frames that move the loss or its gradients (unless the
        labels moved it through a mask the loss bypasses: MC203)."""
        outcome = ctx.loss
        if outcome.leak is not None and not outcome.bypasses_mask:
            yield self.result(outcome.leak.leak, outcome.leak.fields)

    @classmethod
    def message_values(cls, fields: dict) -> dict:
        what = {"labels": "labels", "inputs": "inputs",
                "frames": "frames (output steps)"}.get(fields.get("what"), "values")
        return {**fields, "what": what}

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
