from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.static.graph import Node


class LeftPaddedGeneration(Rule):
    """A causal LM pads prompts on the left while its generation step keeps one cache position for the whole batch.

    Why is this bad?
        keras-hub's generation step seeds the cache with the padded prompts and
        then decodes with one cache index for every row, starting at the
        shortest prompt. With the padding on the left, a shorter prompt's
        tokens sit at later positions than they would alone, its cached keys
        include its pad tokens, and generated tokens are written into its pad
        slots: the same prompt generates different text in a batch than alone,
        and nothing raises. Right padding keeps every row's positions, so the
        same step is exactly batch-equivalent. Reported before anything runs;
        MC306 measures it.
    """

    code = "MC110"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "GPT2CausalLM", "why": "its preprocessor's packer has padding_side=\"left\""}
    name = "left-padded-generation"
    severity = Severity.WARNING
    cause = "generation"
    message = ("{layer!r} ({layer_class}) pads prompts on the left ({why}) while its generation "
               "step keeps one cache position for the whole batch and its cached call takes no "
               "per-row mask or positions: a prompt in a batch with longer ones generates from "
               "shifted positions, attends to its pads and gets tokens written into its pad slots.")
    fix = ("Pad prompts on the right (preprocessor.packer.padding_side = \"right\"), where each "
           "row generates right after its own prompt; or give the cached call per-row positions "
           "(from the padding mask), a per-row cache index, and mask pad keys in attention.")

    def check(self, graph, flow) -> Iterator[Finding]:
        facts = graph.generation
        if not facts or not facts.get("shared_index") or facts.get("per_row"):
            return
        if facts.get("side") == "pre":
            why = "its preprocessor's packer has padding_side=\"left\""
        elif _inputs_padded_before(graph, flow):
            why = "--padding pre says so"
        else:
            return
        node = Node(index=-1, name=graph.name, class_name=facts.get("class", ""),
                    path=(graph.name,), inputs=(), outputs=())
        yield self.finding(node, why=why, evidence={"padding_side": "pre",
                                                    "generation": "one cache index per batch"})

    VALID = (Valid("""
        import keras_hub
        padding = "post"  # prompts padded on the right, as keras-hub's packer does by default
        backbone = keras_hub.models.GPT2Backbone(vocabulary_size=64, num_layers=1, num_heads=2,
                                                 hidden_dim=16, intermediate_dim=32,
                                                 max_sequence_length=32)
        model = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None, name="lm")
    """),)
    INVALID = (Invalid("""
        import keras_hub
        padding = "pre"  # prompts padded on the left (a packer with padding_side="left")
        backbone = keras_hub.models.GPT2Backbone(vocabulary_size=64, num_layers=1, num_heads=2,
                                                 hidden_dim=16, intermediate_dim=32,
                                                 max_sequence_length=32)
        model = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None, name="lm")
    """, at="lm"),)


def _inputs_padded_before(graph, flow) -> bool:
    """Whether the prompts' padding is known to sit before them (pre-padding only)."""
    sides = set()
    for tid in graph.inputs:
        state = flow.states.get(tid)
        for axis in state.padded if state is not None else ():
            sides.add(axis.side)
    return sides == {"pre"}
