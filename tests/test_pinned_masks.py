"""Issue 22, parts 1 and 4: probes pin every mask, and every culprit is its own finding.

Each clean model here is built the way public code builds it (shrunk), and sits
beside a leaking twin, so each verdict is asserted both ways. A clean model
must come out of `--mode all` with no error-severity finding.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
L = keras.layers

import maskcheck  # noqa: E402
from maskcheck.dynamic.batches import Probe, prepare, stack_draws, stacked_inputs  # noqa: E402
from maskcheck.dynamic.program import pin_rows  # noqa: E402


def _errors(model, **settings):
    report = maskcheck.check(model, mode="all", **settings)
    assert not report.models[0].error, report.models[0].error
    return [(f.rule, f.layer) for f in report.all_findings if f.severity.value == "error"]


def _rules_at(model, **settings):
    report = maskcheck.check(model, mode="all", **settings)
    assert not report.models[0].error, report.models[0].error
    return {(f.rule, f.layer) for f in report.findings}


# --------------------------------------------------------------------------- models


@keras.saving.register_keras_serializable(package="maskcheck_tests")
class PositionalTokens(L.Layer):
    """Token plus learned position embedding; the mask is `ids != 0` (keras.io style)."""

    def __init__(self, vocab, dim, length, masked=True, **kwargs):
        super().__init__(**kwargs)
        self.vocab, self.dim, self.length, self.masked = vocab, dim, length, masked
        self.tokens = L.Embedding(vocab, dim)
        self.positions = L.Embedding(length, dim)

    def call(self, ids):
        positions = keras.ops.arange(keras.ops.shape(ids)[-1])
        return self.tokens(ids) + self.positions(positions)

    def compute_mask(self, ids, mask=None):
        return keras.ops.not_equal(ids, 0) if self.masked else None

    def get_config(self):
        return {**super().get_config(), "vocab": self.vocab, "dim": self.dim,
                "length": self.length, "masked": self.masked}


@keras.saving.register_keras_serializable(package="maskcheck_tests")
class TokenEncoder(L.Layer):
    """A custom encoder that embeds with mask_zero and hands the mask to its LSTM by hand."""

    def __init__(self, pass_mask=True, **kwargs):
        super().__init__(**kwargs)
        self.pass_mask = pass_mask
        self.embedding = L.Embedding(40, 8, mask_zero=True)
        self.rnn = L.LSTM(6)

    def call(self, ids):
        h = self.embedding(ids)
        mask = self.embedding.compute_mask(ids) if self.pass_mask else None
        return self.rnn(h, mask=mask)

    def get_config(self):
        return {**super().get_config(), "pass_mask": self.pass_mask}


def frozen_embedding_masking(masking: bool):
    """Pretrained-vector style: Embedding without mask_zero whose pad row is zeros, frozen,
    then Masking(0.0) makes the mask from the zero row."""
    ids = keras.Input((20,), dtype="int32")
    embedding = L.Embedding(50, 8, trainable=False, name="vectors")
    h = embedding(ids)
    if masking:
        h = L.Masking(0.0, name="masking")(h)
    h = L.LSTM(6, name="lstm")(h)
    model = keras.Model(ids, L.Dense(2, name="head")(h))
    weights = embedding.get_weights()[0]
    weights[0] = 0.0
    embedding.set_weights([weights])
    return model


def positional_tagger(masked: bool):
    ids = keras.Input((24,), dtype="int32")
    h = PositionalTokens(40, 8, 24, masked=masked, name="embed")(ids)
    h = L.LSTM(6, name="lstm")(h)
    return keras.Model(ids, L.Dense(3, name="head")(h))


def custom_encoder(pass_mask: bool):
    ids = keras.Input((None,), dtype="int32")
    h = TokenEncoder(pass_mask=pass_mask, name="encoder")(ids)
    return keras.Model(ids, L.Dense(2, name="head")(h))


def two_convs(causal: bool):
    ids = keras.Input((None,), dtype="int32")
    h = L.Embedding(50, 8, mask_zero=True)(ids)
    padding = "causal" if causal else "same"
    h = L.Conv1D(8, 3, padding=padding, name="a")(h)
    h = L.Conv1D(8, 3, padding=padding, name="b")(h)
    return keras.Model(ids, L.Dense(2, name="head")(h), name="tagger")


# --------------------------------------------------------------------------- part 1


def test_mask_made_by_masking_from_an_embedding_is_pinned():
    # the probes perturb the embedding's output at padded steps; Masking would then see
    # non-zero vectors and move its mask, unless every mask is pinned
    assert _errors(frozen_embedding_masking(masking=True)) == []
    assert _errors(frozen_embedding_masking(masking=False)) == [("MC102", "lstm")]


def test_custom_embedding_whose_mask_reads_the_ids():
    assert _errors(positional_tagger(masked=True)) == []
    assert _errors(positional_tagger(masked=False)) == [("MC102", "lstm")]


def test_mask_made_inside_a_custom_layer_and_passed_by_hand():
    assert _errors(custom_encoder(pass_mask=True)) == []
    assert {rule for rule, _ in _errors(custom_encoder(pass_mask=False))} == {"MC102"}


def test_clean_verdicts_survive_a_save_and_load(tmp_path):
    path = tmp_path / "positional.keras"
    positional_tagger(masked=True).save(path)
    report = maskcheck.check(keras.models.load_model(path), mode="all")
    assert [f for f in report.all_findings if f.severity.value == "error"] == []


def test_token_ids_are_never_changed_by_a_probe():
    model = positional_tagger(masked=True)
    from maskcheck.config import Config
    from maskcheck.dynamic.batches import synthesize
    from maskcheck.dynamic.plan import build_plan
    from maskcheck.static.adapter import adapt_model
    from maskcheck.static.dataflow import analyze

    graph = adapt_model(model)
    plan = build_plan(model, Config(), graph, analyze(graph))
    probe: Probe = synthesize(plan, Config())
    prep = prepare(model, plan, probe.x, probe.mask, None, "post")
    rows = stack_draws(prep.mask, probe.sides)
    stacked = stacked_inputs(prep, rows, seed=0)
    base = np.asarray(stacked)[rows.base_row]
    np.testing.assert_array_equal(np.asarray(stacked), base)


def test_pin_rows_point_each_draw_at_its_base_row():
    mask = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    rows = stack_draws(mask, ["post", "post"])
    pin = pin_rows(rows)
    assert pin.tolist() == [0, 1] * (rows.n // 2)
    assert (rows.draw[pin] == 0).all()


@pytest.mark.kerashub
def test_keras_hub_decoder_language_model():
    keras_hub = pytest.importorskip("keras_hub")

    def lm(mask_zero: bool):
        ids = keras.Input((16,), dtype="int32")
        h = keras_hub.layers.TokenAndPositionEmbedding(40, 16, 8, mask_zero=mask_zero)(ids)
        h = keras_hub.layers.TransformerDecoder(16, 2, name="decoder")(h)
        model = keras.Model(ids, L.Dense(40, name="logits")(h))
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    assert _errors(lm(mask_zero=True)) == []
    leaks = _errors(lm(mask_zero=False), padding="pre")  # causal attention over left padding
    assert ("MC102", "decoder") in leaks


# --------------------------------------------------------------------------- part 4


def test_every_culprit_is_its_own_finding():
    found = _rules_at(two_convs(causal=False))
    assert ("MC102", "a") in found and ("MC102", "b") in found
    report = maskcheck.check(two_convs(causal=False), mode="dynamic")
    assert {f.layer for f in report.all_findings if f.rule == "MC301"} == {"a", "b"}
    assert _errors(two_convs(causal=True), padding="post") == []


def one_conv():
    ids = keras.Input((None,), dtype="int32")
    h = L.Embedding(50, 8, mask_zero=True)(ids)
    h = L.Conv1D(8, 3, padding="same", name="a")(h)
    h = L.Conv1D(8, 3, padding="causal", name="b")(h)
    return keras.Model(ids, L.Dense(2, name="head")(h), name="tagger")


def test_a_new_culprit_is_new_to_a_baseline(tmp_path):
    from maskcheck.adoption.baseline import apply_baseline, read_baseline, write_baseline

    path = str(tmp_path / "baseline.json")
    write_baseline(path, maskcheck.check(one_conv(), mode="static", padding="post"))
    # 'b' turns from a causal into a centred convolution: a second culprit, not the same one
    later = apply_baseline(maskcheck.check(two_convs(causal=False), mode="static", padding="post"),
                           read_baseline(path))
    assert {(f.rule, f.layer) for f in later.findings} == {("MC102", "b")}


def test_a_culprit_behind_a_layer_that_passes_the_mask_on():
    """The mask survives the first culprit (it passes the mask on while mixing, MC105), so
    the conv after it receives a mask, ignores it and mixes: its own finding."""
    from maskcheck.integrations.zoo import NeighbourSmooth

    def model(smooth: bool):
        ids = keras.Input((None,), dtype="int32")
        h = L.Embedding(40, 8, mask_zero=True)(ids)
        if smooth:
            h = NeighbourSmooth(name="smooth")(h)
        h = L.Conv1D(8, 3, padding="same", name="b")(h)
        return keras.Model(ids, L.Dense(2, name="head")(h))

    report = maskcheck.check(model(smooth=True), mode="dynamic")
    assert {f.layer for f in report.all_findings if f.rule == "MC301"} == {"smooth", "b"}
    assert {("MC105", "smooth"), ("MC102", "b")} <= _rules_at(model(smooth=True))
    assert {(r, layer) for r, layer in _errors(model(smooth=False))} == {("MC102", "b")}


def test_a_mask_computed_from_the_ids_by_hand_stays_put():
    """No mask_zero: the pool's mask is `ids != 0`, computed in the graph. Changing padded
    token ids would move it; the probes perturb the embedding's output instead."""
    from maskcheck.integrations.zoo import ExplicitMaskPool, MaskIgnoringPool

    def model(pool):
        ids = keras.Input((None,), dtype="int32")
        h = L.Embedding(40, 8)(ids)
        mask = keras.ops.cast(keras.ops.not_equal(ids, 0), "float32")
        return keras.Model(ids, L.Dense(2, name="head")(pool(name="pool")(h, mask)))

    assert _errors(model(ExplicitMaskPool)) == []
    assert ("MC301", "pool") in _rules_at(model(MaskIgnoringPool)) or \
        ("MC102", "pool") in _rules_at(model(MaskIgnoringPool))
