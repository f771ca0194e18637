from __future__ import annotations

from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid


class PadValueInData(Rule):
    """The pad value occurs inside the valid part of a sample.

    Why is this bad?
        `Embedding(mask_zero=True)` masks every 0 token and `Masking` every
        step equal to `mask_value`, wherever they are: a real 0 token in the
        middle of a sentence (a vocabulary that uses index 0 for a word), or a
        real all-zero frame, is then skipped as if it were padding. The data
        and the model disagree about what padding is.
    """

    code = "MC404"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"input": "input_layer", "pad_value": 0, "count": 1, "sample": 0}
    name = "pad-value-in-data"
    severity = Severity.WARNING
    engine = "data"
    message = ("Input {input!r} holds the pad value {pad_value} inside the valid part of "
               "{count} step(s) (first: sample {sample}), so {layer!r} treats those real steps "
               "as padding.")
    fix = ("Reserve the pad value for padding: shift token ids by one (index 0 = padding, as "
           "TextVectorization does), or pick a mask_value that real data never holds.")

    programs = ("data",)

    def probe(self, ctx: Any) -> Iterator[Any]:
        """The pad value inside a sample's valid block (of an input whose padding the model
        reads from values)."""
        from maskcheck.dynamic.datameasure import pad_inside

        for measured in pad_inside(ctx.model, ctx.plan, ctx.prep, ctx.batch):
            yield self.result(measured.leak, measured.fields)

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
        y = keras.layers.Dense(3)(keras.layers.LSTM(8)(h))
        model = keras.Model(x, y)
        data = np.array([[5, 7, 9, 0, 0], [3, 4, 5, 6, 7], [2, 0, 0, 0, 0]])
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(50, 8, mask_zero=True, name="embedding")(x)
        y = keras.layers.Dense(3)(keras.layers.LSTM(8)(h))
        model = keras.Model(x, y)
        data = np.array([[5, 0, 9, 0, 0], [3, 4, 5, 6, 7], [2, 0, 0, 0, 0]])  # a real 0 token
    """, at="embedding"),)
