from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc102_unmasked_mixing import UnmaskedMixing
from maskcheck.rules.mc105_false_propagation import FalsePropagation
from maskcheck.rules.remedies import give_mask, is_bidirectional, node_at


class PadLengthSensitivity(Rule):
    """Valid outputs change when only the amount of padding changes.

    Why is this bad?
        Under left padding, absolute position embeddings or a state carried
        over padded steps make the prediction depend on the batch's longest
        sequence, so the same input scores differently in different batches.
    """

    code = "MC304"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "LSTM", "max_abs_diff": 0.42, "extra": 6, "padding": "pre"}
    name = "pad-length-sensitivity"
    severity = Severity.WARNING
    cause = "values"
    engine = "dynamic"
    message = ("Valid outputs change by up to {max_abs_diff:.3g} when {extra} more padded "
               "steps are added ({padding}-padding), starting at {layer!r} ({layer_class}).")
    fix = ("Keep the amount of padding out of {layer!r}: give it the mask, or count positions "
           "from each sample's first valid step.")
    fix_explained = ("By cause: give the layer the mask that is made upstream but dropped, or "
                     "create one (Embedding(mask_zero=True), Masking(mask_value=...)) where none "
                     "exists; count positions from each sample's first valid step. Padding at "
                     "the end (padding='post') is advised only where the leak was measured "
                     "under pre-padding, and never for a Bidirectional layer, which reads the "
                     "padding from either side.")

    programs = ("inference",)
    covers = "amount"
    confirms = (UnmaskedMixing, FalsePropagation)
    reclassifies = (UnmaskedMixing,)

    @classmethod
    def refine(cls, finding: Any, graph: Any, flow: Any) -> Any:
        """The mask remedy for the cause at the culprit, and post-padding only where the leak
        was measured under pre-padding and the layer reads one side only."""
        node = node_at(graph, finding)
        if node is None or node.is_input:
            return finding
        fix = f"Keep the amount of padding out of {finding.layer!r}: {give_mask(graph, flow, node)}."
        if finding.evidence.get("padding") == "pre" and not is_bidirectional(node):
            fix += (" Or pad sequences at the end (padding='post'), or count positions from "
                    "each sample's first valid step.")
        return replace(finding, fix=fix)

    def probe(self, ctx: Any) -> Iterator[Any]:
        """Layers whose valid outputs change with the amount of padding."""
        for measured in ctx.pad_amount:
            yield self.result(measured.leak, measured.fields)

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.LSTM(8)(h)
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None, 4))
        # trained biases: the state drifts over zero-padded steps
        h = keras.layers.LSTM(8, return_sequences=True, bias_initializer="random_normal",
                              name="lstm")(x)
        y = keras.layers.Dense(1)(h)
    """, at="lstm"),)
