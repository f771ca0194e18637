"""Padding conventions and real data (SPEC 3 MC401-MC404, 4, 5, 7, 9), end to end.

The acceptance list of issue 11: fixed-length token models built the keras.io and
`pad_sequences` way (no mask, no None axis) are checked under the token-0 convention,
which says so in every finding it rests on; real data (`--data`, `data=`) wins over the
convention and decides the padding side, the pad values, the labels and the weights;
the data rules fire on the rule examples' bad data and not on their good data; bad
data is a one-line target error.

Tests that promise something about the installed command (exit status, what reaches
the terminal, no traceback, imports from the working folder) run the console script in
a subprocess, several targets per call where the scenario allows it (each call pays
for importing TensorFlow). The data-rule scenarios that need one `--data` each run the
same command in-process through click's CliRunner, where TensorFlow is already loaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner, Result
from keras import ops

import maskcheck
from fixtures import conventions
from maskcheck.cli import main
from maskcheck.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
HELPERS = "mctest_convdata_helpers"  # the module written into tmp folders for module:function
TOKENS = [[5, 7, 9], [3, 4, 5, 6, 7, 8], [2, 2], [9] * 10]  # the MC401 example's sequences


def console_script() -> str:
    """The installed `maskcheck` entry point of the Python running the tests."""
    beside = Path(sys.executable).with_name("maskcheck")
    found = str(beside) if beside.exists() else shutil.which("maskcheck")
    assert found, "the maskcheck console script is not installed (pip install -e .)"
    return found


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command must quiet TensorFlow by itself
    return subprocess.run([console_script(), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def models_by_target(stdout: str) -> dict[str, dict]:
    return {m["target"]: m for m in json.loads(stdout)["models"]}


def triples(findings) -> set[tuple[str, str, str]]:
    """(rule, layer, severity) of JSON finding dicts or Finding objects."""
    return {(f["rule"], f["layer"], f["severity"]) if isinstance(f, dict)
            else (f.rule, f.layer, f.severity.value) for f in findings}


def sides_of(report: maskcheck.Report) -> set[str]:
    return {f.evidence["padding"] for f in report.all_findings if "padding" in f.evidence}


# --------------------------------------------------------------------------- models and data

@keras.saving.register_keras_serializable(package="mctest_convdata")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned absolute position embedding, arange(T); passes the mask on."""

    def __init__(self, maxlen: int, dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.maxlen, self.dim = maxlen, dim
        self.positions = keras.layers.Embedding(maxlen, dim)
        self.supports_masking = True

    def call(self, x):
        return x + self.positions(ops.arange(ops.shape(x)[1]))

    def get_config(self) -> dict:
        return {**super().get_config(), "maxlen": self.maxlen, "dim": self.dim}


def lstm_classifier(mask_zero: bool) -> keras.Model:
    """Like `conventions.*_lstm_classifier`, with a None length for padded_batch's batches."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(conventions.VOCAB, 8, mask_zero=mask_zero, name="embedding")(tokens)
    h = keras.layers.LSTM(8, name="lstm")(h)
    model = keras.Model(tokens, keras.layers.Dense(2, activation="softmax", name="probs")(h))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def float_lstm() -> keras.Model:
    keras.utils.set_random_seed(0)
    feats = keras.Input((12, 3), name="feats")
    return keras.Model(feats, keras.layers.Dense(2)(keras.layers.LSTM(4)(feats)))


def classifier_sequences() -> list[list[int]]:
    """Eight token sequences of lengths 1..20 for the fixtures' maxlen-20 classifiers."""
    rng = np.random.default_rng(0)
    return [rng.integers(1, conventions.VOCAB, size=n).tolist() for n in (3, 7, 12, 20, 5, 9, 1, 15)]


HELPERS_SOURCE = textwrap.dedent('''
    """module:function targets and --data callables for the console-script tests."""
    import keras
    import numpy as np
    import tensorflow as tf

    TOKENS = [[5, 7, 9], [3, 4, 5, 6, 7, 8], [2, 2], [9] * 10]


    def lstm_tagger():  # the MC401 example model: no mask, forward LSTM, per step
        keras.utils.set_random_seed(0)
        x = keras.Input((10,), dtype="int32", name="tokens")
        h = keras.layers.Embedding(50, 8)(x)
        y = keras.layers.Dense(3)(keras.layers.LSTM(8, return_sequences=True, name="lstm")(h))
        return keras.Model(x, y, name="lstm_tagger")


    def masked_tagger():  # the same with Embedding(mask_zero=True)
        keras.utils.set_random_seed(0)
        x = keras.Input((10,), dtype="int32", name="tokens")
        h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
        y = keras.layers.Dense(3)(keras.layers.LSTM(8, return_sequences=True, name="lstm")(h))
        return keras.Model(x, y, name="masked_tagger")


    def float_lstm():
        keras.utils.set_random_seed(0)
        x = keras.Input((12, 3), name="feats")
        return keras.Model(x, keras.layers.Dense(2)(keras.layers.LSTM(4)(x)), name="float_lstm")


    def float_conv():
        keras.utils.set_random_seed(0)
        x = keras.Input((None, 3), name="feats")
        y = keras.layers.Conv1D(4, 3, padding="same")(x)
        return keras.Model(x, keras.layers.Dense(2)(y), name="float_conv")


    def pre_padded_dataset():
        x = keras.utils.pad_sequences(TOKENS, maxlen=10)  # padding="pre", the default
        return tf.data.Dataset.from_tensor_slices(x).batch(4)


    def empty_dataset():
        return tf.data.Dataset.from_tensor_slices(np.zeros((0, 10), "int32")).batch(2)


    def ragged_tokens():
        return tf.ragged.constant([[5, 7, 9], [3, 4], [2]])
''')


@pytest.fixture(scope="module")
def helpers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the helper module and the .npz files of the bad-data calls."""
    folder = tmp_path_factory.mktemp("convdata")
    (folder / f"{HELPERS}.py").write_text(HELPERS_SOURCE)
    np.savez(folder / "wrong_shape.npz", x=np.ones((4, 10, 3), "float32"))
    np.savez(folder / "noise.npz", x=np.random.default_rng(0).normal(size=(6, 12, 3)).astype("float32"))
    return folder


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The rule examples' models as .keras files (the in-process data-rule calls load them)."""
    folder = tmp_path_factory.mktemp("models")

    def tags(ignore_class=None) -> keras.Model:
        keras.utils.set_random_seed(0)
        x = keras.Input((None,), dtype="int32", name="tokens")
        y = keras.layers.Dense(4, name="tags")(keras.layers.Embedding(50, 8)(x))
        model = keras.Model(x, y, name="tags_model")
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                      ignore_class=ignore_class))
        return model

    keras.utils.set_random_seed(0)
    x = keras.Input((10,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8)(x)
    lstm_tagger = keras.Model(
        x, keras.layers.Dense(3)(keras.layers.LSTM(8, return_sequences=True, name="lstm")(h)))
    keras.utils.set_random_seed(0)
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8, mask_zero=True, name="embedding")(x)
    masked_lstm = keras.Model(x, keras.layers.Dense(3)(keras.layers.LSTM(8)(h)))
    built = {"lstm_tagger": lstm_tagger, "tags": tags(), "tags_ignore_minus_100": tags(-100),
             "masked_lstm": masked_lstm}
    paths = {}
    for name, model in built.items():
        paths[name] = folder / f"{name}.keras"
        model.save(paths[name])
    return paths


