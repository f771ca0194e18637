from __future__ import annotations

from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class SampleWeightMisaligned(Rule):
    """Sample weights whose zeros do not line up with the padding, or per-step weights
    for an output without a time axis.

    Why is this bad?
        Per-step sample weights are the usual way to keep padded steps out
        of a loss: they work only if every padded step weighs 0. Weights
        computed from the wrong side (post-padding weights on pre-padded data)
        or from another length count padding and drop real steps instead, and
        per-step weights for a per-sample output broadcast into nonsense.
    """

    code = "MC403"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"detail": "3 padded step(s) have a non-zero weight (sample 0, step 0)"}
    name = "sample-weight-misaligned"
    severity = Severity.WARNING
    cause = "loss"
    engine = "data"
    message = ("Sample weights for output {layer!r} do not line up with the data's padding: "
               "{detail}.")
    fix = ("Build the weights from the same mask as the inputs, e.g. sample_weight = "
           "(tokens != 0).astype('float32'), with the output's shape (per step only for "
           "per-step outputs).")

    programs = ("data",)

    def probe(self, ctx: Any) -> Iterator[Any]:
        """Per-step weights non-zero on padding, or for an output without a time axis."""
        from maskcheck.dynamic.datameasure import weights_misaligned

        for measured in weights_misaligned(ctx.model, ctx.plan, ctx.batch, ctx.run, ctx.rows):
            yield self.result(measured.leak, measured.fields)

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        y = keras.layers.Dense(4)(keras.layers.Embedding(50, 8)(x))
        model = keras.Model(x, y)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        tokens = np.array([[5, 7, 9, 0, 0], [3, 4, 5, 6, 7], [2, 0, 0, 0, 0]])
        data = (tokens, tokens % 4, (tokens != 0).astype("float32"))
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        y = keras.layers.Dense(4, name="tags")(keras.layers.Embedding(50, 8)(x))
        model = keras.Model(x, y)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        tokens = np.array([[0, 0, 5, 7, 9], [3, 4, 5, 6, 7], [0, 0, 0, 0, 2]])  # pre-padded
        weights = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], "float32")
        data = (tokens, tokens % 4, weights)  # weights built for post-padding
    """, at="tags"),)
