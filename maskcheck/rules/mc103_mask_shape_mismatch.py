from __future__ import annotations

from typing import Any, Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid, fix_class

_FIXES = {
    "Softmax": ("use Dense(..., activation='softmax') or keras.ops.softmax on the features: the "
                "Softmax layer broadcasts a (batch, time) mask against the last axes"),
    "MaxPooling1D": "recompute the mask for the pooled length (e.g. a Masking layer after pooling)",
    "AveragePooling1D": "recompute the mask for the pooled length (e.g. a Masking layer after pooling)",
    "Conv1D": "use padding='same' and strides=1 so the time length is unchanged, or recompute the mask",
}
_DEFAULT_FIX = ("recompute the mask after {layer!r} (override compute_mask, or a Masking layer) "
                "so it has the shape of the padded axes, or keep the time length unchanged")


class MaskShapeMismatch(Rule):
    """A mask does not line up with the padded axes of the tensor it is attached to.

    Why is this bad?
        A layer that changes the time length but passes the mask through, a
        Softmax receiving a (batch, time) mask for a (batch, time, features)
        tensor, or merged tensors whose masks disagree: Keras then masks the
        wrong positions, silently when the lengths happen to be equal and with
        a run-time error otherwise.
    """

    code = "MC103"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "Softmax", "source": "embedding", "detail": "Softmax(axis=1) broadcasts the (batch, time) mask against the last axes of its (batch, time, features) input"}
    fix_explained = ("Recompute the mask for what the layer outputs: override compute_mask so it "
                     "shortens, reverses or shifts the mask the way call does the steps, put "
                     "a Masking layer after it, or keep the time length and order unchanged.")
    name = "mask-shape-mismatch"
    severity = Severity.ERROR
    cause = "values"
    message = ("The mask from {source!r} does not line up with the padded axes at {layer!r} "
               "({layer_class}): {detail}.")
    fix = "Make the mask match the padded axes at {layer!r}: {hint}."
    claims = "values"
    programs = ("failure", "loss")

    def probe(self, ctx: Any) -> Iterator[Any]:
        """A model that raises once padding or a mask is present (and not on an unpadded
        batch): where the mask stopped lining up ("failure"); a compiled loss that raises on
        the outputs' masks and computes without them ("loss")."""
        measured = ctx.mask_mismatch if ctx.program == "failure" else ctx.loss.raising
        if measured is not None:
            yield self.result(measured.leak, measured.fields)

    @classmethod
    def kept_because(cls, finding: Finding, amount: bool) -> str:
        return ("the mask no longer lines up with its tensor, so the layers after it read "
                "the wrong steps whatever the weights")

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5, activation="softmax")(h)
    """), Valid("""
        scores = keras.Input((None,))
        mask = keras.Input((None,), dtype="bool", name="mask")
        y = keras.layers.Softmax()(scores, mask=mask)
        model = keras.Model([scores, mask], y)
    """), Valid("""
        class Halve(keras.layers.Layer):
            def call(self, x):
                return x[:, ::2]
            def compute_mask(self, x, mask=None):
                return None if mask is None else mask[:, ::2]
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(Halve(name="halve")(h))
    """), Valid("""
        class Reverse(keras.layers.Layer):
            def call(self, x):
                return keras.ops.flip(x, axis=1)
            def compute_mask(self, x, mask=None):
                return None if mask is None else keras.ops.flip(mask, axis=1)
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(Reverse(name="reverse")(h))
    """), Valid("""
        class Halve(keras.layers.Layer):
            def call(self, x):
                return x[:, ::2]
            def compute_mask(self, x, mask=None):
                return None if mask is None else mask[:, ::2]
        x = keras.Input((20,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(Halve(name="halve")(h))
    """))
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Softmax(axis=1, name="softmax_time")(h)
    """, at="softmax_time"), Invalid("""
        class Downsample(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.supports_masking = True
            def call(self, x):
                return x[:, ::2]
        x = keras.Input((20,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = Downsample(name="downsample")(h)
        y = keras.layers.LSTM(4)(h)
    """, at="downsample"), Invalid("""
        class Reverse(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.supports_masking = True
            def call(self, x):
                return keras.ops.flip(x, axis=1)
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(Reverse(name="reverse")(h))
    """, at="reverse"), Invalid("""
        class ShiftRight(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.supports_masking = True
            def call(self, x):
                return keras.ops.concatenate([keras.ops.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(ShiftRight(name="shift")(h))
    """, at="shift"), Invalid("""
        class Halve(keras.layers.Layer):
            def call(self, x):
                return x[:, ::2]
            def compute_mask(self, x, mask=None):
                return mask
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(Halve(name="halve")(h))
    """, at="halve"))

    @classmethod
    def hint(cls, layer: str, layer_class: str | None, bases: tuple[str, ...] = ()) -> str:
        """The fix hint for a layer of that class (used when a probe names the layer)."""
        name = next((c for c in (layer_class, *bases) if c in _FIXES), None)
        return (_FIXES[name] if name else _DEFAULT_FIX).format(layer=layer)

    def check(self, graph, flow) -> Iterator[Finding]:
        for event in flow.mismatches:
            node = event.node
            cls = fix_class(node, _FIXES)
            hint = _FIXES.get(cls, _DEFAULT_FIX).format(layer=node.name)
            yield self.finding(node, source=event.mask_source, detail=event.detail, hint=hint,
                               evidence={"mask_source": event.mask_source})