# --------------------------------------------------------------------------- conventions (SPEC 4.6)

def test_keras_io_transformer_is_reported_where_padding_first_mixes_in() -> None:
    result = run_cli("fixtures.conventions:transformer_classifier", "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    [entry] = json.loads(result.stdout)["models"]
    findings = entry["findings"]
    inside = [f for f in findings if "transformer_block" in f["path"] and f["severity"] == "error"
              and f["layer_class"] in ("MultiHeadAttention", "TransformerBlock")]
    assert inside, [(f["rule"], f["path"], f["severity"]) for f in findings]
    # nothing in this model says it is padded: every finding rests on the convention
    for f in findings:
        assumed = f["evidence"].get("assumed")
        assert isinstance(assumed, dict) and assumed, f
        assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in assumed.items()), f
        assert "--padded none" in f["message"], f["message"]


def test_padded_none_turns_the_convention_off_without_a_note() -> None:
    target = "fixtures.conventions:transformer_classifier"
    result = run_cli(target, "--padded", "none")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Checked 1 model: 0 error(s), 0 warning(s), 0 info(s)." in result.stdout
    said = (result.stdout + result.stderr).replace(target, "TARGET").lower()  # its module's name
    assert "assum" not in said and "convention" not in said, said


def test_masked_lstm_is_clean_and_a_fixed_image_gets_a_note_on_declaring_it() -> None:
    result = run_cli("fixtures.conventions:masked_lstm_classifier",
                     "fixtures.conventions:fixed_image_cnn")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Checked 2 models: 0 error(s), 0 warning(s), 0 info(s)." in result.stdout
    assert not [line for line in result.stdout.splitlines()
                if line.startswith("fixtures.conventions:masked_lstm_classifier:")
                and " MC" in line]
    notes = [line for line in (result.stdout + result.stderr).splitlines()
             if line.startswith("fixtures.conventions:fixed_image_cnn:") and "note" in line]
    assert notes and "--padded image:1" in notes[0], result.stdout + result.stderr


