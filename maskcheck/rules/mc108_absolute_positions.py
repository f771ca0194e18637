from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.static.dataflow import BOTH


class AbsolutePositions(Rule):
    """A layer adds absolute positions along an axis that may be padded on the left.

    Why is this bad?
        A learned or sinusoidal position embedding numbers the steps from the
        start of the axis. Under pre-padding (`pad_sequences`' default) the
        first real token sits at position `T - length`, so the same sequence
        gets other position vectors with every amount of padding and its valid
        outputs change (keras-hub#571: BERT- and GPT-2-style models). Rotary,
        ALiBi and relative-bucket positions depend on distances only and are
        safe. Reported as info while the padding side is unknown, as a warning
        once it is known to be pre.
    """

    code = "MC108"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "Positions", "axis": 1, "side": "pre-padded"}
    name = "absolute-positions"
    severity = Severity.WARNING
    cause = "values"
    message = ("{layer!r} ({layer_class}) adds absolute positions along axis {axis}, which is "
               "{side}: valid steps get positions that depend on the amount of padding.")
    fix = ("Pad on the right (pad_sequences(..., padding='post')), or compute positions from "
           "the mask (cumsum of the mask minus 1) instead of from the start of the axis.")
    claims = "amount"

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4, return_sequences=True)(h)
    """), Valid("""
        class Positions(keras.layers.Layer):
            def build(self, shape):
                self.table = self.add_weight((64, shape[-1]))
            def call(self, x):
                return x + self.table[None, :keras.ops.shape(x)[1]]
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8)(x)
        y = Positions(name="positions")(h)
        model = keras.Model(x, y)
        padding = "post"
    """))
    INVALID = (Invalid("""
        class Positions(keras.layers.Layer):
            def build(self, shape):
                self.table = self.add_weight((64, shape[-1]))
            def call(self, x):
                return x + self.table[None, :keras.ops.shape(x)[1]]
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8)(x)
        y = Positions(name="positions")(h)
        model = keras.Model(x, y)
        padding = "pre"
    """, at="positions"),)

    def check(self, graph, flow) -> Iterator[Finding]:
        seen: set[int] = set()
        for event in flow.absolute:
            if event.node.index in seen:
                continue
            seen.add(event.node.index)
            unknown_side = event.axis.side == BOTH
            side = ("padded on an unknown side (pre-padding is assumed possible)" if unknown_side
                    else "pre-padded")
            yield self.finding(event.node, axis=event.axis.axis, side=side,
                               severity=Severity.INFO if unknown_side else None,
                               evidence={"axis": event.axis.axis, "padding_side": event.axis.side,
                                         "origin": event.axis.origin})
