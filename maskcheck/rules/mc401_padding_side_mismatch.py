from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc301_padding_leak import PaddingLeak
from maskcheck.rules.remedies import give_mask, is_bidirectional, mask_cause, node_at, supply


class PaddingSideMismatch(Rule):
    """The data is padded on a side where the model is not invariant to padding.

    Why is this bad?
        A forward RNN or a causal convolution without a mask reads left to
        right: after post-padding the padding comes after every valid step
        and cannot reach it, after pre-padding (`pad_sequences`' default) it
        comes first and flows into every valid step. Absolute position
        embeddings shift under left padding. The model is fine on one side
        and your data is on the other. maskcheck measures it on your own
        batches: it re-pads the same samples on the other side and compares.
    """

    code = "MC401"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "LSTM", "padding": "pre", "other_side": "post", "detail": "padding values reach valid outputs under the data's pre-padding, and not when the same samples are post-padded"}
    name = "padding-side-mismatch"
    severity = Severity.ERROR
    cause = "values"
    engine = "data"
    message = ("The data is {padding}-padded, and {detail}; the leak starts at {layer!r} "
               "({layer_class}).")
    fix = ("Pad on the {other_side} side (pad_sequences(..., padding={other_side!r})), or give "
           "{layer!r} a mask.")
    fix_explained = ("Pad on the other side (pad_sequences(..., padding='post') for pre-padded "
                     "data), where the model reads no padding, or give the layer a mask: keep "
                     "the one made upstream flowing, or create one (Embedding(mask_zero=True), "
                     "Masking(mask_value=...)) where none exists. For a layer inside a "
                     "Bidirectional wrapper only the mask helps: its backward direction reads "
                     "the padding the other side puts after the valid steps.")

    programs = ("data",)

    @classmethod
    def refine(cls, finding: Any, graph: Any, flow: Any) -> Any:
        """The mask remedy by cause; the other side only where it is clean for the whole
        layer (a Bidirectional one reads padding from either side: the mask alone helps)."""
        node = node_at(graph, finding)
        if node is None or node.is_input:
            return finding
        if is_bidirectional(node):
            fix = (f"Give {node.name!r} a mask: {supply(mask_cause(graph, flow, node), node.name)}. "
                   "A Bidirectional layer without a mask leaks under either padding side (its "
                   "backward direction reads the padding after the valid steps), so padding on "
                   "the other side would not help.")
            return replace(finding, fix=fix)
        other = finding.evidence.get("other_side") or "post"
        return replace(finding, fix=(f"Pad on the {other} side (pad_sequences(..., "
                                     f"padding={other!r})), where {finding.layer!r} reads no "
                                     f"padding; or {give_mask(graph, flow, node)}."))

    def probe(self, ctx: Any) -> Iterator[Any]:
        """The data's padding leaks that the other side does not show, or absolute positions
        that left padding shifts (the same samples re-padded on the other side)."""
        from maskcheck.dynamic.datameasure import side_flips

        if not ctx.batch.padded:
            return
        for measured in side_flips(ctx.prep, ctx.prober, ctx.run, ctx.rows, ctx.config,
                                   ctx.output_axes, ctx.padding_leaks):
            yield self.result(measured.leak, measured.fields)

    def supersedes(self, mine: Any, earlier: Any) -> bool:
        """The side's fault is the better name for a padding leak only the data's side shows."""
        return earlier.code == PaddingLeak.code and earlier.leak == mine.leak

    VALID = (Valid("""
        x = keras.Input((10,), dtype="int32")
        h = keras.layers.Embedding(50, 8)(x)
        y = keras.layers.Dense(3)(keras.layers.LSTM(8, return_sequences=True)(h))
        model = keras.Model(x, y)
        tokens = [[5, 7, 9], [3, 4, 5, 6, 7, 8], [2, 2], [9] * 10]
        data = keras.utils.pad_sequences(tokens, maxlen=10, padding="post")
    """),)
    INVALID = (Invalid("""
        x = keras.Input((10,), dtype="int32")
        h = keras.layers.Embedding(50, 8)(x)
        y = keras.layers.Dense(3)(keras.layers.LSTM(8, return_sequences=True, name="lstm")(h))
        model = keras.Model(x, y)
        tokens = [[5, 7, 9], [3, 4, 5, 6, 7, 8], [2, 2], [9] * 10]
        data = keras.utils.pad_sequences(tokens, maxlen=10)  # padding="pre", the default
    """, at="lstm"), Invalid("""
        x = keras.Input((10,), dtype="int32")
        h = keras.layers.Embedding(50, 8)(x)
        h = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True), name="bi")(h)
        model = keras.Model(x, keras.layers.Dense(3)(h))
        tokens = [[5, 7, 9], [3, 4, 5, 6, 7, 8], [2, 2], [9] * 10]
        data = keras.utils.pad_sequences(tokens, maxlen=10)  # pre: the forward LSTM leaks
    """, at="forward_lstm"))
