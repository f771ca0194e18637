from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.static.dataflow import mask_needed_after
from maskcheck.rule import Invalid, Rule, Valid, fix_class
from maskcheck.rules.remedies import is_custom
from maskcheck.static.semantics import POINTWISE, semantics_for

_CONV = ("{cls} cannot carry a mask: multiply its input by the mask, use padding='causal' "
         "with post-padding, and pass the mask explicitly (mask=...) to the next mask-aware layer")
_FIXES = {
    "Conv1D": _CONV, "SeparableConv1D": _CONV, "DepthwiseConv1D": _CONV, "Conv1DTranspose": _CONV,
    "Flatten": "pool over time with GlobalAveragePooling1D, which consumes the mask, instead of flattening",
    "Reshape": "pool over time with GlobalAveragePooling1D, which consumes the mask, instead of reshaping",
    "GlobalMaxPooling1D": "use GlobalAveragePooling1D, which consumes the mask",
    "EinsumDense": ("EinsumDense does not pass masks on in Keras 3.15: use Dense, or pass the "
                    "mask explicitly (mask=...) to the next mask-aware layer"),
    "RMSNormalization": ("RMSNormalization does not pass masks on in Keras 3.15: use "
                         "LayerNormalization, or pass the mask explicitly to the next layer"),
    "Lambda": "give the Lambda layer mask=lambda inputs, mask: mask, or write a layer with compute_mask",
    "TimeDistributed": "apply the inner layer directly, or pass the mask explicitly to the next layer",
    # Keras 3.15 fills a missing input mask with ones, so the merged mask marks padding valid.
    "Concatenate": ("give every input of {layer!r} a mask (e.g. keras.layers.Masking on the "
                    "unmasked features), or pass the mask explicitly (mask=...) to the next layer"),
    "Add": "give every input of {layer!r} a mask, or pass the mask explicitly to the next layer",
}
_NOT_CREATED = ("Layer {layer!r} ({layer_class}) is configured with mask_zero=True, but Keras "
                "attaches no mask to its output, so later layers see padding along axis {axis} "
                "as data.")
_NOT_CREATED_FIX = ("Pass the padding mask explicitly (padding_mask=... / mask=...) to the layers "
                    "after {layer!r}, or use keras.layers.Embedding(mask_zero=True), which does "
                    "attach one.")
_KERNEL_ONE = frozenset({"Conv1D", "SeparableConv1D", "DepthwiseConv1D"})
_POINTWISE_CONV_FIX = ("a kernel-size-1 {cls} is position-wise: use Dense instead, which "
                       "passes the mask on")
_OP_FIX = ("keras.ops calls and Python operators never carry a mask: do this inside a layer "
           "with supports_masking=True, or pass the mask explicitly (mask=...) to the next "
           "mask-aware layer")
#: the user's own layer that works position by position: one line keeps the mask flowing
_CUSTOM_POINTWISE_FIX = ("Set self.supports_masking = True in {layer_class}.__init__: {layer!r} "
                         "works position by position, so Keras then passes the mask from "
                         "{source!r} on (or give {layer_class} a compute_mask that returns it).")
_CUSTOM_FIX = ("give {cls} a compute_mask that returns the mask for its output (and a `mask` "
               "argument to call if it mixes positions), or pass the mask explicitly "
               "(mask=...) to the next mask-aware layer")
_DEFAULT_FIX = ("consume the mask before {layer!r} (e.g. with GlobalAveragePooling1D or a "
                "masked RNN), or replace {layer!r} by a layer that supports masking")


