from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc106_batch_statistics_leak import BatchStatisticsLeak
from maskcheck.rules.remedies import applies_masks, mask_cause, node_at, received_mask, supply


class CrossSampleLeak(Rule):
    """One sample's outputs change when only another sample's padding changes.

    Why is this bad?
        Training-mode batch statistics mix samples: a long padded neighbour
        shifts the normalization of every other sample in the batch.
    """

    code = "MC302"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "BatchNormalization", "max_abs_diff": 0.42, "sample": 0, "other": 1}
    fix_explained = ("Give the layer a mask (Keras 3 BatchNormalization then leaves padded steps "
                     "out of its statistics): keep one made upstream flowing, or create it "
                     "where none exists; or normalize per sample (LayerNormalization).")
    name = "cross-sample-leak"
    severity = Severity.ERROR
    cause = "training"
    engine = "dynamic"
    message = ("Sample {sample}'s valid outputs change by up to {max_abs_diff:.3g} when only "
               "sample {other}'s padding changes, starting at {layer!r} ({layer_class}).")
    fix = "Keep the mask attached to {layer!r} or normalize per sample (LayerNormalization)."

    programs = ("training",)
    covers = "training"
    confirms = (BatchStatisticsLeak,)

    @classmethod
    def refine(cls, finding: Any, graph: Any, flow: Any) -> Any:
        """A layer that would leave padded steps out of its statistics once a mask reaches it
        (Keras 3 BatchNormalization) is told how to get one there, by cause."""
        node = node_at(graph, finding)
        if node is None or not applies_masks(node) or received_mask(flow, node) is not None:
            return finding
        return replace(finding, fix=(
            f"Keep padding out of the statistics of {finding.layer!r}: "
            f"{supply(mask_cause(graph, flow, node), node.name)}; with a mask, it leaves padded "
            f"steps out of its statistics. Or normalize per sample (LayerNormalization)."))

    def probe(self, ctx: Any) -> Iterator[Any]:
        """Layers where, in training, one sample's padding changes another's valid outputs."""
        for measured in ctx.cross_sample:
            yield self.result(measured.leak, measured.fields)

    VALID = (Valid("""
        x = keras.Input((None, 4))
        y = keras.layers.LayerNormalization()(keras.layers.Masking()(x))
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None, 4))
        y = keras.layers.BatchNormalization(name="bn")(x)
    """, at="bn"),)
