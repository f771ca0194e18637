from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.remedies import mask_cause, supply


def padded_outputs(graph, flow):
    """(output index, producer node, padded axis, state) for outputs that keep a padded axis."""
    for index, tid in enumerate(graph.outputs):
        state = flow.states.get(tid)
        producer = graph.tensors[tid].producer
        if state is None or not state.is_padded or producer is None:
            continue
        yield index, graph.nodes[producer], state.padded[0], state


class LossIgnoresPadding(Rule):
    """A compiled loss receives an output with a padded axis but no mask, ignore_class or sample weights.

    Why is this bad?
        Padded label positions are counted in the loss: the model learns to
        predict padding, and sequences with more padding weigh differently.
        Keras applies an output's mask to its loss, so a mask that survives to
        the output (or `ignore_class=<pad label>`) is enough; a mask dropped
        on the way is not.
    """

    code = "MC201"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"loss": "sparse_categorical_crossentropy", "output": "tags", "axis": 1, "source": "input_layer", "dropped": " (the mask from 'embedding' is dropped at 'conv1d')"}
    name = "loss-ignores-padding"
    severity = Severity.ERROR
    cause = "loss"
    message = ("Loss {loss!r} on output {output!r} (layer {layer!r}) averages over padded axis "
               "{axis} (padding from {source!r}) without a mask or ignore_class{dropped}.")
    fix = ("Keep padding out of the loss at output {layer!r}: {hint}; or pass "
           "ignore_class=<pad label> to the loss, or sample_weight that is 0 on padded steps.")
    fix_explained = ("Get a mask to the output, by cause: keep the mask flowing past the layer "
                     "that drops it, pass an explicit mask input on, or create one where none "
                     "exists (Embedding(mask_zero=True) for token ids, Masking(mask_value=...) "
                     "for padded values); or pass ignore_class=<pad label> to the loss, or "
                     "sample_weight that is 0 on padded steps.")
    claims = "loss"
    #: per-step sample weights that are 0 on every padded step keep padded labels out of
    #: the loss (MC403 says when they do not)
    void_when = ("weights_cover_padding",)

    @classmethod
    def is_guess(cls, finding: Finding, user_code: frozenset[str]) -> bool:
        return loss_in_user_code(finding, user_code)

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        y = keras.layers.Dense(5)(keras.layers.LSTM(8, return_sequences=True)(h))
        model = keras.Model(x, y)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """), Valid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8)(x)
        y = keras.layers.Dense(5)(h)
        model = keras.Model(x, y)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=0))
    """))
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
        h = keras.layers.Conv1D(8, 1)(h)
        y = keras.layers.Dense(5, name="tags")(h)
        model = keras.Model(x, y)
        model.compile(loss="sparse_categorical_crossentropy")
    """, at="tags"), Invalid("""
        x = keras.Input((None, 4), name="frames")
        tags = keras.layers.Dense(3, name="tags")(x)
        score = keras.layers.Dense(1, name="score")(keras.layers.GlobalAveragePooling1D()(
            keras.layers.Masking()(x)))
        model = keras.Model(x, {"tags": tags, "score": score})
        model.compile(loss={"tags": "sparse_categorical_crossentropy", "score": "mse"})
    """, at="tags"))

    def check(self, graph, flow) -> Iterator[Finding]:
        for index, node, axis, state in padded_outputs(graph, flow):
            if state.mask is not None:
                continue  # Keras applies the output mask to the loss
            for loss in graph.losses.get(index, ()):
                if loss.get("ignore_class") is not None or loss.get("weight") == 0:
                    continue
                dropped = _dropped_clause(flow, node)
                hint = supply(mask_cause(graph, flow, node), node.name)
                yield self.finding(node, loss=loss["name"], output=graph.output_names[index],
                                   axis=axis.axis, source=axis.source, dropped=dropped, hint=hint,
                                   evidence={"output": graph.output_names[index],
                                             "loss": loss["name"], "axis": axis.axis})


def _dropped_clause(flow, output_node) -> str:
    """Where the mask was lost on the way to this output, if it was."""
    drops = [e for e in flow.drops if e.node.index <= output_node.index and not e.not_created]
    if drops:
        last = drops[-1]
        return f" (the mask from {last.mask_source!r} is dropped at {last.node.name!r})"
    return ""


def loss_in_user_code(finding: Finding, user_code: frozenset[str]) -> bool:
    """A loss finding about a loss written in user code (its name, or a custom
    `compute_loss`, among the code the loss probes ran): the static engine cannot read
    every user loss (one that masks by `y_true != 0`, by lengths), so the finding is a
    guess. A built-in Keras loss is read exactly."""
    loss = str(finding.evidence.get("loss", ""))
    return loss in user_code or any(name.endswith(".compute_loss") for name in user_code)
