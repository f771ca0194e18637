"""`maskcheck.assert_batch_equivalent` on real Keras models: functions of a padded batch that
give each sample what it gets alone pass; ones that depend on the batch fail, naming the
sample, the batch and the position. Each batch-dependent function has a batch-invariant twin."""

from __future__ import annotations

import numpy as np
import pytest

import keras

import maskcheck

T_MAX = 16


def _tagger(absolute_positions: bool) -> keras.Model:
    """Per-position outputs from token ids and a padding mask; with `absolute_positions`, a
    position table counted from the first slot of the batch is added (GPT-2 style)."""
    keras.utils.set_random_seed(3)
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="bool", name="padding_mask")
    h = keras.layers.Embedding(50, 8)(tokens)
    if absolute_positions:
        positions = keras.layers.Lambda(
            lambda t: keras.ops.broadcast_to(keras.ops.arange(keras.ops.shape(t)[1])[None],
                                             keras.ops.shape(t)))(tokens)
        h = h + keras.layers.Embedding(T_MAX, 8)(positions)
    h = keras.layers.Dense(8, activation="tanh")(h)
    out = keras.layers.Dense(5)(h)
    return keras.Model([tokens, mask], out)


def _pooler(masked: bool) -> keras.Model:
    """One row per sample: a mean over time, with or without the padding mask."""
    keras.utils.set_random_seed(4)
    tokens = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=masked)(tokens)
    out = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(tokens, out)


def _samples(lengths=(5, 2, 7, 3), seed=0):
    rng = np.random.default_rng(seed)
    return [{"token_ids": rng.integers(1, 50, n).astype("int32"),
             "padding_mask": np.ones(n, dtype=bool)} for n in lengths]


def _fn(model):
    return lambda batch: model({"token_ids": batch["token_ids"],
                                "padding_mask": batch["padding_mask"]}, training=False)


def test_position_wise_model_is_batch_equivalent_on_both_sides():
    maskcheck.assert_batch_equivalent(_fn(_tagger(absolute_positions=False)), _samples())


def test_absolute_positions_are_batch_equivalent_under_right_padding():
    maskcheck.assert_batch_equivalent(_fn(_tagger(absolute_positions=True)), _samples(),
                                      side="right")


def test_absolute_positions_under_left_padding_raise_naming_sample_batch_and_position():
    with pytest.raises(maskcheck.PaddingLeakError) as raised:
        maskcheck.assert_batch_equivalent(_fn(_tagger(absolute_positions=True)), _samples(),
                                          side="left")
    message = str(raised.value)
    # batches of 2 in order come first: (0, 1); sample 1 (length 2) sits after 3 pads
    assert message.startswith("sample 1 (length 2) gives a different result in a left-padded "
                               "batch of 2 (samples 0, 1, row 1) than alone: position 0"), message
    assert "atol" in message
    leak = raised.value.leak
    assert (leak.sample, leak.position, leak.padding) == (1, 0, "pre")


def test_both_sides_is_the_default_and_finds_the_left_side():
    with pytest.raises(maskcheck.PaddingLeakError, match="left-padded"):
        maskcheck.assert_batch_equivalent(_fn(_tagger(absolute_positions=True)), _samples())


def test_integer_outputs_must_be_equal():
    # greedy "next token" per position: token ids compare exactly
    model = _tagger(absolute_positions=True)

    def greedy(batch):
        return np.argmax(np.asarray(_fn(model)(batch)), axis=-1)

    maskcheck.assert_batch_equivalent(greedy, _samples(), side="right")
    with pytest.raises(maskcheck.PaddingLeakError, match=r"in the batch, \d+ alone$"):
        maskcheck.assert_batch_equivalent(greedy, _samples(), side="left")


def test_per_sample_outputs_compare_whole_rows():
    samples = [s["token_ids"] for s in _samples()]
    fn = lambda batch: _pooler(masked=True)(batch, training=False)  # noqa: E731
    maskcheck.assert_batch_equivalent(fn, samples)
    unmasked = _pooler(masked=False)
    with pytest.raises(maskcheck.PaddingLeakError, match="right-padded batch of 2"):
        maskcheck.assert_batch_equivalent(lambda b: unmasked(b, training=False), samples)


def test_generation_appended_after_the_padded_prompts_is_compared_per_sample():
    # a decoding loop that appends 3 tokens after the padded batch: left padding keeps
    # each prompt's last token next to its completion; positions past the batch count
    model = _tagger(absolute_positions=False)

    def generate(batch, steps=3):
        ids, mask = batch["token_ids"], batch["padding_mask"]
        for _ in range(steps):
            logits = np.asarray(_fn(model)({"token_ids": ids, "padding_mask": mask}))
            token = np.argmax(logits[:, -1], axis=-1).astype("int32")[:, None]
            ids = np.concatenate([ids, token], axis=1)
            mask = np.concatenate([mask, np.ones_like(token, dtype=bool)], axis=1)
        return ids

    maskcheck.assert_batch_equivalent(generate, _samples(), side="left")
    with pytest.raises(maskcheck.PaddingLeakError, match="right-padded"):
        # right padding puts pad tokens between a prompt and its completion
        maskcheck.assert_batch_equivalent(generate, _samples(), side="right")


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="side must be"):
        maskcheck.assert_batch_equivalent(lambda b: b, _samples(), side="middle")
    with pytest.raises(ValueError, match="at least two samples"):
        maskcheck.assert_batch_equivalent(lambda b: b, _samples()[:1])
    with pytest.raises(ValueError, match="share their first axis"):
        maskcheck.assert_batch_equivalent(lambda b: b, [{"a": np.ones(2), "b": np.ones(3)}] * 2)


def test_the_fixture_exposes_it_with_the_test_settings(maskcheck):
    model = _tagger(absolute_positions=True)
    maskcheck.assert_batch_equivalent(_fn(model), _samples(), side="right")
    with pytest.raises(AssertionError, match="left-padded"):
        maskcheck.assert_batch_equivalent(_fn(model), _samples(), side="left")
