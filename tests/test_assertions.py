"""maskcheck.assert_padding_invariant / assert_loss_ignores_padding on real Keras models."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

import maskcheck
from fixtures.gallery import conv_tagger, lstm_tagger

pytestmark = pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning")

POST = np.array([[5, 7, 9, 0, 0], [3, 0, 0, 0, 0]], dtype="int32")
PRE = np.array([[0, 0, 5, 7, 9], [0, 0, 0, 0, 3]], dtype="int32")
LABELS = np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0]], dtype="int32")


def compiled(model):
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="module")
def leaky():
    return compiled(conv_tagger())


@pytest.fixture(scope="module")
def clean():
    return compiled(lstm_tagger())


def causal_tagger():
    """Embedding(mask_zero) -> causal Conv1D: safe under post-padding, leaks under pre-padding."""
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(100, 8, mask_zero=True, name="embedding")(x)
    h = keras.layers.Conv1D(8, 3, padding="causal", name="causal_conv")(h)
    return keras.Model(x, keras.layers.Dense(3, name="tags")(h), name="causal_tagger")


def test_leaking_model_raises_an_assertion_error_naming_where(leaky):
    with pytest.raises(maskcheck.PaddingLeakError) as failure:
        maskcheck.assert_padding_invariant(leaky, POST, lengths=[3, 1])
    error, leak = failure.value, failure.value.leak
    assert isinstance(error, AssertionError)
    assert (leak.layer, leak.layer_class, leak.padding, leak.kind) == ("conv", "Conv1D", "post", "outputs")
    assert 0 <= leak.sample < 2 and 0 <= leak.position < [3, 1][leak.sample]
    message = str(error)
    assert "model 'conv_tagger'" in message
    assert "layer 'conv' (Conv1D)" in message
    assert f"sample {leak.sample}, position {leak.position}" in message
    assert "post-padding" in message
    assert f"max |diff| = {leak.max_abs_diff:.3g}" in message and leak.max_abs_diff > 1e-3
    assert 3 <= len(message.splitlines()) <= 6


def test_clean_model_passes(clean):
    maskcheck.assert_padding_invariant(clean, POST, lengths=[3, 1])
    maskcheck.assert_padding_invariant(clean, POST)  # mask from Embedding(mask_zero)
    maskcheck.assert_padding_invariant(clean, PRE, mask=PRE != 0, padding="pre")


def test_padding_side_decides_for_a_causal_conv():
    model = causal_tagger()
    maskcheck.assert_padding_invariant(model, POST, lengths=[3, 1], padding="post")
    with pytest.raises(maskcheck.PaddingLeakError, match=r"(?s)'causal_conv'.*pre-padding"):
        maskcheck.assert_padding_invariant(model, PRE, lengths=[3, 1], padding="pre")


def test_loss_assertion(leaky, clean):
    # lstm_tagger carries the mask to its output, so Keras masks the loss.
    maskcheck.assert_loss_ignores_padding(clean, POST, LABELS, lengths=[3, 1])
    # conv_tagger drops the mask: padded label positions count in the loss.
    with pytest.raises(maskcheck.PaddingLeakError) as failure:
        maskcheck.assert_loss_ignores_padding(leaky, POST, LABELS, lengths=[3, 1])
    assert failure.value.leak.kind in ("loss", "gradients")
    assert "sample" in str(failure.value) and "post-padding" in str(failure.value)


def test_bad_arguments_are_value_errors_not_assertion_failures(clean):
    with pytest.raises(ValueError, match="padding"):
        maskcheck.assert_padding_invariant(clean, POST, padding="middle")
    with pytest.raises(TypeError):
        maskcheck.assert_padding_invariant(clean, POST, [3, 1], None, "post", False, 1e-5)  # atol is keyword-only


def test_import_maskcheck_stays_light():
    code = ("import sys, maskcheck, maskcheck.assertions, maskcheck.pytest_plugin\n"
            "assert maskcheck.PaddingLeakError is maskcheck.assertions.PaddingLeakError\n"
            "assert issubclass(maskcheck.PaddingLeakError, AssertionError)\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'hypothesis', 'numpy') or m in ('maskcheck.probe', 'maskcheck.dynamic'))\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
