from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.maskflow import mask_needed_after
from maskcheck.rule import Invalid, Rule, Valid


class MaskDropped(Rule):
    """A layer receives a mask and neither uses nor passes it on, though later layers need it.

    Why is this bad?
        Keras prints at most one anonymous UserWarning and carries on. Every layer
        after the drop (recurrent layers, attention, pooling, the loss) then treats
        padding as data, and the model still trains, just on the wrong values.
    """

    code = "MC101"
    name = "mask-dropped"
    severity = Severity.WARNING
    message = ("Layer {layer!r} ({layer_class}) receives the mask created by {source!r} "
               "but neither consumes nor propagates it; later layers see padding as data.")
    fix = ("Consume the mask before {layer!r} (e.g. with GlobalAveragePooling1D or a "
           "masked RNN), or replace {layer!r} by a layer that supports masking.")

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = keras.layers.LSTM(8, return_sequences=True)(h)
        y = keras.layers.Dense(3)(h)
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = keras.layers.Conv1D(8, 3, padding="same", name="conv")(h)
        h = keras.layers.LSTM(8, return_sequences=True)(h)
        y = keras.layers.Dense(3)(h)
    """, at="conv"),)

    def check(self, graph, flow) -> Iterator[Finding]:
        for event in flow.drops:
            if mask_needed_after(graph, flow, event.node):
                yield self.finding(event.node, source=event.mask_source,
                                   evidence={"mask_source": event.mask_source,
                                             "axis": event.axis.axis})
