from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc103_mask_shape_mismatch import MaskShapeMismatch
from maskcheck.rules.mc105_false_propagation import FalsePropagation
from maskcheck.rules.remedies import RNNS, is_custom, mask_cause, supply

_CONV_FIX = ("use {cls}(padding='causal') with post-padding, or multiply the input by the "
             "mask and pool afterwards with a masked pooling layer")
_IMAGE_FIX = ("resize or crop images to one size, or multiply by a padding mask before "
              "{layer!r} and pool only over valid pixels")
#: layers that apply a mask once one reaches them: their fix is how to get one there
_MASK_AWARE = {
    **{cls: "{supply}" for cls in RNNS},
    "Bidirectional": ("{supply}. Without a mask its backward direction starts inside the "
                      "padding, so it leaks whichever side the sequences are padded on"),
    "GlobalAveragePooling1D": "{supply}, so it averages the valid steps only",
    "MultiHeadAttention": ("{supply}, so query and value carry it and attention skips padded "
                           "keys; or pass attention_mask=... to its call"),
    "GroupedQueryAttention": ("{supply}, so query and value carry it; or pass "
                              "attention_mask=... to its call"),
    "Attention": "{supply}, or pass mask=[query_mask, value_mask] to its call",
    "AdditiveAttention": "{supply}, or pass mask=[query_mask, value_mask] to its call",
}
_FIXES = {
    "Conv1D": _CONV_FIX, "SeparableConv1D": _CONV_FIX, "DepthwiseConv1D": _CONV_FIX,
    "Conv1DTranspose": _CONV_FIX,
    "Conv2D": _IMAGE_FIX, "SeparableConv2D": _IMAGE_FIX, "DepthwiseConv2D": _IMAGE_FIX,
    "Conv2DTranspose": _IMAGE_FIX, "MaxPooling2D": _IMAGE_FIX, "AveragePooling2D": _IMAGE_FIX,
    "GlobalAveragePooling2D": "average only over valid pixels: multiply by the padding mask and divide by its sum",
    "GlobalMaxPooling2D": "set padded pixels to a large negative value before pooling, or crop images to one size",
    "MaxPooling1D": "multiply by the mask before pooling and recompute the mask for the shorter output",
    "AveragePooling1D": "multiply by the mask before pooling and recompute the mask for the shorter output",
    "GlobalMaxPooling1D": ("use GlobalAveragePooling1D, which consumes the mask, or set "
                           "padded steps to a large negative value before pooling"),
    "Flatten": "pool over time with a masked pooling layer (GlobalAveragePooling1D) instead of flattening padded steps",
    "Reshape": "pool over time with a masked pooling layer instead of folding padded steps into features",
    "TransformerEncoder": "pass padding_mask=<the padding_mask input> to every encoder call",
    "TransformerDecoder": "pass decoder_padding_mask (and encoder_padding_mask) to every decoder call",
    "Dense": "do not move the padded axis last (Permute) before Dense; pool over time with a mask instead",
    "Cumsum": "multiply by the mask before the cumulative op and pad at the end (post-padding)",
    "Cumprod": "set padded steps to 1 before the cumulative op and pad at the end (post-padding)",
    "Mean": "compute a masked mean: sum(x * mask) / sum(mask) over the padded axis",
    "Sum": "multiply by the mask before summing over the padded axis",
    "Max": "set padded steps to a large negative value before the max",
    "GetItem": ("reading a fixed position is right only where that position is never padding: "
                "x[:, 0] needs post-padding, x[:, -1] pre-padding; or pool with the mask instead"),
    "Min": "set padded steps to a large positive value before the min",
}
_DEFAULT_FIX = "{supply}, or use a mask-aware layer there"
_HOLDS = {"valid": "values computed from valid steps (a masked RNN's carried state, a bias)",
          "repeat": "the last valid step repeated (a masked RNN's carried state)",
          "zeros": "zeros"}
_CAUSAL_FIX = ("it only looks backwards, which is safe under post-padding alone: pad "
               "sequences at the end (padding='post'), or multiply its input by the mask")
#: the side advice for a layer that only looks backwards and applies a mask that reaches it;
#: dropped where a measurement shows post-padding leaking too (`confirmed_fix`)
_POST_ADVICE = (" Or pad sequences at the end (padding='post'): it only looks backwards, so "
                "padding after the valid steps never reaches them.")
_SIDES = {"post": "post-padding", "pre": "pre-padding", "both": "post- or pre-padding"}
_ASSUMED_MESSAGE = ("maskcheck does not know layer {layer!r} ({layer_class}), which receives "
                    "padding along {axis} (from {source!r}); it assumed the layer {assumption}.")
