"""Acceptance tests for dynamic engine v2: probes that fit the model, and the right verdict.

Every model here is a real Keras model built in the test (no mocks) and is
checked through the public API `maskcheck.check(...)` or, where the promise is
about the command, through the installed `maskcheck` console script on a model
saved into tmp_path. Many of these specify behaviour the engine does not have
yet (SPEC sections 3, 4 and 9).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import maskcheck

LAYERS_MODULE = "mctest_v2_layers"  # module the console script imports (--import) for custom layers


@pytest.fixture(autouse=True)
def _seeded_weights():
    """Same initial weights on every run: a failure reproduces."""
    keras.utils.set_random_seed(1234)


# --- helpers ----------------------------------------------------------------------------


def _check(model, **kwargs):
    kwargs.setdefault("mode", "all")
    kwargs.setdefault("seed", 0)
    return maskcheck.check(model, **kwargs)


def _dynamic_note(report):
    note = report.models[0].stats.get("dynamic")
    return note if isinstance(note, str) else ""


def _assert_probed(report):
    """No target error, and the dynamic engine really ran (no 'failed: ...'/'skipped: ...' note)."""
    model = report.models[0]
    assert model.error is None, model.error
    note = _dynamic_note(report)
    assert not note.startswith(("failed", "skipped")), note


def _at_least(report, severity):
    ranks = {"info": 0, "warning": 1, "error": 2}
    return [(f.rule, f.layer, f.severity.value) for f in report.findings
            if ranks[f.severity.value] >= ranks[severity]]


def _pairs(report):
    return {(f.rule, f.layer) for f in report.findings}


def console_script() -> str:
    """The installed `maskcheck` entry point of the Python running the tests."""
    beside = Path(sys.executable).with_name("maskcheck")
    found = str(beside) if beside.exists() else shutil.which("maskcheck")
    assert found, "the maskcheck console script is not installed (pip install -e .)"
    return found


def run_cli(*args: str, cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command must quiet TensorFlow by itself
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([console_script(), *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def write_layers_module(folder: Path, *classes: type) -> None:
    """Write the registered custom layers' source into folder/mctest_v2_layers.py for --import."""
    source = "import keras\n\n\n" + "\n\n".join(inspect.getsource(cls) for cls in classes)
    (folder / f"{LAYERS_MODULE}.py").write_text(source)


# --- custom layers (registered: some are saved and loaded by the console script) --------------


@keras.saving.register_keras_serializable(package="mctest")
class HalveTime(keras.layers.Layer):
    """Strides time by 2 but passes the full-length (B,T) mask on unchanged."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x):
        return x[:, ::2, :]

    def compute_output_shape(self, shape):
        return (shape[0], None if shape[1] is None else (shape[1] + 1) // 2, shape[2])


@keras.saving.register_keras_serializable(package="mctest")
class Explode(keras.layers.Layer):
    """Builds symbolically, raises on every real batch: 4*B*T elements never reshape to 27."""

    def call(self, x):
        return x + keras.ops.sum(keras.ops.reshape(x, (1, 27))) * 0.0


class PassesMask(keras.layers.Layer):
    """Base of the custom time layers below: each claims to be position-wise (passes the mask)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True


@keras.saving.register_keras_serializable(package="mctest")
class CumSum(PassesMask):
    """Passes the mask yet sums over time (padding before a valid step leaks in)."""

    def call(self, x):
        return keras.ops.cumsum(x, axis=1)


@keras.saving.register_keras_serializable(package="mctest")
class CenterTime(PassesMask):
    """Passes the mask yet subtracts the mean over all steps, padding included."""

    def call(self, x):
        return x - keras.ops.mean(x, axis=1, keepdims=True)


@keras.saving.register_keras_serializable(package="mctest")
class ReverseTime(PassesMask):
    """Reverses time but passes the mask unreversed: it no longer lines up."""

    def call(self, x):
        return keras.ops.flip(x, axis=1)


@keras.saving.register_keras_serializable(package="mctest")
class ShiftTime(PassesMask):
    """Rolls time by one step but passes the mask unshifted: it no longer lines up."""

    def call(self, x):
        return keras.ops.roll(x, 1, axis=1)


@keras.saving.register_keras_serializable(package="mctest")
class CustomEmbedding(keras.layers.Layer):
    """The Keras masking guide's embedding that owns its weights and computes its own mask."""

    def __init__(self, input_dim, output_dim, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.output_dim = output_dim

    def build(self, input_shape):
        self.embeddings = self.add_weight(shape=(self.input_dim, self.output_dim),
                                          initializer="random_normal", name="embeddings")

    def call(self, inputs):
        return keras.ops.take(self.embeddings, keras.ops.cast(inputs, "int32"), axis=0)

    def compute_mask(self, inputs, mask=None):
        return keras.ops.not_equal(inputs, 0)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim}