class MaskDropped(Rule):
    """A layer receives a mask and neither uses nor passes it on, though later layers need it.

    Why is this bad?
        Keras prints at most one anonymous UserWarning and carries on. Every layer
        after the drop (recurrent layers, attention, pooling, the loss) then treats
        padding as data, and the model still trains, just on the wrong values.
    """

    code = "MC101"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "Flatten", "source": "embedding", "axis": 1}
    fix_explained = ("By the layer that drops the mask: your own position-wise layer needs only "
                     "self.supports_masking = True in its __init__ (or a compute_mask); a Keras "
                     "layer that cannot carry a mask (Conv1D, Flatten, a keras.ops call) is "
                     "replaced by one that can (GlobalAveragePooling1D, Dense), or the mask is "
                     "passed explicitly (mask=...) to the next mask-aware layer.")
    name = "mask-dropped"
    severity = Severity.WARNING
    cause = "values"
    message = ("Layer {layer!r} ({layer_class}) receives the mask created by {source!r} "
               "for padded axis {axis} but neither consumes nor propagates it; later layers "
               "see padding as data.")
    fix = "Keep the mask flowing past {layer!r}: {hint}."

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = keras.layers.LSTM(8, return_sequences=True)(h)
        y = keras.layers.Dense(3)(h)
    """), Valid("""
        tokens = keras.Input((None,), dtype="int32", name="tokens")
        padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(tokens) * 2.0
        y = keras.layers.GlobalAveragePooling1D()(h, mask=padding_mask)
        model = keras.Model([tokens, padding_mask], y)
    """), Valid("""
        class Scale(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.supports_masking = True  # position by position: the mask passes on
            def call(self, x):
                return x * 2.0
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(Scale(name="scale")(h))
    """))
    INVALID = (Invalid("""
        x = keras.Input((10,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Flatten(name="flat")(h)
    """, at="flat"), Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.GRU(8)(h * 2.0)
    """, at="multiply"), Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = keras.layers.Conv1D(8, 3, padding="same", name="conv")(h)
        h = keras.layers.LSTM(8, return_sequences=True)(h)
        y = keras.layers.Dense(3)(h)
    """, at="conv"), Invalid("""
        tokens = keras.Input((None,), dtype="int32")
        features = keras.Input((None, 3))
        h = keras.layers.Embedding(100, 8, mask_zero=True)(tokens)
        h = keras.layers.Concatenate(name="cat")([h, features])  # features carry no mask
        y = keras.layers.LSTM(8, return_sequences=True)(h)
        model = keras.Model([tokens, features], y)
    """, at="cat"), Invalid("""
        class Scale(keras.layers.Layer):  # position by position, but no supports_masking
            def call(self, x):
                return x * 2.0
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(4)(Scale(name="scale")(h))
    """, at="scale"))

    def check(self, graph, flow) -> Iterator[Finding]:
        for event in flow.drops:
            if mask_needed_after(graph, flow, event.node):
                node = event.node
                cls = fix_class(node, _FIXES)
                if event.not_created:
                    yield self.finding(node, message=_NOT_CREATED, fix=_NOT_CREATED_FIX,
                                       axis=event.axis.axis,
                                       evidence={"mask_source": None, "axis": event.axis.axis,
                                                 "not_created": True})
                    continue
                template = _OP_FIX if node.is_op else _FIXES.get(cls, _DEFAULT_FIX)
                custom = is_custom(node) and cls not in _FIXES
                if custom and _position_wise(node, event.axis.axis):
                    yield self.finding(node, source=event.mask_source, axis=event.axis.axis,
                                       fix=_CUSTOM_POINTWISE_FIX,
                                       evidence={"mask_source": event.mask_source,
                                                 "axis": event.axis.axis})
                    continue
                if custom:
                    template = _CUSTOM_FIX
                if cls in _KERNEL_ONE and _kernel_is_one(node.config):
                    template = _POINTWISE_CONV_FIX
                yield self.finding(node, source=event.mask_source, axis=event.axis.axis,
                                   hint=template.format(layer=node.name, cls=cls),
                                   evidence={"mask_source": event.mask_source,
                                             "axis": event.axis.axis})


def _position_wise(node, axis: int) -> bool:
    """The layer works position by position along the padded axis (what the op-level reader
    read in its call, or its known semantics)."""
    reading = node.reading
    if reading is not None and not reading.failed:
        effect = reading.effect(True, 0, axis)
        return effect is not None and effect.kind == "pointwise"
    sem = semantics_for(node.class_name, node.config, bases=node.bases)
    return sem.known and sem.along == POINTWISE


def _kernel_is_one(config) -> bool:
    kernel = config.get("kernel_size")
    kernels = kernel if isinstance(kernel, tuple) else (kernel,)
    return all(k == 1 for k in kernels)
