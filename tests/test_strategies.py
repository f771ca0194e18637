"""maskcheck.strategies: batches that fit real Keras models, and a leak that shrinks."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import maskcheck
from fixtures.gallery import VOCAB, conv_tagger, fixed_length_mlp, masked_bilstm
from maskcheck.strategies import lengths, padded_batches

pytestmark = pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning")

FAST = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def tagger():
    return conv_tagger()


@pytest.fixture(scope="module")
def bilstm():
    return masked_bilstm()


@FAST
@given(st.data())
def test_lengths_respect_bounds_and_batch_size(data):
    max_len = data.draw(st.integers(0, 6), label="max_len")
    min_len = data.draw(st.integers(0, max_len), label="min_len")
    batch = data.draw(st.none() | st.integers(1, 5), label="batch_size")
    drawn = data.draw(lengths(max_len=max_len, min_len=min_len, batch_size=batch))
    assert isinstance(drawn, tuple)
    assert all(min_len <= n <= max_len for n in drawn)
    assert len(drawn) == batch if batch is not None else 1 <= len(drawn) <= 4


@pytest.mark.parametrize("make", [
    lambda m: lengths(max_len=-1),
    lambda m: lengths(max_len=2, min_len=3),
    lambda m: lengths(max_len=2, batch_size=0),
    lambda m: lengths(max_len=True),
    lambda m: lengths(max_len=2.5),
    lambda m: padded_batches(m, padding="both"),
    lambda m: padded_batches(m, max_len=0),
    lambda m: padded_batches(m, batch_size=0),
    lambda m: padded_batches(m, max_len=3, min_len=4),
    lambda m: padded_batches(fixed_length_mlp()),
    lambda m: padded_batches(keras.layers.Dense(2)),
], ids=["negative-max", "min-over-max", "zero-batch", "bool-max", "float-max", "padding-both",
        "zero-max-len", "zero-batch-size", "min-over-max-len", "no-padded-input", "no-inputs"])
def test_bad_arguments_raise_invalid_argument(make, tagger):
    with pytest.raises(InvalidArgument):
        make(tagger)


def test_lengths_is_keyword_only():
    with pytest.raises(TypeError):
        lengths(5)  # type: ignore[misc]


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_token_batches_fit_the_embedding_and_its_mask(tagger, padding):
    embedding = tagger.get_layer("embedding")

    @FAST
    @given(padded_batches(tagger, max_len=6, padding=padding))
    def check(batch):
        x, mask = batch
        assert x.dtype == np.int32 and mask.dtype == bool and x.shape == mask.shape
        assert ((x >= 1) & (x < VOCAB))[mask].all() and (x[~mask] == 0).all()
        # Keras agrees on which positions are padding.
        np.testing.assert_array_equal(np.asarray(embedding.compute_mask(x)), mask)
        for row in mask.astype(int):  # contiguous, on the requested side
            n = int(row.sum())
            expected = [1] * n + [0] * (len(row) - n) if padding == "post" else [0] * (len(row) - n) + [1] * n
            assert row.tolist() == expected

    check()


def test_float_batches_use_the_masking_value(bilstm):
    masking = bilstm.get_layer("masking")

    @FAST
    @given(padded_batches(bilstm, max_len=5, padding="pre"))
    def check(batch):
        x, mask = batch
        assert x.shape[:2] == mask.shape and x.shape[2] == 4 and x.dtype == np.float32
        assert (x[~mask] == masking.mask_value).all()
        np.testing.assert_array_equal(np.asarray(masking.compute_mask(x)), mask)

    check()


def test_explicit_mask_input_gets_the_mask():
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    padding_mask = keras.Input((None,), dtype="bool", name="padding_mask")
    h = keras.layers.Embedding(30, 4)(tokens)
    y = keras.layers.GlobalAveragePooling1D()(h, mask=padding_mask)
    model = keras.Model([tokens, padding_mask], y)

    @FAST
    @given(padded_batches(model, batch_size=3, max_len=4))
    def check(batch):
        (ids, mask_input), mask = batch
        assert ids.shape == mask.shape == mask_input.shape and ids.shape[0] == 3
        assert mask_input.dtype == bool and (mask_input == mask).all()
        assert (ids[mask] < 30).all() and (ids[~mask] == 0).all()
        assert tuple(model([ids, mask_input]).shape) == (3, 4)  # the model takes the batch

    check()


def test_property_finds_the_conv_leak_and_shrinks_to_the_smallest_length(tagger):
    """Conv1D(padding='same') reads the step after the last real one: the smallest
    failing batch is one sample of length 1 padded by one step."""
    tried = []

    @settings(max_examples=50, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(batch=padded_batches(tagger, max_len=5))
    def padding_never_changes_outputs(batch):
        x, mask = batch
        tried.append(batch)
        maskcheck.assert_padding_invariant(tagger, x, mask=mask)

    with pytest.raises(maskcheck.PaddingLeakError) as failure:
        padding_never_changes_outputs()
    x, mask = tried[-1]  # Hypothesis replays the shrunk example last
    assert mask.tolist() == [[True, False]]
    assert x.tolist() == [[1, 0]]
    assert failure.value.leak.layer == "conv" and failure.value.leak.sample == 0
    assert failure.value.leak.position == 0
