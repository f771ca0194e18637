from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid, fix_class
from maskcheck.rules.remedies import mask_cause, supply

_SCOPES = {"batch": "across the batch and padded axis {axis}",
           "sample": "within each sample over padded axis {axis}"}
_FIXES = {
    "BatchNormalization": ("{supply}; with a mask, Keras 3 BatchNormalization leaves padded "
                           "steps out of its statistics. Or use LayerNormalization"),
    "GroupNormalization": "use LayerNormalization, which normalizes each position on its own",
}
_DEFAULT_FIX = "compute the statistics over valid positions only (weight them by the mask)"


class BatchStatisticsLeak(Rule):
    """A layer computes statistics across batch or time over padded positions in training.

    Why is this bad?
        BatchNormalization without a mask averages padded steps into its mean
        and variance, so the amount of padding in a batch shifts every valid
        output during training (one sample's padding changes another sample's
        outputs) and skews the moving statistics used at inference.
        GroupNormalization and per-image contrast layers do the same within a
        sample.
    """

    code = "MC106"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "BatchNormalization", "scope": "across the batch and padded axis 1", "source": "frames", "mask_clause": " with no mask"}
    fix_explained = ("Give the layer a mask (Keras 3 BatchNormalization then leaves padded steps "
                     "out of its statistics): keep one made upstream flowing, or create it "
                     "(Embedding(mask_zero=True), Masking(mask_value=...)) where none exists; "
                     "or normalize per position (LayerNormalization).")
    name = "batch-statistics-leak"
    severity = Severity.ERROR
    cause = "training"
    message = ("Layer {layer!r} ({layer_class}) computes statistics {scope} (padding from "
               "{source!r}){mask_clause}, so padded positions shift valid outputs in training.")
    fix = "Leave padded positions out of the statistics of {layer!r}: {hint}."
    claims = "training"

    @classmethod
    def kept_because(cls, finding: Finding, amount: bool) -> str:
        if amount:
            return super().kept_because(finding, amount)
        return "the layer's statistics include padded positions in training by construction"

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.BatchNormalization()(h)
    """), Valid("""
        x = keras.Input((12, 4))
        y = keras.layers.BatchNormalization()(x)
    """))
    INVALID = (Invalid("""
        x = keras.Input((None, 4))
        y = keras.layers.BatchNormalization(name="bn")(x)
    """, at="bn"), Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = keras.layers.Conv1D(8, 1)(h)
        y = keras.layers.BatchNormalization(name="bn_after_conv")(h)
    """, at="bn_after_conv"), Invalid("""
        x = keras.Input((None, None, 3))
        y = keras.layers.GroupNormalization(groups=1, name="gn")(x)
    """, at="gn"))

    def check(self, graph, flow) -> Iterator[Finding]:
        for event in flow.stats:
            node = event.node
            cls = fix_class(node, _FIXES)
            mask_clause = (f" and ignores the mask from {event.mask_arrived!r}"
                           if event.mask_arrived else " with no mask")
            yield self.finding(node, scope=_SCOPES[event.scope].format(axis=event.axis.axis),
                               source=event.axis.source, mask_clause=mask_clause,
                               hint=_FIXES.get(cls, _DEFAULT_FIX).format(
                                   supply=supply(mask_cause(graph, flow, node), node.name)),
                               evidence={"axis": event.axis.axis, "scope": event.scope,
                                         "padding_source": event.axis.source})
