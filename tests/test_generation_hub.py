"""The generation checks (MC306, MC307, MC110) on keras-hub causal LMs from tiny configs.

Opt-in: `pytest -m kerashub`. Random weights, tokenizers built here (a byte-pair
vocabulary for GPT-2, a SentencePiece model trained on the spot for Llama and
Gemma), no downloads. Each model is checked twice, as its packer pads: on the
right (keras-hub's default, batch-equivalent: the report is empty) and on the
left (MC306 with the prompt, the step and the side, and MC110 statically). A
custom `CausalLM` whose cache path does not agree with its forward pass gets
MC307; its faithful twin is clean.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

pytestmark = [pytest.mark.kerashub, pytest.mark.filterwarnings("ignore::UserWarning")]
keras_hub = pytest.importorskip("keras_hub")

import keras  # noqa: E402
from keras import ops  # noqa: E402

import maskcheck  # noqa: E402

TINY = dict(num_layers=1, num_heads=2, num_query_heads=2, num_key_value_heads=1, hidden_dim=16,
            intermediate_dim=32, head_dim=8, max_sequence_length=32)


def _kwargs(cls, **values):
    import inspect

    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in values.items() if k in params}


def _sentencepiece(bos: str, eos: str) -> bytes:
    import sentencepiece as spm

    words = [f"w{i}" for i in range(200)]
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(" ".join(words[i:i + 7]) for i in range(190)),
        model_writer=buffer, vocab_size=48, model_type="word", pad_id=0, unk_id=1, bos_id=2,
        eos_id=3, pad_piece="<pad>", unk_piece="<unk>", bos_piece=bos, eos_piece=eos,
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"], minloglevel=2)
    return buffer.getvalue()


def _gpt2_tokenizer():
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = {"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate(letters)}, "ab": 27}
    return keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=["a b"])


MODELS = {
    "GPT2": ("GPT2Backbone", "GPT2CausalLM", "GPT2CausalLMPreprocessor", _gpt2_tokenizer),
    "Llama": ("LlamaBackbone", "LlamaCausalLM", "LlamaCausalLMPreprocessor",
              lambda: keras_hub.models.LlamaTokenizer(proto=_sentencepiece("<s>", "</s>"))),
    "Gemma": ("GemmaBackbone", "GemmaCausalLM", "GemmaCausalLMPreprocessor",
              lambda: keras_hub.models.GemmaTokenizer(proto=_sentencepiece("<bos>", "<eos>"))),
}


def _causal_lm(name: str, side: str | None = "right", cls=None):
    """A tiny causal LM; `side` is its packer's padding side (None: no preprocessor)."""
    backbone_name, lm_name, preprocessor_name, tokenizer = MODELS[name]
    keras.utils.set_random_seed(1)
    preprocessor = None
    vocabulary = 64
    if side is not None:
        tok = tokenizer()
        vocabulary = tok.vocabulary_size()
        preprocessor = getattr(keras_hub.models, preprocessor_name)(tok, sequence_length=16)
        preprocessor.build(None)
        preprocessor.packer.padding_side = side
    backbone_cls = getattr(keras_hub.models, backbone_name)
    backbone = backbone_cls(**_kwargs(backbone_cls, vocabulary_size=vocabulary, **TINY))
    return (cls or getattr(keras_hub.models, lm_name))(backbone, preprocessor=preprocessor)


def _generation(report):
    return [f for f in report.all_findings if f.rule in ("MC306", "MC307", "MC110")]


@pytest.mark.parametrize("name", MODELS)
def test_right_padding_is_batch_equivalent_and_the_report_is_clean(name):
    model = _causal_lm(name, "right")
    report = maskcheck.check(model, seed=0)
    assert report.models[0].error is None
    assert report.models[0].stats["generation"] == {"sides": ["post"], "steps": 4, "prompts": 4}
    assert report.findings == (), [(f.rule, f.layer, f.message) for f in report.all_findings]


