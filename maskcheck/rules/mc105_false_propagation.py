from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid, fix_class

_FIXES = {
    "GroupNormalization": ("use LayerNormalization (statistics per position), or GroupNormalization "
                           "on inputs multiplied by the mask with statistics over valid steps only"),
}
_DEFAULT_FIX = ("apply the mask in the call of {layer!r} (take a `mask` argument), or set "
                "supports_masking = False so Keras stops passing the mask on")


class FalsePropagation(Rule):
    """A layer passes the mask through unchanged yet mixes values along the padded axis.

    Why is this bad?
        `supports_masking = True` tells Keras the layer is position-wise.
        GroupNormalization claims it but computes its statistics over padded
        steps, and a custom Conv1D subclass that sets it smooths padding into
        valid steps. Layers downstream trust the mask and look clean, while
        valid positions already hold padding values.
    """

    code = "MC105"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "GroupNormalization", "source": "embedding", "reason": "computes its statistics over the padded axis"}
    fix_explained = ("Make the layer honour the mask it passes on: apply it inside call (take a "
                     "`mask` argument), or set supports_masking = False so Keras stops passing "
                     "it on; for GroupNormalization use LayerNormalization.")
    name = "false-propagation"
    severity = Severity.ERROR
    cause = "values"
    message = ("Layer {layer!r} ({layer_class}) propagates the mask from {source!r} unchanged "
               "but {reason}, so valid positions depend on padding.")
    fix = "Stop {layer!r} from passing on a mask it does not honour: {hint}."
    claims = "values"

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LayerNormalization()(keras.layers.Dense(8)(h))
    """), Valid("""
        x = keras.Input((12, 8))
        y = keras.layers.GroupNormalization(groups=2)(x)
    """), Valid("""
        class RunningTotal(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.supports_masking = True
            def call(self, x):
                return keras.ops.cumsum(x, axis=1)
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(RunningTotal(name="total")(h))
        model = keras.Model(x, y)
        padding = "post"
    """), Valid("""
        class Scale(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.supports_masking = True
            def call(self, x):
                return x * 2.0
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(Scale(name="scale")(h))
    """))
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.GroupNormalization(groups=2, name="groupnorm")(h)
    """, at="groupnorm"), Invalid("""
        class MaskedConv1D(keras.layers.Conv1D):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.supports_masking = True
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = MaskedConv1D(8, 3, padding="same", name="smooth")(h)
        y = keras.layers.LSTM(4)(h)
    """, at="smooth"), Invalid("""
        class RunningTotal(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.supports_masking = True
            def call(self, x):
                return keras.ops.cumsum(x, axis=1)
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(RunningTotal(name="total")(h))
        model = keras.Model(x, y)
        padding = "pre"
    """, at="total"), Invalid("""
        class CentreOverTime(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.supports_masking = True
            def call(self, x):
                return x - keras.ops.mean(x, axis=1, keepdims=True)
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(CentreOverTime(name="centre")(h))
    """, at="centre"), Invalid("""
        class Smooth(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.supports_masking = True
            def call(self, x):
                return (x + keras.ops.roll(x, 1, axis=1) + keras.ops.roll(x, -1, axis=1)) / 3.0
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(Smooth(name="smooth")(h))
    """, at="smooth"))

    @classmethod
    def hint(cls, layer: str, layer_class: str | None, bases: tuple[str, ...] = ()) -> str:
        """The fix hint for a layer of that class (used when a probe names the layer)."""
        name = next((c for c in (layer_class, *bases) if c in _FIXES), None)
        return (_FIXES[name] if name else _DEFAULT_FIX).format(layer=layer)

    def check(self, graph, flow) -> Iterator[Finding]:
        for event in flow.propagations:
            node = event.node
            cls = fix_class(node, _FIXES)
            yield self.finding(node, source=event.mask_source, reason=event.reason,
                               hint=_FIXES.get(cls, _DEFAULT_FIX).format(layer=node.name),
                               evidence={"mask_source": event.mask_source,
                                         "axis": event.axis.axis})