def test_declared_image_padding_finds_conv1_in_the_api_as_in_the_cli() -> None:
    result = run_cli("fixtures.conventions:fixed_image_cnn", "--padded", "image:1",
                     "--padded", "image:2", "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    [entry] = json.loads(result.stdout)["models"]
    report = maskcheck.check(conventions.fixed_image_cnn(), padded=("image:1", "image:2"))
    assert triples(report.findings) == triples(entry["findings"])
    assert any(layer == "conv1" and severity == "error"
               for _rule, layer, severity in triples(report.findings)), report.findings


def test_padded_none_and_empty_list_turn_the_conventions_off_in_the_api() -> None:
    assumed = maskcheck.check(conventions.unmasked_lstm_classifier())
    assert assumed.findings and all("assumed" in f.evidence for f in assumed.findings)
    for off in ("none", [], ()):
        report = maskcheck.check(conventions.unmasked_lstm_classifier(), padded=off)
        assert report.findings == () and report.models[0].error is None, (off, report.findings)


# --------------------------------------------------------------------------- real data wins (SPEC 4.1)

@pytest.mark.parametrize("side", ["pre", "post"])
def test_pad_sequences_data_decides_the_side(side: str) -> None:
    x = keras.utils.pad_sequences(classifier_sequences(), maxlen=conventions.MAXLEN, padding=side)
    y = np.arange(len(x)) % 2
    leaky = maskcheck.check(conventions.unmasked_lstm_classifier(), data=(x, y))
    at_lstm = [f for f in leaky.findings if f.layer == "lstm"]
    assert at_lstm, leaky.findings
    assert {f.evidence.get("padding") for f in at_lstm} == {side}
    assert sides_of(leaky) == {side}  # no finding claims the side the data does not use
    assert all("assumed" not in f.evidence for f in leaky.findings)  # the data, not the convention
    clean = maskcheck.check(conventions.masked_lstm_classifier(), data=(x, y))
    assert clean.findings == () and clean.models[0].error is None, clean.findings


def test_tf_data_padded_batch() -> None:
    def dataset() -> tf.data.Dataset:
        ds = tf.data.Dataset.from_generator(lambda: iter(classifier_sequences()),
                                            output_signature=tf.TensorSpec((None,), tf.int32))
        return ds.map(lambda seq: (seq, tf.size(seq) % 2)).padded_batch(8)  # pads at the end

    leaky = maskcheck.check(lstm_classifier(mask_zero=False), data=dataset())
    at_lstm = [f for f in leaky.findings if f.layer == "lstm"]
    assert at_lstm and {f.evidence.get("padding") for f in at_lstm} == {"post"}, leaky.findings
    clean = maskcheck.check(lstm_classifier(mask_zero=True), data=dataset())
    assert clean.findings == () and clean.models[0].error is None, clean.findings


def test_mixed_sides_in_one_batch() -> None:
    seqs = classifier_sequences()
    pre = keras.utils.pad_sequences(seqs, maxlen=conventions.MAXLEN, padding="pre")
    post = keras.utils.pad_sequences(seqs, maxlen=conventions.MAXLEN, padding="post")
    mixed = np.where((np.arange(len(seqs)) % 2 == 0)[:, None], pre, post)
    assert (mixed != pre).any() and (mixed != post).any()
    report = maskcheck.check(conventions.unmasked_lstm_classifier(), data=(mixed, np.zeros(len(seqs))))
    assert [f for f in report.all_findings if f.layer == "lstm"], report.findings
    assert sides_of(report) and sides_of(report) <= {"pre", "post"}, report.findings


def test_absolute_positions_under_left_padding_are_mc401() -> None:
    def tagger() -> keras.Model:
        keras.utils.set_random_seed(0)
        tokens = keras.Input((10,), dtype="int32", name="tokens")
        h = keras.layers.Embedding(50, 8, mask_zero=True, name="embedding")(tokens)
        h = PositionEmbedding(10, 8, name="positions")(h)
        return keras.Model(tokens, keras.layers.Dense(3, name="tags")(h))

    pre = maskcheck.check(tagger(), data=keras.utils.pad_sequences(TOKENS, maxlen=10, padding="pre"))
    assert [f for f in pre.findings if f.rule == "MC401"], pre.findings
    assert {f.evidence.get("padding") for f in pre.findings if f.rule == "MC401"} == {"pre"}
    post = maskcheck.check(tagger(), data=keras.utils.pad_sequences(TOKENS, maxlen=10, padding="post"))
    assert not [f for f in post.findings if f.rule == "MC401"], post.findings


def test_same_model_data_and_seed_give_the_same_json() -> None:
    model = conventions.unmasked_lstm_classifier()
    x = keras.utils.pad_sequences(classifier_sequences(), maxlen=conventions.MAXLEN)

    def without_stats(report: maskcheck.Report) -> str:
        models = tuple(dataclasses.replace(m, stats={}) for m in report.models)
        return dataclasses.replace(report, models=models).to_json()

    first = without_stats(maskcheck.check(model, data=(x, np.zeros(len(x))), seed=7))
    again = without_stats(maskcheck.check(model, data=(x, np.zeros(len(x))), seed=7))
    assert '"rule"' in first  # something to compare
    assert first.encode() == again.encode()


# --------------------------------------------------------------------------- the API speaks the CLI's language

def test_every_cli_setting_is_a_keyword() -> None:
    report = maskcheck.check(conventions.masked_lstm_classifier(), padded=("tokens:1",),
                             atol=1e-4, rtol=1e-3, batch_size=6,
                             seq_len=16, device="cpu", data_batches=2)
    assert isinstance(report, maskcheck.Report) and len(report.models) == 1
    assert report.models[0].error is None, report.models[0].error
    # mask_inputs is a keyword too: it reaches the check of the model's inputs
    with pytest.raises(ConfigError, match="no input 'm'; model 'masked_lstm_classifier' has inputs"):
        maskcheck.check(conventions.masked_lstm_classifier(), mask_inputs={"tokens": "m"})


@pytest.mark.parametrize("settings, option", [
    ({"atol": -1}, "--atol"),
    ({"rtol": "x"}, "--rtol"),
    ({"batch_size": 0}, "--batch-size"),
    ({"seq_len": "long"}, "--seq-len"),
    ({"device": "tpu"}, "--device"),
    ({"data_batches": 0}, "--data-batches"),
    ({"padded": ("tokens",)}, "--padded"),
    ({"mask_inputs": {"tokens": ""}}, "--mask-input"),
    ({"padding": "left"}, "--padding"),
    ({"no_such_setting": 1}, "no_such_setting"),
], ids=lambda v: v if isinstance(v, str) else next(iter(v)))
def test_bad_settings_raise_config_error_naming_the_option(settings: dict, option: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        maskcheck.check(conventions.masked_lstm_classifier(), **settings)
    assert isinstance(excinfo.value, ValueError)
    assert option in str(excinfo.value), str(excinfo.value)


# --------------------------------------------------------------------------- data rules through --data

def rule_examples(tmp_path: Path) -> dict[str, Path]:
    """The MC401-MC404 examples' data, bad and good, as .npz files."""
    tokens = np.array([[5, 7, 9, 0, 0], [3, 4, 5, 6, 7], [2, 0, 0, 0, 0]])
    pre = np.array([[0, 0, 5, 7, 9], [3, 4, 5, 6, 7], [0, 0, 0, 0, 2]])
    post_weights = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], "float32")
    arrays = {
        "mc401_bad": {"x": keras.utils.pad_sequences(TOKENS, maxlen=10)},
        "mc401_good": {"x": keras.utils.pad_sequences(TOKENS, maxlen=10, padding="post")},
        "mc402_bad": {"x": tokens, "y": np.where(tokens > 0, tokens % 4, 0)},  # 0 is a real tag
        "mc402_minus_100": {"x": tokens, "y": np.where(tokens > 0, tokens % 4, -100)},
        "mc403_bad": {"x": pre, "y": pre % 4, "sample_weight": post_weights},
        "mc403_good": {"x": tokens, "y": tokens % 4,
                       "sample_weight": (tokens != 0).astype("float32")},
        "mc404_bad": {"x": np.array([[5, 0, 9, 0, 0], [3, 4, 5, 6, 7], [2, 0, 0, 0, 0]])},
        "mc404_good": {"x": tokens},
    }
    paths = {}
    for name, data in arrays.items():
        paths[name] = tmp_path / f"{name}.npz"
        np.savez(paths[name], **data)
    return paths