@keras.saving.register_keras_serializable(package="mctest")
class WrappedEmbedding(keras.layers.Layer):
    """A layer wrapping a masking Embedding and forwarding its mask (Keras masking guide)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embedding = keras.layers.Embedding(50, 8, mask_zero=True)

    def call(self, x):
        return self.embedding(x)

    def compute_mask(self, x, mask=None):
        return self.embedding.compute_mask(x)


# --- models -------------------------------------------------------------------------------


def _halve_model():
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = HalveTime(name="halve")(h)
    h = keras.layers.GlobalAveragePooling1D(name="gap")(h)
    return keras.Model(x, keras.layers.Dense(2)(h), name="halve_model")


def _softmax_model():
    x = keras.Input((None, 6))
    h = keras.layers.Masking(0.0)(x)
    h = keras.layers.Dense(6)(h)  # propagates the (B,T) mask
    return keras.Model(x, keras.layers.Softmax(axis=1, name="softmax")(h), name="softmax_model")


def _explode_model():
    x = keras.Input((None, 4))
    h = Explode(name="explode")(keras.layers.Dense(4)(x))
    return keras.Model(x, keras.layers.Dense(2)(h), name="explode_model")


def _time_layer_model(cls, name):
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = cls(name=name)(h)
    return keras.Model(x, keras.layers.Dense(3, name="out")(h))


# --- 1. size coincidence ------------------------------------------------------------------


@pytest.mark.parametrize("classes", [10, 7], ids=["classes_eq_T", "classes_ne_T"])
def test_per_sample_output_whose_size_equals_the_time_length_is_not_a_loss_leak(classes):
    """Size coincidence: a (B,10) class axis is not the (B,T=10) time axis; no MC303."""
    model = keras.Sequential([keras.Input((10, 20)), keras.layers.Masking(0.0), keras.layers.LSTM(64),
                              keras.layers.Dense(classes, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    report = _check(model)
    _assert_probed(report)
    assert "MC303" not in {f.rule for f in report.findings}, _pairs(report)
    assert _at_least(report, "error") == []


# --- 2. ignore_class, and padding the loss counts -------------------------------------------


def test_ignore_class_loss_on_masked_tagger_is_clean():
    """ignore_class: a masked per-step tagger with SparseCategoricalCrossentropy(ignore_class=-100)."""
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = keras.layers.LSTM(8, return_sequences=True)(h)
    model = keras.Model(x, keras.layers.Dense(5, activation="softmax", name="tags")(h))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=-100))
    report = _check(model)
    _assert_probed(report)
    assert {f.rule for f in report.findings} & {"MC303", "MC201", "MC203"} == set(), _pairs(report)


def test_unmasked_per_step_loss_over_variable_length_float_input_is_flagged():
    """Padding counted by the loss: a None-length float input reaches a plain per-step loss."""
    x = keras.Input((None, 4))
    h = keras.layers.Conv1D(8, 3, padding="same")(x)
    model = keras.Model(x, keras.layers.Dense(5, activation="softmax", name="tags")(h))
    model.compile(loss="sparse_categorical_crossentropy")
    report = _check(model)
    assert report.models[0].error is None, report.models[0].error
    assert _pairs(report) & {("MC201", "tags"), ("MC303", "tags")}, _pairs(report)


def _unmasked_token_tagger(loss):
    """A per-step tagger over None-length token ids with no mask anywhere: only the loss's
    ignore_class can keep padded label positions out of what it learns."""
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Embedding(50, 8)(x))
    model = keras.Model(x, keras.layers.Dense(5, activation="softmax", name="tags")(h))
    model.compile(loss=loss)
    return model


@pytest.mark.parametrize("ignore_class", [-100, None], ids=["ignore_class", "no_ignore_class"])
def test_the_same_unmasked_tagger_is_clean_only_with_ignore_class(ignore_class):
    """Padded labels hold ignore_class: not counted, not perturbed; without it they are counted."""
    model = _unmasked_token_tagger(keras.losses.SparseCategoricalCrossentropy(ignore_class=ignore_class))
    report = _check(model)
    _assert_probed(report)
    loss_codes = {(f.rule, f.layer) for f in report.all_findings if f.rule in ("MC201", "MC303", "MC203")}
    if ignore_class is not None:
        assert loss_codes == set() and not [f for f in report.all_findings if f.severity.value != "info"], \
            _pairs(report)
    else:
        assert loss_codes & {("MC201", "tags"), ("MC303", "tags")}, _pairs(report)


# --- 3. models that raise on padded batches --------------------------------------------------


def test_length_changing_layer_that_passes_the_mask_is_mc103_with_the_exception():
    """A layer halving time passes a (B,T) mask on; the next masked layer raises: MC103, not a target error."""
    report = _check(_halve_model())
    assert report.models[0].error is None, report.models[0].error
    mc103 = [f for f in report.all_findings if f.rule == "MC103" and f.layer in ("halve", "gap")]
    assert mc103, _pairs(report)
    exception = mc103[0].evidence.get("exception")
    assert isinstance(exception, str) and exception and "\n" not in exception, mc103[0].evidence


def test_length_changing_layer_console_exit_1(tmp_path):
    """The halving-layer model saved as .keras: the console script reports MC103 and exits 1."""
    write_layers_module(tmp_path, HalveTime)
    _halve_model().save(tmp_path / "halve.keras")
    result = run_cli("halve.keras", "--import", LAYERS_MODULE, "--format", "json",
                     cwd=tmp_path, pythonpath=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    [entry] = json.loads(result.stdout)["models"]
    assert entry["status"] == "findings" and entry["error"] is None
    assert any(f["rule"] == "MC103" and f["layer"] in ("halve", "gap") for f in entry["findings"]), entry


def test_softmax_over_time_given_a_rank_2_mask_is_mc103():
    """Softmax(axis=1) receives the (B,T) mask of a (B,T,6) tensor and raises: MC103 at the softmax."""
    from maskcheck.config import Config

    # The raise must come from the mask, not from the probe length happening to equal F=6.
    assert Config.from_values().seq_len != 6
    report = _check(_softmax_model())
    assert report.models[0].error is None, report.models[0].error
    mc103 = [f for f in report.all_findings if f.rule == "MC103" and f.layer == "softmax"]
    assert mc103, _pairs(report)
    exception = mc103[0].evidence.get("exception")
    assert isinstance(exception, str) and exception and "\n" not in exception, mc103[0].evidence


def test_softmax_over_time_console_exit_1(tmp_path):
    """The Softmax(axis=1) model saved as .keras: the console script reports MC103 and exits 1."""
    _softmax_model().save(tmp_path / "softmax.keras")
    result = run_cli("softmax.keras", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    [entry] = json.loads(result.stdout)["models"]
    assert entry["status"] == "findings" and entry["error"] is None
    assert any(f["rule"] == "MC103" and f["layer"] == "softmax" for f in entry["findings"]), entry


def test_model_raising_on_every_batch_is_a_target_error():
    """A forward pass that raises on unpadded batches too is a target error, whatever static found."""
    report = _check(_explode_model())
    error = report.models[0].error
    assert error is not None, (_dynamic_note(report), _pairs(report))
    assert error.message and "\n" not in error.message and "Traceback" not in error.message


def test_model_raising_on_every_batch_console_exit_2(tmp_path):
    """The always-raising model saved as .keras: exit 2, one line saying why, no traceback."""
    write_layers_module(tmp_path, Explode)
    _explode_model().save(tmp_path / "explode.keras")
    result = run_cli("explode.keras", "--import", LAYERS_MODULE, "--format", "json",
                     cwd=tmp_path, pythonpath=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    [entry] = json.loads(result.stdout)["models"]
    # SPEC 9: a target error whatever else was found; its static findings are still listed
    assert entry["status"] == "error" and all("dynamic" not in f["kind"] for f in entry["findings"]), entry
    message = entry["error"]["message"]
    assert message and "\n" not in message
    assert f"maskcheck: explode.keras: {message}" in result.stderr.splitlines()


# --- 4. merging names the right bug ----------------------------------------------------------


@pytest.mark.parametrize("cls, name, code", [
    (CumSum, "cumsum", "MC105"),
    (CenterTime, "center_time", "MC105"),
    (ReverseTime, "reverse_time", "MC103"),
    (ShiftTime, "shift_time", "MC103"),
], ids=["cumsum", "center", "reverse", "shift"])
def test_custom_time_layer_that_passes_its_mask_gets_the_right_code(cls, name, code):
    """Merging: mixing under a passed mask is MC105, moving steps under it is MC103; never MC102."""
    report = _check(_time_layer_model(cls, name))
    assert report.models[0].error is None, report.models[0].error
    at_layer = [f for f in report.all_findings if f.layer == name]
    assert {f.rule for f in at_layer if f.severity.value == "error"} == {code}, _pairs(report)
    assert "MC102" not in {f.rule for f in at_layer}, _pairs(report)


# --- 5. the Keras masking guide's custom layers ----------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: CustomEmbedding(50, 8, name="custom_embedding"),
    lambda: WrappedEmbedding(name="wrapped_embedding"),
], ids=["own_weights_compute_mask", "wraps_embedding"])
def test_masking_guide_custom_embeddings_are_clean(make):
    """Keras masking guide: custom layers that generate a mask with compute_mask feed a masked LSTM."""
    x = keras.Input((None,), dtype="int32")
    h = make()(x)
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.LSTM(8)(h)))
    report = _check(model)
    _assert_probed(report)
    assert _at_least(report, "warning") == []


# --- 6. probes that fit the model --------------------------------------------------------------


def _encoder_decoder(explicit_decoder_mask):
    enc = keras.Input((None, 4), name="encoder_inputs")
    dec = keras.Input((None, 4), name="decoder_inputs")
    _, state_h, state_c = keras.layers.LSTM(8, return_state=True, name="encoder")(keras.layers.Masking(0.0)(enc))
    dec_masking = keras.layers.Masking(0.0, name="decoder_masking")
    extra = {"mask": dec_masking.compute_mask(dec)} if explicit_decoder_mask else {}
    h = keras.layers.LSTM(8, return_sequences=True, name="decoder")(
        dec_masking(dec), initial_state=[state_h, state_c], **extra)
    return keras.Model([enc, dec], keras.layers.Dense(3, name="out")(h))


def test_encoder_decoder_with_two_float_sequence_inputs_is_probed_and_clean():
    """Two masked float sequence inputs (a list), encoder state into the decoder: probed, clean."""
    # The decoder gets its mask explicitly: with a tensor `initial_state`, Keras 3.15 auto-fills
    # only `<arg>_mask` kwargs, so the Masking layer's mask never reaches the decoder otherwise.
    report = _check(_encoder_decoder(explicit_decoder_mask=True))
    _assert_probed(report)
    assert _at_least(report, "warning") == []


def test_encoder_decoder_whose_initial_state_drops_the_decoder_mask_leaks_under_pre_padding():
    """Two float sequence inputs; `initial_state=` makes Keras drop the decoder's mask: pre-padding leaks there."""
    model = _encoder_decoder(explicit_decoder_mask=False)
    post = _check(model, padding="post")
    _assert_probed(post)
    assert _at_least(post, "warning") == []  # an unmasked forward LSTM is causal: post-padding is safe
    both = _check(model)
    _assert_probed(both)
    flagged = _at_least(both, "warning")
    assert {layer for _, layer, _ in flagged} == {"decoder"}, flagged
    assert any(sev == "error" and rule.startswith(("MC1", "MC3")) for rule, _, sev in flagged), flagged