@pytest.mark.parametrize("name", MODELS)
def test_left_padding_is_mc306_with_prompt_step_and_side_and_mc110_statically(name):
    model = _causal_lm(name, "left")
    report = maskcheck.check(model, seed=0)
    found = {f.rule: f for f in _generation(report)}
    assert set(found) == {"MC306", "MC110"}, [(f.rule, f.message) for f in report.all_findings]
    mc306 = found["MC306"]
    assert mc306.severity.value == "error" and mc306.layer == model.name
    evidence = mc306.evidence
    assert evidence["padding"] == "pre" and isinstance(evidence["step"], int)
    assert isinstance(evidence["prompt"], int) and evidence["prompt_ids"]
    assert f"Prompt {evidence['prompt']} " in mc306.message
    assert "pre-padded batch" in mc306.message and f"step {evidence['step']}" in mc306.message
    # what the batch changed, in words, and the fix for that cause; right padding is the cure
    assert "left pad slots" in mc306.message or "attends to pad" in mc306.message
    assert "pad prompts on the right" in mc306.fix
    assert found["MC110"].kind == ("static",) and 'padding_side="left"' in found["MC110"].message
    # MC110 is static: reported before anything runs
    static = maskcheck.check(model, mode="static")
    assert [f.rule for f in _generation(static)] == ["MC110"]


def test_without_a_preprocessor_both_sides_are_probed():
    model = _causal_lm("GPT2", side=None)
    report = maskcheck.check(model, seed=0)
    assert report.models[0].stats["generation"]["sides"] == ["post", "pre"]
    sides = [f.evidence["padding"] for f in report.all_findings if f.rule == "MC306"]
    assert sides == ["pre"]
    # declared right padding: nothing to say about generation
    assert _generation(maskcheck.check(model, padding="post", seed=0)) == []
    # declared left padding: MC110 before anything runs
    assert [f.rule for f in _generation(maskcheck.check(model, padding="pre", mode="static"))] \
        == ["MC110"]


def test_the_check_is_deterministic_and_leaves_the_model_as_it_was():
    model = _causal_lm("GPT2", "left")
    sampler = model.sampler
    first = maskcheck.check(model, seed=3).to_dict()
    second = maskcheck.check(model, seed=3).to_dict()
    for report in (first, second):
        for entry in report["models"]:
            entry.pop("stats")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert model.sampler is sampler
    out = model.generate(["abc", "a"], max_length=12)  # the model still generates as before
    assert len(out) == 2


def test_generate_steps_sets_the_tokens_per_prompt():
    model = _causal_lm("GPT2", "right")
    report = maskcheck.check(model, generate_steps=2, select=["MC306", "MC307"])
    assert report.models[0].stats["generation"]["steps"] == 2
    assert report.findings == ()


# --- MC307: a custom CausalLM whose cache does not agree with its forward pass -----------


class OwnCachedCall(keras_hub.models.GPT2CausalLM):
    """A user's own copy of GPT-2's cached call; `first_position` says where the positions
    of the tokens passed in start."""

    def first_position(self, cache_update_index):
        return cache_update_index

    def call_with_cache(self, token_ids, cache, cache_update_index):
        tokens = self.backbone.token_embedding(token_ids)
        positions = self.backbone.position_embedding(
            tokens, start_index=self.first_position(cache_update_index))
        x = self.backbone.embeddings_add((tokens, positions))
        caches = []
        for i, layer in enumerate(self.backbone.transformer_layers):
            x, next_cache = layer(x, self_attention_cache=cache[:, i, ...],
                                  self_attention_cache_update_index=cache_update_index)
            caches.append(next_cache)
        x = self.backbone.layer_norm(x)
        return self.backbone.token_embedding(x, reverse=True), x, ops.stack(caches, axis=1)


class StalePositions(OwnCachedCall):
    """Decodes through the cache with positions that never advance (always 0)."""

    def first_position(self, cache_update_index):
        return 0  # the bug


class FaithfulPositions(OwnCachedCall):
    """The twin: the same code, positions starting at the cache index."""


class FrozenCacheIndex(keras_hub.models.GPT2CausalLM):
    """Writes every decoding step's keys and values into cache slot 0."""

    def call_with_cache(self, token_ids, cache, cache_update_index):
        return super().call_with_cache(token_ids, cache, 0)