@pytest.mark.parametrize("code, model, layer", [
    ("MC401", "lstm_tagger", "lstm"),
    ("MC402", "tags", "tags"),
    ("MC403", "tags", "tags"),
    ("MC404", "masked_lstm", "embedding"),
])
def test_data_rule_on_the_examples_bad_and_good_data(tmp_path: Path, saved: dict[str, Path],
                                                     code: str, model: str, layer: str) -> None:
    data = rule_examples(tmp_path)
    target = str(saved[model])
    bad = invoke(target, "--data", data[f"{code.lower()}_bad"], "--select", "MC4", "--format", "json")
    assert bad.exit_code == 1, bad.output
    found = [g for f in models_by_target(bad.stdout)[target]["findings"]
             for g in (f, *f.get("related", ()))]  # a finding of the same cause may be folded
    assert (code, layer) in {(f["rule"], f["layer"]) for f in found}, found
    good_data = data.get(f"{code.lower()}_good", data["mc402_minus_100"])
    good_model = str(saved["tags_ignore_minus_100"]) if code == "MC402" else target
    good = invoke(good_model, "--data", good_data, "--select", "MC4", "--format", "json")
    assert good.exit_code == 0, good.output
    assert code not in {f["rule"] for f in models_by_target(good.stdout)[good_model]["findings"]}