def test_conv_stack_needing_a_minimum_length_is_probed():
    """Valid convs and pools need T >= 36: probes must be long enough to run (and find the leak)."""
    x = keras.Input((None, 4))
    h = keras.layers.Conv1D(8, 5)(x)
    h = keras.layers.MaxPooling1D(4)(h)
    h = keras.layers.Conv1D(8, 5)(h)
    h = keras.layers.MaxPooling1D(4)(h)
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.GlobalMaxPooling1D()(h)))
    report = _check(model)
    _assert_probed(report)
    errors = [f for f in report.findings
              if f.severity.value == "error" and f.rule.startswith(("MC1", "MC3"))]
    assert errors, _pairs(report)
    assert any("dynamic" in f.kind for f in report.findings), [(f.rule, f.layer, f.kind) for f in report.findings]


def test_token_ids_through_a_float_input_are_probed_and_clean():
    """A float32 Input feeding Embedding(mask_zero=True) holds token ids: probe with ids, clean."""
    x = keras.Input((None,))
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.LSTM(8)(h)))
    report = _check(model)
    _assert_probed(report)
    assert _at_least(report, "warning") == []


class SubclassedClassifier(keras.Model):
    def __init__(self):
        super().__init__(name="sub_classifier")
        self.emb = keras.layers.Embedding(50, 8, mask_zero=True, name="emb")
        self.lstm = keras.layers.LSTM(8, name="lstm")
        self.head = keras.layers.Dense(2, name="head")

    def call(self, x):
        return self.head(self.lstm(self.emb(x)))


def test_subclassed_model_built_by_calling_is_probed_and_clean():
    """A subclassed model built by calling it (no Input, no graph) is probed and found clean."""
    model = SubclassedClassifier()
    model(np.ones((2, 5), "int32"))
    report = _check(model)
    _assert_probed(report)
    assert _at_least(report, "warning") == []


# --- 7. determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_json_apart_from_timings():
    """Determinism: two checks with seed 0 give the same JSON once the *_ms timings are removed."""
    model = _time_layer_model(ReverseTime, "reverse_time")

    def dump():
        data = json.loads(_check(model, seed=0).to_json())
        for entry in data["models"]:
            entry["stats"] = {k: v for k, v in entry["stats"].items() if not k.endswith("_ms")}
        return json.dumps(data, sort_keys=True)

    first = dump()
    assert json.loads(first)["models"][0]["findings"], first
    assert first == dump()