@pytest.mark.parametrize("buggy", [StalePositions, FrozenCacheIndex])
def test_a_cache_bug_is_mc307_and_its_twin_is_clean(buggy):
    report = maskcheck.check(_causal_lm("GPT2", "right", cls=buggy), seed=0)
    mc307 = [f for f in report.all_findings if f.rule == "MC307"]
    assert len(mc307) == 1, [(f.rule, f.message) for f in report.all_findings]
    assert "call_with_cache" in mc307[0].fix and mc307[0].layer_class == buggy.__name__
    assert isinstance(mc307[0].evidence["step"], int)
    # under right padding a broken cache is also why a batch differs: one cause, one finding
    assert not [f for f in report.all_findings if f.rule == "MC306"]
    twin = maskcheck.check(_causal_lm("GPT2", "right", cls=FaithfulPositions), seed=0)
    assert twin.findings == (), [(f.rule, f.message) for f in twin.findings]


def test_assert_batch_equivalent_on_keras_hub_generate():
    # the public assertion around the model's own generate(): right padding holds, left not
    model = _causal_lm("GPT2", side=None)
    model.compile(sampler="greedy")
    rng = np.random.default_rng(0)
    prompts = [rng.integers(1, 60, n).astype("int32") for n in (5, 2, 4)]

    def generate(batch, steps=3):
        ids = np.concatenate([batch["token_ids"], np.zeros((len(ids0 := batch["token_ids"]), steps),
                                                           "int32")], axis=1)
        mask = np.concatenate([batch["padding_mask"], np.zeros((len(ids0), steps), bool)], axis=1)
        out = model.generate({"token_ids": ids, "padding_mask": mask}, stop_token_ids=None)
        return out["token_ids"]

    samples = [{"token_ids": p, "padding_mask": np.ones(len(p), bool)} for p in prompts]
    maskcheck.assert_batch_equivalent(generate, samples, side="right", batch_sizes=(1, 3))
    with pytest.raises(maskcheck.PaddingLeakError, match="left-padded batch of 3"):
        maskcheck.assert_batch_equivalent(generate, samples, side="left", batch_sizes=(1, 3))


# --- sequence-to-sequence models: prompts are the encoder's input --------------------------


def _seq2seq(backbone_name: str, lm_name: str):
    backbone_cls = getattr(keras_hub.models, backbone_name, None)
    if backbone_cls is None or getattr(keras_hub.models, lm_name, None) is None:
        pytest.skip(f"keras-hub {keras_hub.__version__} has no {lm_name}")
    keras.utils.set_random_seed(1)
    backbone = backbone_cls(**_kwargs(backbone_cls, vocabulary_size=64, key_value_dim=8,
                                      dropout=0.0, **TINY))
    return getattr(keras_hub.models, lm_name)(backbone, preprocessor=None)


def test_bart_encoder_prompts_left_padded_shift_absolute_positions():
    # BART's encoder adds learned absolute positions: left-padded prompts move them (MC306,
    # the cause named "positions"); right-padded ones do not
    model = _seq2seq("BartBackbone", "BartSeq2SeqLM")
    right = maskcheck.check(model, padding="post", select=["MC306", "MC307"], seed=0)
    assert right.findings == () and right.models[0].stats["generation"]["sides"] == ["post"]
    left = maskcheck.check(model, padding="pre", select=["MC306", "MC307"], seed=0)
    assert [f.rule for f in left.findings] == ["MC306"]
    assert tuple(left.findings[0].evidence["causes"]) == ("positions",)
    assert "per-row positions" in left.findings[0].fix


def test_t5_relative_positions_are_batch_equivalent_on_both_sides():
    # the twin: T5's encoder has relative positions and masks its padding
    model = _seq2seq("T5Backbone", "T5Seq2SeqLM")
    report = maskcheck.check(model, select=["MC306", "MC307", "MC110"], seed=0)
    assert report.models[0].stats["generation"]["sides"] == ["post", "pre"]
    assert report.findings == (), [(f.rule, f.message) for f in report.all_findings]


def test_generation_runs_on_the_gpu_when_tensorflow_sees_one():
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        pytest.skip("no GPU visible to TensorFlow")
    for side, expected in (("right", set()), ("left", {"MC306", "MC110"})):
        report = maskcheck.check(_causal_lm("GPT2", side), device="gpu", seed=0)
        assert {f.rule for f in _generation(report)} == expected
