from __future__ import annotations

from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Invalid, Rule, Valid
from maskcheck.rules.mc306_generation_batch_mismatch import GenerationBatchMismatch


class CacheMismatch(Rule):
    """Step-by-step decoding through the model's cache gives different logits than one full forward pass over the same tokens.

    Why is this bad?
        A KV cache is an optimisation: decoding one token at a time through it
        must give exactly the logits that calling the model on the whole
        sequence gives. A cache index off by one, positions that do not
        advance, or a mask not applied to the cached keys make generation
        differ from what the model was trained to do, for every prompt and in
        no batch-level test. maskcheck generates greedily for each probe prompt
        alone, then runs one forward pass over the prompt and the generated
        tokens and compares the logits at every generated position.
    """

    code = "MC307"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "Decoder", "prompt": 0, "tokens": "3 tokens", "step": 1, "position": 3, "max_abs_diff": 0.42}
    name = "cache-mismatch"
    severity = Severity.ERROR
    cause = "generation"
    engine = "dynamic"
    message = ("Decoding through the cache of {layer!r} ({layer_class}) gives different "
               "next-token logits than one forward pass over the same tokens: prompt {prompt} "
               "({tokens}), generated step {step} (position {position}), by up to "
               "{max_abs_diff:.3g}.")
    fix = ("Make {layer_class}.call_with_cache agree with call(): the cache slot each step "
           "writes (the previous token's index), the positions it adds (start at the cache "
           "index), and the mask over cached keys (slots not yet written stay masked).")
    fix_explained = ("Make the model's call_with_cache agree with call(): the cache slot each "
                     "step writes (the previous token's index), the positions it adds (start "
                     "at the cache index), and the mask over cached keys (slots not yet "
                     "written stay masked).")
    programs = ("generation",)

    def probe(self, ctx: Any) -> Iterator[Any]:
        measured = ctx.generation.cache
        if measured is not None:
            yield self.result(measured.leak, measured.fields)

    def supersedes(self, mine: Any, earlier: Any) -> bool:
        """A broken cache explains a right-padded batch's different tokens (a longer prompt's
        last tokens go through the cache one by one in a batch): one cause, one finding. A
        left-padded batch's difference is about the padding and stays."""
        return earlier.code == GenerationBatchMismatch.code and earlier.leak.padding == "post"

    VALID = (Valid("""
        import keras_hub

        class Decoder(keras_hub.models.GPT2CausalLM):
            def call_with_cache(self, token_ids, cache, cache_update_index):
                return super().call_with_cache(token_ids, cache, cache_update_index)

        backbone = keras_hub.models.GPT2Backbone(vocabulary_size=64, num_layers=1, num_heads=2,
                                                 hidden_dim=16, intermediate_dim=32,
                                                 max_sequence_length=32)
        model = Decoder(backbone, preprocessor=None, name="lm")
    """),)
    INVALID = (Invalid("""
        import keras_hub

        class Decoder(keras_hub.models.GPT2CausalLM):
            def call_with_cache(self, token_ids, cache, cache_update_index):
                return super().call_with_cache(token_ids, cache, 0)  # never advances

        backbone = keras_hub.models.GPT2Backbone(vocabulary_size=64, num_layers=1, num_heads=2,
                                                 hidden_dim=16, intermediate_dim=32,
                                                 max_sequence_length=32)
        model = Decoder(backbone, preprocessor=None, name="lm")
    """, at="lm"),)