def test_mc402_labels_padded_with_minus_100(tmp_path: Path, saved: dict[str, Path]) -> None:
    # -100 labels make a sparse loss without ignore_class fail or go NaN: MC402 must fire;
    # with ignore_class=-100 the same data is clean.
    data = rule_examples(tmp_path)["mc402_minus_100"]
    bad, good = str(saved["tags"]), str(saved["tags_ignore_minus_100"])
    result = invoke(bad, good, "--data", data, "--select", "MC4")
    assert result.exit_code == 1, result.output
    rows = result.stdout.splitlines()
    assert [row for row in rows if row.startswith(f"{bad}:") and " MC402 " in row], result.stdout
    assert not [row for row in rows if row.startswith(f"{good}:") and " MC402 " in row], result.stdout
    assert "Checked 2 models: 1 error(s), 0 warning(s), 0 info(s)." in result.stdout


def test_mc402_minus_100_report_is_valid_json(tmp_path: Path, saved: dict[str, Path]) -> None:
    data = rule_examples(tmp_path)["mc402_minus_100"]
    result = CliRunner().invoke(main, [str(saved["tags"]), "--data", str(data), "--select", "MC402",
                                       "--format", "json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    [entry] = json.loads(result.stdout)["models"]
    assert [f["rule"] for f in entry["findings"]] == ["MC402"]


def test_mc401_with_a_tf_data_dataset_from_module_function(helpers: Path) -> None:
    bad, good = f"{HELPERS}:lstm_tagger", f"{HELPERS}:masked_tagger"
    result = run_cli(bad, good, "--data", f"{HELPERS}:pre_padded_dataset", "--select", "MC4",
                     "--format", "json", cwd=helpers)
    assert result.returncode == 1, result.stdout + result.stderr
    models = models_by_target(result.stdout)
    assert ("MC401", "lstm") in {(f["rule"], f["layer"]) for f in models[bad]["findings"]}
    assert models[good]["status"] == "ok", models[good]


# --------------------------------------------------------------------------- bad data (SPEC 9)

BAD_DATA = {  # scenario -> (--data, targets, what the one-line reason must say)
    # each inner tuple: the line holds one of its words; every inner tuple must be met
    "empty": (f"{HELPERS}:empty_dataset", ("lstm_tagger", "masked_tagger"), (("empty",),)),
    "ragged": (f"{HELPERS}:ragged_tokens", ("lstm_tagger", "masked_tagger"),
               (("ragged", "Ragged"), ("to_tensor", "padded_batch"))),
    "mismatch": ("wrong_shape.npz", ("lstm_tagger", "masked_tagger"), (("tokens",), ("shape",))),
    "indistinguishable": ("noise.npz", ("float_lstm", "float_conv"), (("mask",), ("lengths",))),
}


@pytest.mark.parametrize("scenario", sorted(BAD_DATA))
def test_bad_data_is_one_line_per_target(helpers: Path, scenario: str) -> None:
    data, names, needs = BAD_DATA[scenario]
    targets = [f"{HELPERS}:{name}" for name in names]
    result = run_cli(*targets, "--data", data, cwd=helpers)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for target in targets:
        # one error line per target (its static findings, if any, are listed after it)
        [line] = [row for row in result.stdout.splitlines() if row.startswith(f"{target}: error:")]
        assert line.startswith(f"{target}: error: ") and line.endswith("[DataError]"), line
        for words in needs:
            assert any(word in line for word in words), (words, line)
    assert f"{len(targets)} could not be checked" in result.stdout


def test_bad_data_in_the_api_is_a_data_error() -> None:
    tokens = conventions.masked_lstm_classifier()
    twenty = np.ones((4, conventions.MAXLEN), "int32")
    cases = [
        (tokens, tf.data.Dataset.from_tensor_slices(np.zeros((0, conventions.MAXLEN), "int32")).batch(2),
         "empty"),
        (tokens, tf.ragged.constant([[5, 7, 9], [3, 4]]), "to_tensor"),
        (tokens, [twenty, twenty], "input"),  # two inputs for a one-input model
        (tokens, np.ones((4, 7), "int32"), "shape"),  # fixed length 20, data of length 7
        (float_lstm(), np.random.default_rng(0).normal(size=(6, 12, 3)).astype("float32"), "lengths"),
    ]
    for model, bad, word in cases:
        [entry] = maskcheck.check(model, data=bad).models
        assert entry.error is not None and entry.error.type == "DataError", (word, entry)
        assert "\n" not in entry.error.message and word in entry.error.message, entry.error
