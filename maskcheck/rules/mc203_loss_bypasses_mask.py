from __future__ import annotations

from typing import Any, Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc201_loss_ignores_padding import (LossIgnoresPadding, loss_in_user_code,
                                                       padded_outputs)


class LossBypassesMask(Rule):
    """A custom loss, `compute_loss` or `train_step` reduces per-position losses without the mask.

    Why is this bad?
        Keras applies the output mask inside its own loss wrapper. A Loss that
        overrides `__call__`, a `compute_loss` that reduces the per-position
        losses itself, or a train_step that calls the loss function directly,
        averages padded positions back in while the model looks masked. The
        static engine reads a Loss's `__call__` and a model's `compute_loss`
        op by op (no data); the probes also cover `train_step`.
    """

    code = "MC203"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"loss": "PlainLoss"}
    name = "loss-bypasses-mask"
    severity = Severity.ERROR
    cause = "loss"
    engine = "dynamic"
    also = ("static",)
    message = ("The loss of output {layer!r} changes when padded labels change although "
               "the output carries a mask: {loss!r} bypasses it.")
    fix = "Implement Loss.call (not __call__) so Keras applies the mask, or multiply per-position losses by the mask yourself."

    static_message = ("{loss!r} reduces the per-position losses of output {layer!r} over padded "
                      "axis {axis} without the mask that output carries (read from its code).")

    claims = "loss"
    programs = ("loss",)
    needs = ("loss-leaks",)
    covers = "loss"
    confirms = (LossIgnoresPadding,)

    @classmethod
    def is_guess(cls, finding: Finding, user_code: frozenset[str]) -> bool:
        return loss_in_user_code(finding, user_code)

    def probe(self, ctx: Any) -> Iterator[Any]:
        """Padded labels of an output that carries a mask move the loss (the loss bypasses
        the mask), or a custom train_step's loss follows padded labels."""
        outcome = ctx.loss
        measured = outcome.leak if outcome.bypasses_mask else outcome.train_step
        if measured is not None:
            yield self.result(measured.leak, measured.fields)

    def check(self, graph, flow) -> Iterator[Finding]:
        for index, node, axis, state in padded_outputs(graph, flow):
            if state.mask is None:
                continue  # no mask to bypass: MC201's case
            for loss, bypasses in graph.loss_readings.get(index, ()):
                if bypasses:
                    yield self.finding(node, loss=loss, axis=axis.axis, message=self.static_message,
                                       evidence={"output": graph.output_names[index], "loss": loss,
                                                 "axis": axis.axis, "read": "op-level"})

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5)(keras.layers.LSTM(8, return_sequences=True)(h))
        model = keras.Model(x, y)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """), Valid("""
        class MaskedMeanLoss(keras.losses.Loss):
            def __call__(self, y_true, y_pred, sample_weight=None):
                per_step = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
                mask = keras.ops.cast(y_pred._keras_mask, per_step.dtype)
                return keras.ops.sum(per_step * mask) / keras.ops.maximum(keras.ops.sum(mask), 1.0)
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5, name="tags")(keras.layers.LSTM(8, return_sequences=True)(h))
        model = keras.Model(x, y)
        model.compile(loss=MaskedMeanLoss())
    """))
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
    """, at="tags"), Invalid("""
        class Tagger(keras.Model):
            def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
                return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
                    y, y_pred, from_logits=True))
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5, name="tags")(keras.layers.LSTM(8, return_sequences=True)(h))
        model = Tagger(x, y)
        model.compile(optimizer="adam")
    """, at="tags"))
