from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc303_loss_leak import LossLeak
from maskcheck.rules.remedies import mask_cause, node_at, supply


class LabelPaddingCounted(Rule):
    """Padded label positions in the data hold a value the loss counts.

    Why is this bad?
        Labels are padded along with the inputs, usually with 0 (often a real
        class) or -100 (PyTorch's convention). Unless the loss is told to skip
        them (`ignore_class=<pad label>`, a mask that reaches the output, or
        sample weights of 0 on padded steps), the model is trained to predict
        the pad label, and a -100 makes a sparse loss fail or go NaN.
        maskcheck computes the compiled loss on your batch as given and with
        padded steps weighted 0, and compares.
    """

    code = "MC402"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"label_pad": 0, "loss": "sparse_categorical_crossentropy", "ignore_class": None, "effect": "the loss changes by 0.42 when they are weighted out"}
    fix_explained = ("Pass ignore_class=<the pad label> to the loss, or sample_weight that is 0 "
                     "on padded steps, or get a mask to the output (keep it flowing, or create "
                     "it with Embedding(mask_zero=True) or Masking where none exists).")
    name = "label-padding-counted"
    severity = Severity.ERROR
    cause = "loss"
    engine = "data"
    message = ("Padded label positions at output {layer!r} hold {label_pad}, and loss {loss!r} "
               "counts them (ignore_class={ignore_class}, no mask at the output, no zero weight): "
               "{effect}.")
    fix = ("Pass ignore_class={label_pad} to the loss, keep the mask attached up to output "
           "{layer!r}, or pass sample_weight that is 0 on padded steps.")

    programs = ("data",)

    @classmethod
    def refine(cls, finding: Any, graph: Any, flow: Any) -> Any:
        """How to get a mask to the output, by cause (made and dropped, or none to create)."""
        node = node_at(graph, finding)
        if node is None or node.is_input:
            return finding
        pad = finding.evidence.get("label_pad")
        first = (f"Pass ignore_class={pad} to the loss" if pad is not None
                 else "Pass ignore_class=<pad label> to the loss")
        return replace(finding, fix=(f"{first}, or pass sample_weight that is 0 on padded "
                                     f"steps, or {supply(mask_cause(graph, flow, node), node.name)}."))

    def probe(self, ctx: Any) -> Iterator[Any]:
        """The compiled loss on the data's labels against the same loss with padded steps
        weighted 0."""
        from maskcheck.dynamic.datameasure import labels_counted

        measured = labels_counted(ctx.model, ctx.plan, ctx.prep, ctx.batch, ctx.run, ctx.rows,
                                  ctx.config)
        if measured is not None:
            yield self.result(measured.leak, measured.fields)

    def supersedes(self, mine: Any, earlier: Any) -> bool:
        """The same cause as a loss leak from padded labels, said with the data's own label value."""
        return earlier.code == LossLeak.code and earlier.fields.get("what") == "labels"

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(50, 8)(x)
        y = keras.layers.Dense(4)(h)
        model = keras.Model(x, y)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                      ignore_class=-100))
        tokens = np.array([[5, 7, 9, 0, 0], [3, 4, 5, 6, 7], [2, 0, 0, 0, 0]])
        labels = np.where(tokens > 0, tokens % 4, -100)
        data = (tokens, labels)
    """),)
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(50, 8)(x)
        y = keras.layers.Dense(4, name="tags")(h)
        model = keras.Model(x, y)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        tokens = np.array([[5, 7, 9, 0, 0], [3, 4, 5, 6, 7], [2, 0, 0, 0, 0]])
        labels = np.where(tokens > 0, tokens % 4, 0)  # 0 is also a real tag
        data = (tokens, labels)
    """, at="tags"),)
