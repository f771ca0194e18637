"""SPEC 9, inconclusive is not clean: when the probes cannot measure a model (outputs of an
ordinary unpadded batch that are NaN or Inf, or that change when the same batch runs
twice) the report says so; `--mode dynamic` makes that the target's error (exit 2) and
`--mode all` keeps the static findings with a note. A stateful RNN (fixed batch) is
probed at its declared batch size, its states reset before each pass.

Each bad model has a twin that differs only in what is tested and must stay as it was."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import maskcheck
from maskcheck.cli import main


@pytest.fixture(autouse=True)
def _seeded_weights():
    """Same initial weights on every run: a failure reproduces."""
    keras.utils.set_random_seed(1234)


def tagger(*, nan: bool = False, leak: bool = False) -> keras.Model:
    """A masked LSTM tagger; `leak` puts a Conv1D (drops the mask, mixes padding) before the
    LSTM; `nan` sets the last Dense kernel to NaN (every output is NaN, padded or not)."""
    tokens = keras.Input((10,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(40, 8, mask_zero=True)(tokens)
    if leak:
        h = keras.layers.Conv1D(8, 3, padding="same")(h)
    h = keras.layers.LSTM(8, return_sequences=True)(h)
    head = keras.layers.Dense(3)
    model = keras.Model(tokens, head(h), name="tagger")
    if nan:
        kernel, bias = head.get_weights()
        head.set_weights([np.full_like(kernel, np.nan), bias])
    return model


def stateful(batch: int, *, leak: bool = False) -> keras.Model:
    """A stateful LSTM tagger built for `batch` rows (keras.Input(batch_shape=...))."""
    tokens = keras.Input(batch_shape=(batch, 10), dtype="int32", name="tokens")
    h = keras.layers.Embedding(40, 8, mask_zero=True)(tokens)
    if leak:
        h = keras.layers.Conv1D(8, 3, padding="same")(h)
    h = keras.layers.LSTM(8, return_sequences=True, stateful=True)(h)
    return keras.Model(tokens, keras.layers.Dense(3)(h), name="stateful")


class Counter(keras.layers.Layer):
    """Adds how often it was called: state kept between calls that nothing resets."""

    def build(self, shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def call(self, x):
        self.calls.assign_add(1.0)
        return x + self.calls


def codes(report) -> set[str]:
    return {f.rule for m in report.models for f in m.all_findings}


def invoke(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --------------------------------------------------------------------------- non-finite


def test_nan_outputs_on_unpadded_batches_are_inconclusive_not_clean(tmp_path):
    """Bad: every output NaN. --mode dynamic is exit 2 with one line naming the output;
    --mode all has no findings and a visible note in every format (JSON keeps the schema's
    status "ok", the static engine having found nothing, with the note in stats.dynamic)."""
    path = tmp_path / "nan.keras"
    tagger(nan=True).save(path)
    result = invoke(path, "--mode", "dynamic")
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if "[Inconclusive]" in line]
    assert len(error) == 1 and "'dense" in error[0] and "NaN on an unpadded batch" in error[0]
    assert "MC305" not in result.output  # not an empty-sample finding: nothing is measurable

    result = invoke(path, "--mode", "all", "--format", "json")
    assert result.exit_code == 0, result.output  # exit status follows the findings in --mode all
    model = json.loads(result.output)["models"][0]
    assert model["status"] == "ok" and not model["findings"]
    assert model["stats"]["dynamic"].startswith("inconclusive: output 'dense")
    text = invoke(path, "--mode", "all").output
    assert "note: dynamic checks inconclusive" in text and "1 inconclusive" in text
    github = invoke(path, "--mode", "all", "--format", "github").output
    assert github.startswith("::warning ") and "inconclusive" in github
    sarif = json.loads(invoke(path, "--mode", "all", "--format", "sarif").output)
    notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert [n["descriptor"]["id"] for n in notes] == ["inconclusive"]
    assert "dynamic checks inconclusive" in invoke(path, "--mode", "all", "--format", "junit").output
    invoke(path, "--mode", "all", "--format", "html", "--output", tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert 'status-inconclusive">inconclusive' in page and "dynamic checks inconclusive" in page


def test_finite_twin_is_clean_with_no_note():
    for mode in ("dynamic", "all"):
        report = maskcheck.check(tagger(), mode=mode)
        model = report.models[0]
        assert model.error is None and model.status == "ok" and not report.findings
        assert "dynamic" not in model.stats and report.exit_code() == 0


def test_leaking_model_with_nan_weights_keeps_static_findings_and_no_mc305():
    """Bad: the leak's static findings stand, the probes say they cannot judge them, and
    MC305 (a fully padded sample's NaN) is not claimed: the unpadded batch is NaN too."""
    report = maskcheck.check(tagger(nan=True, leak=True), mode="all")
    model = report.models[0]
    assert {"MC101", "MC102"} <= codes(report) and "MC305" not in codes(report)
    assert all(f.kind == ("static",) for f in model.all_findings)  # nothing the probes said
    assert model.inconclusive and "neither confirmed nor refuted" in model.stats["dynamic"]
    assert model.status == "findings" and report.exit_code() == 1


def test_finite_leaking_twin_is_found_by_both_engines():
    report = maskcheck.check(tagger(leak=True), mode="all")
    model = report.models[0]
    assert "MC102" in codes(report) and "dynamic" not in model.stats  # no note: measured
    assert any("dynamic" in f.kind for f in model.all_findings)


# --------------------------------------------------------------------------- batch state


def test_state_kept_between_calls_is_inconclusive():
    """Bad: a layer that counts its calls gives other outputs each time the same unpadded
    batch runs; the probes would read that as padding moving valid outputs."""
    tokens = keras.Input((10,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(40, 8, mask_zero=True)(tokens)
    model = keras.Model(tokens, keras.layers.Dense(3)(Counter()(h)), name="counter")
    report = maskcheck.check(model, mode="dynamic")
    error = report.models[0].error
    assert error is not None and error.type == "Inconclusive" and "runs twice" in error.message
    assert report.exit_code() == 2 and not report.findings


@pytest.mark.parametrize("batch_size", [2, 3])  # 2: its padded batch is the model's 4 rows
def test_masked_stateful_lstm_is_clean_at_any_batch_size(batch_size):
    """Twin of the leaking one below: no false MC103 (the state no longer carries over between
    the probe's passes) and no ForwardError (passes hold the declared 4 rows)."""
    model = stateful(4)
    lstm = next(layer for layer in model.layers if getattr(layer, "stateful", False))
    lstm.states[0].assign(np.full((4, 8), 0.5, "float32"))  # the user's state, kept as it was
    report = maskcheck.check(model, mode="all", batch_size=batch_size)
    result = report.models[0]
    assert result.error is None and not report.findings and result.status == "ok", report
    assert result.stats["probe_batch"] == 4
    assert np.all(np.asarray(lstm.states[0]) == 0.5)


@pytest.mark.parametrize("batch_size", [2, 3])
def test_leaking_stateful_lstm_is_still_found(batch_size):
    report = maskcheck.check(stateful(4, leak=True), mode="dynamic", batch_size=batch_size)
    assert report.models[0].error is None
    assert "MC301" in codes(report) and "MC103" not in codes(report)


class Doubled(keras.layers.Layer):
    """A custom layer (code whose gradients the loss program would probe) that keeps masks."""

    supports_masking = True

    def call(self, x):
        return x * 2.0


def test_compiled_stateful_model_gets_its_loss_probed_and_the_api_works():
    """The loss program takes the inference run's outputs (it cannot run every probe row at
    once through a 4-row model): no "loss not probed" note; `find_leak` runs at 4 rows too,
    beside its leaking twin."""
    from maskcheck.dynamic.api import find_leak

    tokens = keras.Input(batch_shape=(4, 10), dtype="int32", name="tokens")
    h = Doubled()(keras.layers.Embedding(40, 8, mask_zero=True)(tokens))
    h = keras.layers.LSTM(8, return_sequences=True, stateful=True)(h)
    model = keras.Model(tokens, keras.layers.Dense(3, activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    report = maskcheck.check(model, mode="all")
    assert report.models[0].error is None and not report.findings, report
    assert "loss" not in report.models[0].stats
    x = np.random.default_rng(0).integers(1, 40, (6, 10))
    x[:, 7:] = 0
    assert find_leak(model, x) is None
    assert find_leak(stateful(4, leak=True), x) is not None


def test_fit_callback_warns_when_the_probes_cannot_measure():
    """The callback's check of a NaN model says it could not check it, beside a finite twin
    that trains without a word (the callback warns only about what it cannot vouch for)."""
    import warnings

    from maskcheck.keras import MaskCheck, MaskCheckWarning

    x = np.random.default_rng(0).integers(1, 40, (8, 10)).astype("int32")
    x[:4, 6:] = 0
    y = np.zeros((8, 10), "int32")
    for nan in (True, False):
        model = tagger(nan=nan)
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[MaskCheck()])
        said = [str(w.message) for w in caught if issubclass(w.category, MaskCheckWarning)]
        assert bool(said) is nan and all("inconclusive" in s for s in said), said


def test_padding_invariance_assertion_is_not_passed_by_a_nan_model():
    """Bad: NaN outputs compare unequal to nothing, so "no leak" was a silent pass; the
    assertion now raises ProbeError (Inconclusive). Its finite twin passes."""
    from maskcheck.probe import ProbeError

    x = np.random.default_rng(0).integers(1, 40, (4, 10))
    x[2:, 6:] = 0
    maskcheck.assert_padding_invariant(tagger(), x)
    with pytest.raises(ProbeError, match="inconclusive: output .* NaN or Inf for unpadded sample 0"):
        maskcheck.assert_padding_invariant(tagger(nan=True), x)
