"""Issue 22: a static loss finding about a user loss the probes measured and could not
move is a suspicion (info, `refuted_by`), never an error; a built-in loss is read exactly."""

from __future__ import annotations

import pytest

keras = pytest.importorskip("keras")
L, ops = keras.layers, keras.ops

import maskcheck  # noqa: E402


def masked_loss(y_true, y_pred):
    """The TensorFlow tutorial's masked loss: padded labels are 0 and weigh nothing."""
    loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    mask = ops.cast(ops.not_equal(y_true, 0), loss.dtype)
    return ops.sum(loss * mask) / ops.maximum(ops.sum(mask), 1.0)


def plain_loss(y_true, y_pred):
    return ops.mean(keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True))


def _tagger(loss):
    ids = keras.Input((None,), dtype="int32")
    h = L.Dense(8)(L.Embedding(40, 8)(ids))
    model = keras.Model(ids, L.Dense(5, name="tags")(h))
    model.compile("adam", loss)
    return model


def _at_tags(model):
    return {(f.rule, f.severity.value) for f in maskcheck.check(model, mode="all").findings
            if f.layer == "tags"}


def test_user_loss_that_masks_by_the_labels_is_not_an_error():
    found = maskcheck.check(_tagger(masked_loss), mode="all").findings
    [mc201] = [f for f in found if f.rule == "MC201"]
    assert mc201.severity.value == "info" and mc201.evidence["refuted_by"] == "MC303"
    assert not [f for f in found if f.severity.value == "error"]


def test_user_loss_that_counts_padding_stays_an_error():
    assert ("MC201", "error") in _at_tags(_tagger(plain_loss))


def test_builtin_loss_finding_is_never_refuted():
    assert ("MC201", "error") in _at_tags(_tagger(keras.losses.SparseCategoricalCrossentropy(
        from_logits=True)))
