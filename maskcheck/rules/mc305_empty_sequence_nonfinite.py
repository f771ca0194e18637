from __future__ import annotations

from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc109_mean_over_empty_mask import MeanOverEmptyMask


class EmptySequenceNonfinite(Rule):
    """A fully padded sample makes an output or the loss NaN or Inf, or makes the model raise.

    Why is this bad?
        Empty sequences happen in real batches (an empty document, a filtered
        utterance). A masked mean over zero steps divides by zero
        (GlobalAveragePooling1D returns NaN in Keras 3.15), and one NaN poisons
        the whole batch's gradients.
    """

    code = "MC305"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "GlobalAveragePooling1D", "what": "NaN"}
    name = "empty-sequence-nonfinite"
    severity = Severity.WARNING
    cause = "empty"
    engine = "dynamic"
    message = "A fully padded sample gives {what} at {layer!r} ({layer_class})."
    fix = "Guard the reduction in {layer!r} against zero valid steps (e.g. divide by max(count, 1)) or drop empty samples."
    fix_explained = ("Guard the reduction where the output or loss goes NaN against zero valid "
                     "steps (divide by max(count, 1), or keras.ops.divide_no_nan), or drop "
                     "fully padded samples before the model.")

    programs = ("inference", "loss")
    needs = ("loss-empty",)
    confirms = (MeanOverEmptyMask,)

    def probe(self, ctx: Any) -> Iterator[Any]:
        """A fully padded sample that makes the forward pass raise or its outputs non-finite
        (inference), or its loss non-finite (loss)."""
        if ctx.program == "inference":
            measured = ctx.raised_on_empty or ctx.nonfinite
        else:
            measured = ctx.loss.empty
        if measured is not None:
            yield self.result(measured.leak, measured.fields)

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(8)(h)
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    """, at="pool"),)
