from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc201_loss_ignores_padding import LossIgnoresPadding
from maskcheck.rules.mc203_loss_bypasses_mask import LossBypassesMask
from maskcheck.rules.remedies import mask_cause, node_at, output_is_padded, supply


class LossLeak(Rule):
    """The loss or its gradients change when padded labels or padded inputs change.

    Why is this bad?
        What the model learns then depends on padding: it is trained to
        predict the pad label, or its gradients carry noise from padded steps.
    """

    code = "MC303"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"loss_diff": 0.42, "what": "labels"}
    name = "loss-leak"
    severity = Severity.ERROR
    cause = "loss"
    engine = "dynamic"
    message = ("The loss changes by {loss_diff:.3g} when only padded {what} change, at output {layer!r}.")
    fix = ("Keep the mask attached up to output {layer!r}, or pass ignore_class=<pad label> "
           "to the loss or sample weights that are 0 on padded steps.")
    fix_explained = ("For an output with a time axis (one label per step): get the mask to "
                     "the output (keep it flowing where it is dropped, create it with "
                     "Embedding(mask_zero=True) or Masking where none exists), or pass "
                     "ignore_class=<pad label> to the loss or sample weights that are 0 on "
                     "padded steps. For a per-sample output (one label per sequence): the "
                     "padded inputs reach it through layers that read padding; give those "
                     "layers a mask (the same remedies), since no label step is padded.")

    programs = ("loss",)
    needs = ("loss-leaks",)
    covers = "loss"
    confirms = (LossIgnoresPadding,)
    refutes = (LossIgnoresPadding, LossBypassesMask)
    #: the data's per-step weights keep padded steps out of the loss
    void_when = ("weights_cover_padding",)

    @classmethod
    def refine(cls, finding: Any, graph: Any, flow: Any) -> Any:
        """A per-sample output (no time axis) has no padded label steps: its fix is the mask
        for the layers before it, and its evidence names no position. A per-step output's
        fix gets the mask there by cause."""
        node = node_at(graph, finding)
        per_step = output_is_padded(graph, flow, finding.evidence.get("output") or finding.layer)
        if node is None or per_step is None:
            return finding
        remedy = supply(mask_cause(graph, flow, node), node.name)
        if per_step:
            return replace(finding, fix=(f"Keep padding out of the loss at output "
                                         f"{finding.layer!r}: {remedy}; or pass "
                                         "ignore_class=<pad label> to the loss or sample "
                                         "weights that are 0 on padded steps."))
        evidence = {**finding.evidence, "position": None}  # no step: one value per sample
        return replace(finding, evidence=evidence, fix=(
            f"Output {finding.layer!r} has one value per sample, so the padded inputs reach "
            f"the loss through the layers before it that read padding: {remedy}, so they "
            "skip padded steps."))

    def probe(self, ctx: Any) -> Iterator[Any]:
        """Padded labels, inputs or frames that move the loss or its gradients (unless the
        labels moved it through a mask the loss bypasses: MC203)."""
        outcome = ctx.loss
        if outcome.leak is not None and not outcome.bypasses_mask:
            yield self.result(outcome.leak.leak, outcome.leak.fields)

    @classmethod
    def message_values(cls, fields: dict) -> dict:
        what = {"labels": "labels", "inputs": "inputs",
                "frames": "frames (output steps)"}.get(fields.get("what"), "values")
        return {**fields, "what": what}

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5)(keras.layers.LSTM(8, return_sequences=True)(h))
        model = keras.Model(x, y)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """), Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(1, name="score")(keras.layers.LSTM(8)(h))
        model = keras.Model(x, y)
        model.compile(loss="binary_crossentropy")
    """))
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5, name="tags")(keras.layers.Conv1D(8, 1)(h))
        model = keras.Model(x, y)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """, at="tags"), Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8)(x)  # no mask: the LSTM reads the padding
        y = keras.layers.Dense(1, name="score")(keras.layers.LSTM(8)(h))  # one label per sequence
        model = keras.Model(x, y)
        model.compile(loss="binary_crossentropy")
    """, at="score"))
