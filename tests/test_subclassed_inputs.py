"""Issue 22, part 6: a subclassed encoder-decoder (`[source, target]` token inputs, no
declared signature) is probed from the shapes it was first called on, not skipped."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
L = keras.layers

import maskcheck  # noqa: E402


class Seq2Seq(keras.Model):
    """The keras.io character-level translation model, subclassed and shrunk; the
    decoder takes the encoder's state and (when `masked`) the target's mask by hand."""

    def __init__(self, masked=True, **kwargs):
        super().__init__(**kwargs)
        self.masked = masked
        self.source_embedding = L.Embedding(40, 8, mask_zero=masked)
        self.target_embedding = L.Embedding(40, 8, mask_zero=masked)
        self.encoder = L.LSTM(8, return_state=True)
        self.decoder = L.LSTM(8, return_sequences=True)
        self.logits = L.Dense(40)

    def call(self, inputs):
        source, target = inputs
        _, h, c = self.encoder(self.source_embedding(source))
        mask = self.target_embedding.compute_mask(target) if self.masked else None
        y = self.decoder(self.target_embedding(target), initial_state=[h, c], mask=mask)
        return self.logits(y)


class DictInputs(keras.Model):
    """A subclassed tagger over a dict of token ids and per-step float features."""

    def __init__(self, masked=True, **kwargs):
        super().__init__(**kwargs)
        self.masked = masked
        self.embedding = L.Embedding(30, 8, mask_zero=masked)
        self.features = L.Dense(8)
        self.add = L.Add()
        self.pool = L.GlobalAveragePooling1D()
        self.head = L.Dense(2)

    def call(self, inputs):
        h = self.add([self.embedding(inputs["ids"]), self.features(inputs["extra"])])
        # (Add drops the mask in an eager subclassed call, so it is passed on by hand)
        return self.head(self.pool(h, mask=self.embedding.compute_mask(inputs["ids"])))


def _built(model, x):
    model(x)
    return model


def _errors(model):
    report = maskcheck.check(model, mode="all")
    assert report.models[0].error is None, report.models[0].error
    return {(f.rule, f.severity.value) for f in report.all_findings if f.severity.value == "error"}


def test_two_input_encoder_decoder_is_probed():
    x = [np.ones((2, 7), "int32"), np.ones((2, 5), "int32")]
    clean = _built(Seq2Seq(masked=True), x)
    assert _errors(clean) == set()
    leaking = _built(Seq2Seq(masked=False), x)
    assert ("MC301", "error") in _errors(leaking)


def test_which_inputs_take_ids_is_found_by_a_symbolic_call():
    from maskcheck.config import Config
    from maskcheck.dynamic.plan import build_plan

    x = {"ids": np.ones((2, 6), "int32"), "extra": np.ones((2, 6, 3), "float32")}
    model = _built(DictInputs(), x)
    plan = build_plan(model, Config())
    assert plan.structure == "dict"
    assert {i.name: (i.dtype, i.kind) for i in plan.inputs} == {
        "ids": ("int32", "tokens"), "extra": ("float32", "values")}
    assert _errors(model) == set()
    assert ("MC301", "error") in _errors(_built(DictInputs(masked=False), x))
