from __future__ import annotations

from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid

#: The fix for each cause the probes tell apart (`maskcheck.dynamic.generation`).
REMEDIES = {
    "pad-slots": ("One cache index serves the whole batch, so decoding starts at the shortest "
                  "prompt and overwrites the other rows' left padding: keep a per-row cache "
                  "index (each row writes after its own prompt)"),
    "attends-to-padding": ("The cached attention reads the pad positions: pass the padding "
                           "mask into the cache seeding and call_with_cache and mask pad keys"),
    "positions": ("Positions count from each row's first slot, not its first token: give the "
                  "cached call per-row positions (cumsum of the padding mask, minus 1)"),
    "tokens": ("Padding reaches later decoding steps: mask pad keys in the cached attention "
               "and give each row its own positions and cache index"),
}


class GenerationBatchMismatch(Rule):
    """A prompt generates different tokens, or different next-token logits, in a padded batch than alone.

    Why is this bad?
        Batched generation is how a causal LM is served: prompts of different
        lengths are padded to one length and decoded together. When the
        generation step's positions, cache index or attention mask do not follow
        each row's padding, a prompt's completion depends on which other
        prompts share its batch. No error is raised; answers just change.
        maskcheck generates greedily (--generate-steps tokens) for prompts of
        different lengths alone and in batches of several sizes and orders, on
        the side the model's packer pads (both sides when unknown), and compares
        the tokens exactly and the next-token logits within --atol/--rtol (a
        token that differs where the logits agree is a tie, not a finding).
    """

    code = "MC306"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"prompt": 1, "tokens": "3 tokens", "padding": "pre", "batch_size": 2, "members": "0, 1", "what": "different tokens from step 1"}
    name = "generation-batch-mismatch"
    severity = Severity.ERROR
    cause = "generation"
    engine = "dynamic"
    message = ("Prompt {prompt} ({tokens}) generates differently in a "
               "{padding}-padded batch of {batch_size} (prompts {members}) than alone: {what}.")
    fix = "{remedy}{side_advice}"
    fix_explained = ("By what the batch changed: keep a per-row cache index where decoding "
                     "overwrote a row's left padding; mask pad keys in the cached attention "
                     "where the logits depend on the pad tokens; give the cached call per-row "
                     "positions (cumsum of the padding mask, minus 1) where they move with the "
                     "amount of padding. Where only left padding differs, pad prompts on the "
                     "right (preprocessor.packer.padding_side = \"right\").")
    programs = ("generation",)

    def probe(self, ctx: Any) -> Iterator[Any]:
        for measured in ctx.generation.batch:
            yield self.result(measured.leak, measured.fields)

    @classmethod
    def message_values(cls, fields: dict) -> dict:
        values = dict(fields)
        causes = [c for c in fields.get("causes") or () if c in REMEDIES] or ["tokens"]
        values["remedy"] = " ".join(REMEDIES[c] + "." for c in causes)
        values["members"] = ", ".join(str(k) for k in fields.get("batch") or ())
        # right padding is the cure only where the leak was measured on the left
        values["side_advice"] = (" Or pad prompts on the right (preprocessor.packer."
                                 "padding_side = \"right\"), where each row keeps its positions."
                                 if fields.get("padding") == "pre" else "")
        return values

    VALID = (Valid("""
        import keras_hub
        padding = "post"  # prompts padded on the right: every row keeps its positions
        backbone = keras_hub.models.GPT2Backbone(vocabulary_size=64, num_layers=1, num_heads=2,
                                                 hidden_dim=16, intermediate_dim=32,
                                                 max_sequence_length=32)
        model = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None, name="lm")
    """),)
    INVALID = (Invalid("""
        import keras_hub
        padding = "pre"  # prompts padded on the left, one cache index for the batch
        backbone = keras_hub.models.GPT2Backbone(vocabulary_size=64, num_layers=1, num_heads=2,
                                                 hidden_dim=16, intermediate_dim=32,
                                                 max_sequence_length=32)
        model = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None, name="lm")
    """, at="lm"),)
