from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.remedies import mask_cause, supply
from maskcheck.rules.mc201_loss_ignores_padding import padded_outputs


class MetricIgnoresPadding(Rule):
    """A compiled metric receives an output with a padded axis but no mask or sample weights.

    Why is this bad?
        Accuracy over padded positions rewards predicting the pad label: a
        tagger that is right on padding looks better than it is. Keras applies
        the output mask only in mean-style metrics (accuracy, crossentropy,
        mae, ...); stateful metrics such as Precision, Recall, AUC or F1Score
        count padded positions even when the output is masked.
    """

    code = "MC202"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"metric": "accuracy", "output": "tags", "axis": 1, "source": "input_layer", "why": " and the output carries no mask"}
    fix_explained = ("Pass it as weighted_metrics with sample weights that zero padded steps; "
                     "where the output carries a mask, a mean-style metric (accuracy) applies "
                     "it; where none reaches the output, get one there (keep it flowing, or "
                     "create it with Embedding(mask_zero=True) or Masking).")
    name = "metric-ignores-padding"
    severity = Severity.WARNING
    cause = "metric"
    message = ("Metric {metric!r} on output {output!r} (layer {layer!r}) counts padded positions "
               "along axis {axis} (padding from {source!r}){why}.")
    fix = ("Pass it as weighted_metrics with sample weights that zero padded steps{extra}.")

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5)(h)
        model = keras.Model(x, y)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    """), Valid("""
        x = keras.Input((None, 4))
        y = keras.layers.Dense(5)(x)
        model = keras.Model(x, y)
        model.compile(loss="sparse_categorical_crossentropy",
                      weighted_metrics=["sparse_categorical_accuracy"])
    """))
    INVALID = (Invalid("""
        x = keras.Input((None, 4))
        y = keras.layers.Dense(5, name="tags")(x)
        model = keras.Model(x, y)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    """, at="tags"), Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(1, activation="sigmoid", name="tags")(h)
        model = keras.Model(x, y)
        model.compile(loss="binary_crossentropy", metrics=[keras.metrics.Precision()])
    """, at="tags"))

    def check(self, graph, flow) -> Iterator[Finding]:
        for index, node, axis, state in padded_outputs(graph, flow):
            for metric in graph.metrics.get(index, ()):
                if metric.get("weighted"):
                    continue
                if state.mask is not None and metric.get("applies_mask"):
                    continue
                if state.mask is not None:
                    why = f": it ignores the output mask from {state.mask.source!r}"
                    extra = ", or use a mean-style metric that applies the mask"
                else:
                    why = " and the output carries no mask"
                    extra = f"; or {supply(mask_cause(graph, flow, node), node.name)}"
                yield self.finding(node, metric=metric["name"], output=graph.output_names[index],
                                   axis=axis.axis, source=axis.source, why=why, extra=extra,
                                   evidence={"output": graph.output_names[index],
                                             "metric": metric["name"], "axis": axis.axis})
