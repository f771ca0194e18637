from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid

_FIXES = {
    "Conv1D": ("use Conv1D(padding='causal') with post-padding, or multiply the input by "
               "the mask and pool with a masked pooling layer"),
    "Conv2D": ("crop or resize images to one size, or multiply by a padding mask before "
               "{layer!r} and pool only over valid pixels"),
    "GlobalMaxPooling1D": ("use GlobalAveragePooling1D, which consumes the mask, or set "
                           "padded steps to a large negative value before pooling"),
    "GlobalAveragePooling1D": "keep a mask attached to its input so it averages valid steps only",
    "Flatten": "pool over time with a masked pooling layer instead of flattening padded steps",
    "MultiHeadAttention": ("pass attention_mask (or keep the Embedding mask attached to "
                           "query and value) so attention skips padded keys"),
}
_DEFAULT_FIX = "keep a mask attached to {layer!r}'s input, or use a mask-aware layer there"
_CAUSAL_FIX = ("it only looks backwards, which is safe under post-padding alone: pad "
               "sequences at the end, or pass a mask")
_SIDES = {"post": "post-padding", "pre": "pre-padding", "both": "post- or pre-padding"}


class UnmaskedMixing(Rule):
    """A layer mixes values along a padded axis while no mask tells it where padding is.

    Why is this bad?
        Convolutions, pooling, Flatten, attention and RNNs combine neighbouring
        positions. Without a mask, valid positions near the padding (or the whole
        pooled result) depend on the padding values and on how much padding
        there is, so the same sequence gets different predictions in different
        batches. Causal layers are safe only when padding comes after the data.
    """

    code = "MC102"
    name = "unmasked-mixing"
    severity = Severity.ERROR
    message = ("Layer {layer!r} ({layer_class}) mixes values along padded axis {axis} "
               "(padding from {source!r}, {side}) {mask_clause}, so valid positions depend "
               "on padding.")
    fix = "In {layer!r}: {hint}."

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.GlobalAveragePooling1D()(h)
    """), Valid("""
        x = keras.Input((40,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = keras.layers.Bidirectional(keras.layers.LSTM(8))(h)
        y = keras.layers.Dense(1)(h)
    """))
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = keras.layers.Conv1D(8, 3, padding="same", name="conv")(h)
        y = keras.layers.GlobalMaxPooling1D()(h)
    """, at="conv"), Invalid("""
        x = keras.Input((None, 4))
        h = keras.layers.Conv1D(8, 3, name="conv")(x)
        y = keras.layers.GlobalAveragePooling1D()(h)
    """, at="conv"), Invalid("""
        x = keras.Input((None, None, 3))
        h = keras.layers.Conv2D(8, 3, name="conv2d")(x)
        y = keras.layers.GlobalAveragePooling2D()(h)
    """, at="conv2d"))

    def check(self, graph, flow) -> Iterator[Finding]:
        for event in flow.mixing:
            node = event.node
            mask_clause = (f"and ignores the mask from {event.mask_arrived!r} that reaches it"
                           if event.mask_arrived else "with no mask")
            template = _CAUSAL_FIX if event.causal else _FIXES.get(node.class_name, _DEFAULT_FIX)
            yield self.finding(node, axis=event.axis.axis, source=event.axis.source,
                               side=_SIDES[event.axis.side], mask_clause=mask_clause,
                               hint=template.format(layer=node.name),
                               evidence={"axis": event.axis.axis,
                                         "padding_source": event.axis.source,
                                         "padding": event.axis.side})
