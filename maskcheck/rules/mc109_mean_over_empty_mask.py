from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid


class MeanOverEmptyMask(Rule):
    """A masked mean divides by the mask's sum, which is 0 for a fully padded sample.

    Why is this bad?
        Masked `GlobalAveragePooling1D` (and any `sum(x * mask) / sum(mask)`)
        computes 0 / 0 = NaN for a sample with no valid step: an empty
        utterance, a document whose tokens were all filtered out, the padding
        rows of a last partial batch. One NaN then poisons the loss and every
        weight it reaches (keras#18152). MC305 measures it with probes; this
        rule sees it in the graph.
    """

    code = "MC109"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "GlobalAveragePooling1D", "source": "embedding"}
    name = "mean-over-empty-mask"
    severity = Severity.WARNING
    cause = "empty"
    message = ("{layer!r} ({layer_class}) divides by the sum of the mask from {source!r}; a "
               "sample with no valid step gives 0/0 = NaN.")
    fix = ("Guard the denominator (keras.ops.maximum(ops.sum(mask), 1) or ops.divide_no_nan), "
           "or drop fully padded samples before the model.")
    #: Decision: with real data, a 0/0 masked mean is reported only when the data hold a
    #: fully padded sample (MC305 then measures the NaN too)
    void_when = ("data_without_empty_sample",)

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.GlobalMaxPooling1D()(keras.layers.LSTM(4, return_sequences=True)(h))
    """), Valid("""
        class SafeMean(keras.layers.Layer):
            def call(self, x, mask=None):
                m = keras.ops.cast(mask, x.dtype)[..., None]
                return keras.ops.sum(x * m, axis=1) / keras.ops.maximum(keras.ops.sum(m, axis=1), 1.0)
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = SafeMean(name="mean")(h)
    """))
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    """, at="pool"), Invalid("""
        class MaskedMean(keras.layers.Layer):
            def call(self, x, mask=None):
                m = keras.ops.cast(mask, x.dtype)[..., None]
                return keras.ops.sum(x * m, axis=1) / keras.ops.sum(m, axis=1)
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = MaskedMean(name="mean")(h)
    """, at="mean"))

    def check(self, graph, flow) -> Iterator[Finding]:
        seen: set[int] = set()
        for event in flow.means:
            if event.node.index in seen:
                continue
            seen.add(event.node.index)
            yield self.finding(event.node, source=event.mask_source,
                               evidence={"axis": event.axis.axis, "mask_source": event.mask_source})
