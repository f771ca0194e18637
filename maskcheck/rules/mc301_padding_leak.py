from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc101_mask_dropped import MaskDropped
from maskcheck.rules.mc102_unmasked_mixing import UnmaskedMixing
from maskcheck.rules.mc103_mask_shape_mismatch import MaskShapeMismatch
from maskcheck.rules.mc105_false_propagation import FalsePropagation
from maskcheck.rules.mc106_batch_statistics_leak import BatchStatisticsLeak
from maskcheck.rules.remedies import give_mask, node_at


class PaddingLeak(Rule):
    """Valid outputs change when padded values change while the mask is held fixed.

    Why is this bad?
        This is the leak itself, measured: the prediction for a real position
        depends on what happens to sit in the padding.
    """

    code = "MC301"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "Conv1D", "max_abs_diff": 0.42}
    fix_explained = ("By cause at the layer where the leak starts: a layer that ignores a mask "
                     "reaching it applies it (your own layer takes a `mask` argument); one "
                     "that applies masks gets one (kept flowing from upstream, or created "
                     "with Embedding(mask_zero=True) or Masking where none exists; a "
                     "Bidirectional layer needs it whichever side you pad); one that cannot "
                     "apply a mask gets masked input (see the MC101/MC102 finding there).")
    name = "padding-leak"
    severity = Severity.ERROR
    cause = "values"
    engine = "dynamic"
    message = ("Valid outputs change by up to {max_abs_diff:.3g} when only padded values change; "
               "the leak starts at {layer!r} ({layer_class}).")
    fix = "Make {layer!r} mask-aware or keep the mask attached up to it (see MC101/MC102 for the cause)."

    programs = ("inference",)
    covers = "values"
    confirms = (MaskDropped, UnmaskedMixing, MaskShapeMismatch, FalsePropagation)
    reclassifies = (UnmaskedMixing,)
    #: MC101 is never refuted: a dropped mask hurts the layers after the one that drops it
    refutes = (UnmaskedMixing, FalsePropagation, BatchStatisticsLeak)

    @classmethod
    def refine(cls, finding: Any, graph: Any, flow: Any) -> Any:
        """The fix for the cause at the culprit (or the Bidirectional layer that holds it)."""
        node = node_at(graph, finding)
        if node is None or node.is_input:
            return finding
        return replace(finding, fix=f"Keep padding out of {finding.layer!r}: "
                                    f"{give_mask(graph, flow, node)}.")

    def probe(self, ctx: Any) -> Iterator[Any]:
        """Each culprit layer where valid outputs change with padded values (mask pinned)."""
        for measured in ctx.padding_leaks:
            yield self.result(measured.leak, measured.fields)

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(3)(keras.layers.LSTM(8, return_sequences=True)(h))
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(3)(keras.layers.Conv1D(8, 3, padding="same", name="conv")(h))
    """, at="conv"),)
