"""CTC and other sequence losses under the loss probes (issue 22, part 5), each leak with a clean twin.

The models are shrunk from the way public code builds them: the Keras ASR
example (frames through a strided convolution and a bidirectional RNN, a
`CTCLoss` function whose label and frame lengths are the padded widths), a
`keras.losses.CTC` model, and a model that computes CTC in `compute_loss`
with the label lengths read from the labels (pad id 0) and the frame
lengths from the frames (the fix the findings suggest). Labels are label
sequences of their own length, padded after with the pad id.

Keras 3.15's `keras.losses.CTC` raises inside the compiled loss when the
output carries a mask (keras-team/keras#23228): Keras applies the (batch,
time) mask as weights to the per-sample losses. The model cannot train;
that is MC103 at the output, with the exception's first line in evidence.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

import maskcheck

L = keras.layers
F, C, PAD = 3, 6, 0  # features per frame, classes (blank = C - 1), label pad id
BLANK = C - 1


@pytest.fixture(autouse=True)
def _seeded_weights():
    keras.utils.set_random_seed(1234)


def _data(frames: int = 12):
    """Post-padded frames and labels, as an ASR dataset's padded_batch gives them."""
    rng = np.random.default_rng(0)
    lengths = [12, 8, 5, 10]
    x = np.zeros((4, frames, F), "float32")
    y = np.full((4, 5), PAD, "int32")
    for i, n in enumerate(lengths):
        x[i, :n] = rng.normal(size=(n, F))
        y[i, :n // 2 - 1] = rng.integers(1, BLANK, n // 2 - 1)
    return x, y


class SpeechModel(keras.Model):
    """CTC in compute_loss. Clean: label lengths from the labels, frame lengths from the
    frames. `count_padding` builds the leaking twin: the padded widths as lengths."""

    count_padding = False

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        batch = ops.shape(y_pred)[0]
        if self.count_padding:
            label_length = ops.full((batch,), ops.shape(y)[1], "int32")
            frame_length = ops.full((batch,), ops.shape(y_pred)[1], "int32")
        else:
            label_length = ops.sum(ops.cast(ops.not_equal(y, PAD), "int32"), axis=1)
            frame_length = ops.sum(ops.cast(ops.any(ops.not_equal(x, 0.0), axis=-1), "int32"), axis=1)
        return ops.mean(ops.ctc_loss(y, y_pred, label_length, frame_length, mask_index=BLANK))


def speech_model(count_padding: bool):
    x = keras.Input((None, F))
    h = L.Masking(0.0)(x)
    h = L.Bidirectional(L.GRU(4, return_sequences=True))(h)
    model = SpeechModel(x, L.Dense(C, activation="softmax")(h))
    model.count_padding = count_padding
    model.compile("adam")
    return model


def masked_keras_ctc():
    """keras.losses.CTC under a Masking layer: Keras 3.15 raises in the compiled loss."""
    x = keras.Input((None, F))
    h = L.Bidirectional(L.GRU(4, return_sequences=True))(L.Masking(0.0)(x))
    model = keras.Model(x, L.Dense(C, activation="softmax")(h))
    model.compile("adam", keras.losses.CTC())
    return model


def frame_wise_keras_ctc():
    """keras.losses.CTC on an unmasked per-frame model: it takes every frame, padded ones too."""
    x = keras.Input((None, F))
    h = L.Dense(8, activation="relu")(x)
    model = keras.Model(x, L.Dense(C, activation="softmax")(h))
    model.compile("adam", keras.losses.CTC())
    return model


def asr_example():
    """The Keras ASR example's shape: strided conv (the output is shorter than the input),
    BiGRU, and a CTCLoss function with the padded widths as lengths. Crashed the probes."""
    def CTCLoss(y_true, y_pred):
        batch = ops.shape(y_pred)[0]
        label_length = ops.full((batch,), ops.shape(y_true)[1], "int32")
        input_length = ops.full((batch,), ops.shape(y_pred)[1], "int32")
        return ops.ctc_loss(y_true, y_pred, label_length, input_length, mask_index=BLANK)

    x = keras.Input((None, F))
    h = L.Conv1D(8, 3, strides=2, padding="same", activation="relu")(x)
    h = L.Bidirectional(L.GRU(4, return_sequences=True))(h)
    model = keras.Model(x, L.Dense(C, activation="softmax")(h))
    model.compile("adam", CTCLoss)
    return model


def _entry(report):
    entry = report.to_dict()["models"][0]
    assert entry["status"] != "error", entry["error"]  # never a target error
    return entry


def _errors(report):
    return {(f.rule, f.layer) for f in report.all_findings if f.severity.value == "error"}


# --------------------------------------------------------------------------- the twins


def test_ctc_in_compute_loss_with_lengths_is_clean():
    model = speech_model(count_padding=False)
    report = maskcheck.check(model, mode="all", padding="post")
    _entry(report)
    assert not _errors(report), report.findings
    x, y = _data()
    assert np.isfinite(float(model.compute_loss(x=x, y=y, y_pred=model(x))))  # it can train
    report = maskcheck.check(model, mode="all", data=(x, y))
    assert not _errors(report), report.findings


def test_ctc_counting_padded_labels_and_frames_leaks():
    report = maskcheck.check(speech_model(count_padding=True), mode="all", padding="post")
    _entry(report)
    found = [f for f in report.all_findings if f.rule in ("MC203", "MC303") and "dynamic" in f.kind]
    assert found and found[0].severity.value == "error", report.findings
    assert found[0].evidence.get("loss_diff", 0) > 0
    x, y = _data()
    report = maskcheck.check(speech_model(count_padding=True), mode="all", data=(x, y))
    assert any(f.evidence.get("what") == "labels" for f in report.findings), report.findings


def test_keras_ctc_under_a_mask_raises_in_the_loss_and_is_a_finding():
    """keras-team/keras#23228: the model cannot train, so it is not clean (it was)."""
    model = masked_keras_ctc()
    x, y = _data()
    with pytest.raises(Exception):  # what fit computes first
        model.compute_loss(x=x, y=y, y_pred=model(x))
    for kwargs in ({}, {"data": (x, y)}):
        report = maskcheck.check(model, mode="all", **kwargs)
        _entry(report)
        found = [f for f in report.all_findings if f.rule == "MC103"]
        assert found, report.findings
        f = found[0]
        assert f.severity.value == "error" and f.layer == model.layers[-1].name
        assert "Incompatible shapes" in f.evidence["exception"] or "shape" in f.evidence["exception"]
        assert "{{function_node" not in f.evidence["exception"]
        assert "ctc" in f.message and "drop the mask" in f.fix
    # the inline assertion says so too (the loss probes cannot even compute it)
    with pytest.raises(maskcheck.PaddingLeakError, match="raises on the output's mask"):
        maskcheck.assert_loss_ignores_padding(model, x, y, lengths=[12, 8, 5, 10])
    # its clean twin computes CTC with lengths instead
    clean = speech_model(False)
    assert not _errors(maskcheck.check(clean, mode="all", padding="post"))
    maskcheck.assert_loss_ignores_padding(clean, x, y, lengths=[12, 8, 5, 10])


def test_keras_ctc_counts_padded_frames():
    """keras.losses.CTC reads label lengths from the labels (0 is its pad) but takes every
    frame: padded frames are counted. The probe says so by changing the predictions at
    padded frames with every mask and label held."""
    model = frame_wise_keras_ctc()
    x, y = _data()
    for kwargs in ({}, {"data": (x, y)}):
        report = maskcheck.check(model, mode="all", **kwargs)
        _entry(report)
        loss = [f for f in report.all_findings if f.rule in ("MC201", "MC303")]
        assert loss and loss[0].evidence.get("what") == "frames", report.findings
        assert loss[0].severity.value == "error"


def test_asr_example_is_probed_not_a_crash():
    """The strided model gave 'operands could not be broadcast together' (a target error)."""
    model = asr_example()
    report = maskcheck.check(model, mode="all")
    _entry(report)
    loss = [f for f in report.all_findings if f.rule in ("MC201", "MC303")]
    assert loss and loss[0].evidence.get("what") in ("labels", "frames"), report.findings
    x, y = _data()
    report = maskcheck.check(model, mode="all", data=(x, y))
    _entry(report)
    assert [f for f in report.all_findings if f.rule in ("MC201", "MC303", "MC402")], report.findings


def test_a_loss_the_probes_cannot_drive_is_a_note():
    """A loss that takes only (batch, 2) span labels: no label form the probes make fits it,
    so the loss is not probed, and the report says why (no exception, no target error)."""
    def span_loss(y_true, y_pred):
        if y_true.shape[-1] != 2 or len(y_true.shape) != 2:
            raise ValueError(f"span_loss takes (batch, 2) start/end labels, got {y_true.shape}")
        start = ops.take_along_axis(y_pred[..., 0], ops.cast(y_true[:, :1], "int32"), axis=1)
        return -ops.mean(ops.log(start + 1e-7))

    x = keras.Input((None,), dtype="int32")
    h = L.Embedding(20, 4, mask_zero=True)(x)
    h = L.GRU(4, return_sequences=True)(h)
    model = keras.Model(x, L.Dense(3, activation="softmax")(h))
    model.compile("adam", span_loss)
    report = maskcheck.check(model, mode="all")
    entry = _entry(report)
    note = entry["stats"].get("loss", "")
    assert note.startswith("not probed") and "span_loss takes" in note, entry["stats"]
    from maskcheck.reporters.text import render

    assert "note: loss checks not probed" in render(report)