_ASSUMED_FIX = ("If {layer!r} mixes positions, give its call a `mask` argument and apply it; "
                "if it is position-wise, set self.supports_masking = True in its __init__ (or "
                "register its semantics by subclassing the Keras layer it behaves like).")
#: a mask reaches the unknown layer and stops there: the one-line fix comes first
_ASSUMED_DROP_FIX = ("If {layer!r} works position by position, set self.supports_masking = "
                     "True in its __init__ so Keras passes the mask from {mask!r} on; if it "
                     "mixes positions, give its call a `mask` argument and apply it (and a "
                     "compute_mask that returns the mask for its output).")


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
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "Conv1D", "verb": "mixes values along", "axis": "axis 1", "source": "input_layer", "side": "post- or pre-padding", "mask_clause": "and ignores the mask from 'embedding' that reaches it", "consequence": "valid positions depend on padding"}
    fix_explained = ("By cause. A layer that applies a mask (an RNN, attention, masked pooling) "
                     "needs one to reach it: keep a mask made upstream flowing past the layer "
                     "that drops it, pass an explicit mask input on, or create one where none "
                     "exists (Embedding(mask_zero=True) for token ids, "
                     "Masking(mask_value=...) after a padded float input). A layer that "
                     "cannot (a convolution, Flatten, a max) is changed or fed masked values "
                     "(padding='causal' with post-padding, the input multiplied by the mask). "
                     "Padding at the end is advised only for a layer that only looks "
                     "backwards, never for a Bidirectional one, which reads padding on "
                     "either side.")
    name = "unmasked-mixing"
    severity = Severity.ERROR
    cause = "values"
    message = ("Layer {layer!r} ({layer_class}) {verb} padded {axis} "
               "(padding from {source!r}, {side}) {mask_clause}, so {consequence}.")
    fix = "Keep padding out of {layer!r}: {hint}."
    claims = "values"

    @classmethod
    def renamed_by_measurement(cls, finding: Finding,
                               measured: Finding) -> tuple[type[Rule], dict] | None:
        """A leak measured at an unknown custom layer that a mask reached and that passed
        it on: the layer moves or resamples positions (MC103, the mask marks the wrong
        steps after it) or mixes them (MC105, it passes on a mask it does not honour).
        Without a mask there, mixing without a mask (this rule) holds as it is."""
        source = finding.evidence.get("mask_source")
        if not (source and finding.evidence.get("passes_mask")):
            return None
        movement = measured.evidence.get("movement")
        rule = MaskShapeMismatch if movement in ("moves", "resamples") else FalsePropagation
        detail = {"moves": "it moves positions along the padded axis (reverses or shifts it) while "
                           "passing the mask on unchanged, so the mask marks the wrong positions",
                  "resamples": "it changes the length of the padded axis while passing the "
                               "full-length mask on"}.get(movement, "")
        return rule, {"source": source, "detail": detail,
                      "reason": "mixes values along the padded axis (a probe measured it)"}

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.GlobalAveragePooling1D()(h)
    """), Valid("""
        x = keras.Input((40,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = keras.layers.Bidirectional(keras.layers.LSTM(8))(h)
        y = keras.layers.Dense(1)(h)
    """), Valid("""
        x = keras.Input((None, 4), name="frames")
        h = keras.ops.cumsum(x, axis=1)
        y = keras.layers.Dense(2)(h)
        model = keras.Model(x, y)
        padding = "post"
    """), Valid("""
        x = keras.Input((None, 4), name="frames")
        h = keras.layers.Masking(mask_value=0.0)(x)
        h = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True), name="bi")(h)
        y = keras.layers.Dense(3)(h)
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
    """, at="conv2d"), Invalid("""
        x = keras.Input((None, 4))
        h = keras.layers.Lambda(lambda t: t - keras.ops.mean(t, axis=1, keepdims=True),
                                name="centre")(keras.layers.Dense(8)(x))
        y = keras.layers.Dense(2)(h)
    """, at="centre"), Invalid("""
        x = keras.Input((None, 4), name="frames")
        h = keras.ops.cumsum(x, axis=1)
        y = keras.layers.Dense(2)(h)
        model = keras.Model(x, y)
        padding = "pre"
    """, at="cumsum"), Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8)(x)  # no mask_zero: no mask exists
        y = keras.layers.LSTM(8, name="lstm")(h)
    """, at="lstm"), Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = keras.layers.Conv1D(8, 3, padding="same")(h)  # drops the mask
        y = keras.layers.LSTM(8, name="lstm")(h)
    """, at="lstm"), Invalid("""
        x = keras.Input((None, 4), name="frames")  # padded floats, no Masking
        h = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True), name="bi")(x)
        y = keras.layers.Dense(3)(h)
    """, at="bi"))

    def check(self, graph, flow) -> Iterator[Finding]:
        for event in flow.mixing:
            node = event.node
            mask_clause = (f"and ignores the mask from {event.mask_arrived!r} that reaches it"
                           if event.mask_arrived else "with no mask")
            if event.carried:
                mask_clause += (" (its padded steps hold no padding values, only "
                                + " and ".join(_HOLDS[h] for h in sorted(event.axis.contents())
                                               if h in _HOLDS)
                                + ", but the axis length varies, so the amount of padding leaks)")
            cls = _fix_class(node)
            axes = event.axes or (event.axis.axis,)
            axis_text = ("axes " + " and ".join(str(a) for a in axes) if len(axes) > 1
                         else f"axis {axes[0]}")
            if cls == "GetItem":
                verb = "reads a fixed position of"
            elif event.causal:
                verb = "looks back along"
            else:
                verb = "mixes values along"
            consequence = ("under pre-padding valid positions depend on padding"
                           if event.causal else "valid positions depend on padding")
            yield self.finding(node, axis=axis_text, source=event.axis.source, verb=verb,
                               consequence=consequence,
                               side=_SIDES[event.axis.side], mask_clause=mask_clause,
                               fix=self._fix(graph, flow, event, cls),
                               evidence={"axis": event.axis.axis, "axes": tuple(axes),
                                         "padding_source": event.axis.source,
                                         "padding": event.axis.side,
                                         "mask_source": event.mask_arrived,
                                         # what the padded positions read hold: padding
                                         # values, zeros, values of valid steps
                                         "padded_holds": tuple(sorted(event.axis.contents())),
                                         "amount_only": event.carried})
        for event in flow.assumed:
            drops = bool(event.mask_arrived and not event.passes_mask)
            yield self.finding(event.node, severity=Severity.INFO, message=_ASSUMED_MESSAGE,
                               fix=_ASSUMED_DROP_FIX if drops else _ASSUMED_FIX,
                               axis=f"axis {event.axis.axis}", source=event.axis.source,
                               assumption=event.assumption, mask=event.mask_arrived,
                               evidence={"axis": event.axis.axis, "assumed_semantics": True,
                                         "padding_source": event.axis.source,
                                         "mask_source": event.mask_arrived,
                                         "passes_mask": event.passes_mask})

    @staticmethod
    def _fix(graph, flow, event, cls: str) -> str:
        """The fix for this layer and this cause: how to get a mask to a layer that applies
        one (made upstream and dropped, an unused mask input, or none at all: create it),
        what to change in one that cannot, and the padding side only where one side is
        really clean (a layer that only looks backwards, never a Bidirectional one)."""
        node = event.node
        name = node.name
        aware = cls in _MASK_AWARE and not event.mask_arrived
        if event.mask_arrived and is_custom(node):
            hint = (f"{node.class_name} ignores the mask from {event.mask_arrived!r}: give its "
                    f"call a `mask` argument and apply it")
        elif event.mask_arrived and (cls in _MASK_AWARE or cls not in _FIXES):
            hint = (f"it does not apply the mask from {event.mask_arrived!r} that reaches it: "
                    f"pass the mask explicitly (mask=...), or use a mask-aware layer there")
        elif is_custom(node) and cls not in _FIXES and not event.mask_arrived:
            cause = supply(mask_cause(graph, flow, node), name)
            hint = f"{cause}; and give {node.class_name}.call a `mask` argument and apply it"
        elif aware or (cls not in _FIXES and not event.causal and not event.mask_arrived):
            cause = supply(mask_cause(graph, flow, node), name)
            hint = _MASK_AWARE.get(cls, _DEFAULT_FIX).format(supply=cause)
        elif event.causal and cls != "GetItem":
            hint = _CAUSAL_FIX
        else:
            hint = _FIXES.get(cls, _DEFAULT_FIX).format(
                layer=name, cls=cls, supply=f"give {name!r} a mask")
        text = f"Keep padding out of {name!r}: {hint}."
        if aware and event.causal and cls != "Bidirectional" and event.axis.side != "post":
            text += _POST_ADVICE
        return text

    @classmethod
    def confirmed_fix(cls, finding: Finding, measured: Finding) -> str:
        """A measurement that shows post-padding leaking at this layer too takes the side
        advice back (never advise the side the evidence shows leaking)."""
        if measured.evidence.get("padding") == "post":
            return finding.fix.replace(_POST_ADVICE, "")
        return finding.fix


def _fix_class(node) -> str:
    """The class whose fix applies: the node's own, else its nearest known base."""
    if node.class_name in _FIXES:
        return node.class_name
    return next((b for b in node.bases if b in _FIXES), node.class_name)
