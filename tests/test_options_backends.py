"""Options that are wrong are errors, and model files are checked under TensorFlow.

`--padded NAME:AXIS` / `--mask-input IN=MASK` that name an input the model lacks, or an
axis its input does not have, would otherwise be ignored and the check run on a guess:
each is one line, exit 2, listing the model's inputs (SPEC 9: that target's error, the
other targets still checked). The same from `maskcheck.check` (ConfigError) and the
pytest marker (a one-line failure).

A `.keras` file is backend-portable: the command checks it under TensorFlow whatever
KERAS_BACKEND or keras.json say, and says so once on stderr. Inside a process already on
another backend (the API, the fixture, the callback) maskcheck says so in one line with
what to do. The command-line tests run the real console script in subprocesses.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import maskcheck
from maskcheck import backends
from maskcheck.config import ConfigError

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"
TAGGER = MODELS / "conv_tagger.keras"  # input 'tokens' (rank 2): MC101 + MC102
ENCODER = MODELS / "explicit_mask_encoder.keras"  # inputs 'token_ids', 'padding_mask'
CLEAN = MODELS / "lstm_tagger.keras"


def run_cli(*args: str, env: dict | None = None, keras_home: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script, with KERAS_BACKEND unset unless `env` sets it, and Keras'
    home (keras.json) in `keras_home` when given."""
    from tests.test_cli import console_script

    full_env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")}
    if keras_home is not None:
        full_env["KERAS_HOME"] = str(keras_home)
    full_env.update(env or {})
    return subprocess.run([console_script(), *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env=full_env, timeout=300)


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def tagger(name: str = "tagger") -> keras.Model:
    """Embedding(mask_zero) -> Conv1D: MC102 at 'conv'; one input 'tokens' of rank 2."""
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = keras.layers.Conv1D(8, 3, padding="same", name="conv")(h)
    return keras.Model(x, keras.layers.Dense(3)(h), name=name)


# --- 3. options that are wrong are errors: the command -------------------------------------


@pytest.mark.parametrize("args, words", [
    (["--padded", "tokenz:1"], "--padded tokenz:1: no input 'tokenz'"),
    (["--padded", "tokens:2"], "--padded tokens:2: input 'tokens' has no axis 2 (rank 2"),
    (["--mask-input", "tokenz=tokens"], "--mask-input tokenz=tokens: no input 'tokenz'"),
    (["--mask-input", "tokens=padding_mask"], "--mask-input tokens=padding_mask: no input 'padding_mask'"),
], ids=["padded-unknown-input", "padded-axis-out-of-range", "mask-input-unknown-input",
        "mask-input-unknown-mask"])
def test_a_declaration_the_model_does_not_fit_is_one_line_exit_2(args: list[str], words: str) -> None:
    result = run_cli(TAGGER, "--mode", "static", "--format", "json", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert words in lines[0] and "model 'conv_tagger' has inputs 'tokens' (rank 2)" in lines[0]
    model = json.loads(result.stdout)["models"][0]
    assert model["status"] == "error" and model["error"]["type"] == "BadOption"


def test_text_format_says_it_in_the_report_line_without_traceback() -> None:
    result = run_cli(TAGGER, "--mode", "static", "--padded", "tokenz:1")
    assert result.returncode == 2
    errors = [line for line in result.stdout.splitlines() if ": error: " in line]
    assert errors == [f"{TAGGER}: error: --padded tokenz:1: no input 'tokenz'; "
                      "model 'conv_tagger' has inputs 'tokens' (rank 2) [BadOption]"]
    assert result.stderr == ""


@pytest.mark.parametrize("args, words", [
    (["--padded", "tokens"], "--padded expects INPUT:AXIS, not 'tokens'"),
    (["--padded", "tokens:0"], "--padded tokens:0: axis 0 is the batch axis"),
    (["--padded", "tokens:-1"], "--padded tokens:-1: AXIS must be an integer >= 1"),
    (["--padded", "tokens:x"], "--padded tokens:x: AXIS must be an integer >= 1"),
    (["--mask-input", "tokens"], "--mask-input expects INPUT=MASK, not 'tokens'"),
    (["--padded", "none", "--padded", "tokens:1"], "--padded none declares that no input is padded"),
])
def test_bad_syntax_is_one_line_exit_2_before_any_model_loads(args: list[str], words: str) -> None:
    result = run_cli(TAGGER, *args)
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith(f"Error: {words}"), result.stderr
    assert result.stdout == ""


def test_several_targets_each_bad_one_is_its_own_error_the_others_are_checked() -> None:
    """SPEC 9: a declaration that does not fit one target is that target's error (exit 2)."""
    result = run_cli(ENCODER, TAGGER, "--mode", "static", "--format", "json", "--padded", "tokens:1")
    assert result.returncode == 2
    models = {Path(m["target"]).name: m for m in json.loads(result.stdout)["models"]}
    assert models["explicit_mask_encoder.keras"]["error"]["message"] == (
        "--padded tokens:1: no input 'tokens'; model 'explicit_mask_encoder' has inputs "
        "'token_ids' (rank 2), 'padding_mask' (rank 2)")
    assert models["conv_tagger.keras"]["error"] is None
    assert {f["rule"] for p in models["conv_tagger.keras"]["findings"]
            for f in (p, *p.get("related", ()))} >= {"MC101", "MC102"}
    assert len(stderr_lines(result)) == 1 and "explicit_mask_encoder.keras" in result.stderr


@pytest.mark.parametrize("target, args", [
    (TAGGER, ["--padded", "tokens:1"]),
    (ENCODER, ["--mask-input", "token_ids=padding_mask"]),
    (TAGGER, ["--padded", "none"]),
], ids=["padded", "mask-input", "padded-none"])
def test_declarations_that_fit_still_work(target: Path, args: list[str]) -> None:
    result = run_cli(target, "--mode", "static", "--format", "json", *args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert json.loads(result.stdout)["models"][0]["error"] is None
    assert result.stderr == ""


# --- 3. the same from the API, the fixture and the marker ----------------------------------


@pytest.mark.parametrize("settings, words", [
    ({"padded": ("tokenz:1",)}, "--padded tokenz:1: no input 'tokenz'"),
    ({"padded": [("tokens", 2)]}, "--padded tokens:2: input 'tokens' has no axis 2"),
    ({"mask_inputs": {"tokens": "padding_mask"}}, "--mask-input tokens=padding_mask: no input 'padding_mask'"),
    ({"padded": ("tokens",)}, "--padded expects INPUT:AXIS"),
    ({"padded": ("tokens:0",)}, "axis 0 is the batch axis"),
])
def test_check_raises_config_error_in_one_line(settings: dict, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        maskcheck.check(tagger(), mode="static", **settings)
    message = str(raised.value)
    assert words in message and "\n" not in message
    if "no input" in words or "no axis" in words:
        assert "model 'tagger' has inputs 'tokens' (rank 2)" in message


def test_check_accepts_declarations_that_fit() -> None:
    report = maskcheck.check(tagger(), mode="static", padded=[("tokens", 1)])
    assert report.errors == () and any(f.rule == "MC102" for f in report.findings)
    assert maskcheck.check(tagger(), mode="static", padded="none").errors == ()


def test_a_subclassed_model_is_checked_against_its_build_inputs() -> None:
    """Without a graph, the inputs are those the model was built on, named as the plan names them."""

    class Tagger(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="sub")
            self.embed = keras.layers.Embedding(50, 8, mask_zero=True)
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.embed(x))

    model = Tagger()
    model(np.ones((2, 5), "int32"))
    with pytest.raises(ConfigError, match=r"no input 'tokens'; model 'sub' has inputs 'input' \(rank 2\)"):
        maskcheck.check(model, mode="dynamic", padded=("tokens:1",))
    assert maskcheck.check(model, mode="dynamic", padded=("input:1",)).errors == ()


MARKER_TESTS = '''
import keras
import pytest


def tagger():
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = keras.layers.LSTM(4, return_sequences=True)(h)
    return keras.Model(x, keras.layers.Dense(3)(h), name="tagger")


@pytest.mark.maskcheck(mode="static", padded=("tokenz:1",))
def test_marker_unknown_input(maskcheck):
    maskcheck.check(tagger())


@pytest.mark.maskcheck(mode="static", mask_inputs={"tokens": "mask"})
def test_marker_unknown_mask(maskcheck):
    maskcheck.check(tagger())


@pytest.mark.maskcheck(mode="static", padded=("tokens",))
def test_marker_bad_syntax(maskcheck):
    maskcheck.check(tagger())


@pytest.mark.maskcheck(mode="static")
def test_fixture_call_axis_out_of_range(maskcheck):
    maskcheck.check(tagger(), padded=("tokens:5",))


@pytest.mark.maskcheck(mode="static", padded=("tokens:1",))
def test_marker_good_twin(maskcheck):
    maskcheck.assert_clean(tagger())
'''


def test_marker_and_fixture_fail_in_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marker=MARKER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", timeout=240)
    result.assert_outcomes(passed=1, failed=3, errors=1)
    out = result.stdout.str()
    for line in ("--padded tokenz:1: no input 'tokenz'; model 'tagger' has inputs 'tokens' (rank 2)",
                 "--mask-input tokens=mask: no input 'mask'; model 'tagger' has inputs 'tokens' (rank 2)",
                 "@pytest.mark.maskcheck: --padded expects INPUT:AXIS, not 'tokens'",
                 "--padded tokens:5: input 'tokens' has no axis 5 (rank 2"):
        assert line in out, out
    assert "maskcheck/engine.py" not in out and "maskcheck/config.py" not in out  # no traceback inside


# --- 4. backends: the command ---------------------------------------------------------------


def _findings(result: subprocess.CompletedProcess) -> list[tuple]:
    report = json.loads(result.stdout)
    return [(m["target"], f["rule"], tuple(f["path"]), f["message"], f["fix"],
             json.dumps(f["evidence"], sort_keys=True))
            for m in report["models"] for p in m["findings"] for f in (p, *p.get("related", ()))]


def _keras_home(tmp_path: Path, backend: str) -> Path:
    home = tmp_path / f"keras-{backend}"
    home.mkdir()
    (home / "keras.json").write_text(json.dumps({"backend": backend}))
    return home


def test_the_command_checks_under_tensorflow_whatever_keras_backend_says(tmp_path: Path) -> None:
    """Same findings under KERAS_BACKEND=numpy as under TensorFlow, and one notice for two targets."""
    home = _keras_home(tmp_path, "tensorflow")
    baseline = run_cli(TAGGER, CLEAN, "--format", "json", keras_home=home)
    assert baseline.returncode == 1 and baseline.stderr == "", baseline.stderr
    other = run_cli(TAGGER, CLEAN, "--format", "json", keras_home=home, env={"KERAS_BACKEND": "numpy"})
    assert other.returncode == 1, other.stderr
    assert _findings(other) == _findings(baseline) and _findings(baseline)
    assert stderr_lines(other) == ["maskcheck: KERAS_BACKEND=numpy ignored: model files are checked "
                                   "under TensorFlow"]


def test_the_command_overrides_the_backend_of_keras_json(tmp_path: Path) -> None:
    home = _keras_home(tmp_path, "jax")
    result = run_cli(TAGGER, "--mode", "static", "--format", "json", keras_home=home)
    assert result.returncode == 1, result.stderr
    assert {f[1] for f in _findings(result)} >= {"MC101", "MC102"}
    assert stderr_lines(result) == [f"maskcheck: backend 'jax' of {home / 'keras.json'} ignored: "
                                    "model files are checked under TensorFlow"]
    assert json.loads((home / "keras.json").read_text()) == {"backend": "jax"}  # left as it was


@pytest.mark.parametrize("env", [{"KERAS_BACKEND": "tensorflow"}, {"KERAS_BACKEND": ""}],
                         ids=["tensorflow", "empty"])
def test_no_notice_when_nothing_named_another_backend(tmp_path: Path, env: dict) -> None:
    result = run_cli(TAGGER, "--mode", "static", keras_home=_keras_home(tmp_path, "tensorflow"), env=env)
    assert result.returncode == 1 and result.stderr == ""


def test_force_tensorflow_names_what_it_overrode(tmp_path: Path) -> None:
    """The decision in `maskcheck.backends`, on explicit environments (Keras is imported here)."""
    home = _keras_home(tmp_path, "torch")
    assert backends.configured_backend({"KERAS_HOME": str(home)}) == ("torch", str(home / "keras.json"))
    assert backends.configured_backend({"KERAS_HOME": str(home), "KERAS_BACKEND": "jax"}) == (
        "jax", "KERAS_BACKEND=jax")
    assert backends.configured_backend({"KERAS_HOME": str(tmp_path / "none")}) is None
    environ = {"KERAS_HOME": str(home), "KERAS_BACKEND": "jax"}
    assert backends.force_tensorflow(environ) is None  # Keras already runs on TensorFlow here
    with pytest.raises(backends.UnsupportedBackendError):
        backends.require_tensorflow("jax")
    backends.require_tensorflow("tensorflow")


# --- 4. backends: inside a process on another backend ---------------------------------------


@pytest.fixture
def on_jax(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as maskcheck sees one whose Keras runs on JAX (no other backend is needed:
    only maskcheck's own reading of the backend is replaced, Keras and the models are real)."""
    monkeypatch.setattr(backends, "keras_backend", lambda: "jax")


def test_check_on_another_backend_raises_one_line(on_jax: None) -> None:
    with pytest.raises(maskcheck.UnsupportedBackendError) as raised:
        maskcheck.check(tagger(), mode="static")
    message = str(raised.value)
    assert "\n" not in message and "'jax'" in message
    assert "KERAS_BACKEND=tensorflow" in message and "maskcheck model.keras" in message
    assert isinstance(raised.value, RuntimeError) and not isinstance(raised.value, ValueError)


def test_assertions_on_another_backend_raise_one_line(on_jax: None) -> None:
    with pytest.raises(maskcheck.UnsupportedBackendError, match="maskcheck.assert_padding_invariant needs"):
        maskcheck.assert_padding_invariant(tagger(), np.array([[3, 4, 0]], "int32"))


def test_callback_on_another_backend_warns_once_and_trains(on_jax: None) -> None:
    from maskcheck.keras import MaskCheck, MaskCheckWarning

    model = tagger()
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.array([[3, 4, 0, 0], [5, 0, 0, 0]], "int32")
    y = np.zeros((2, 4), "int32")
    callback = MaskCheck(on_leak="raise")  # a leaking model: on TensorFlow this fit would raise
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    ours = [w for w in caught if issubclass(w.category, MaskCheckWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    text = str(ours[0].message)
    assert "\n" not in text and "MaskCheck needs Keras' TensorFlow backend" in text
    assert "this fit runs unchecked" in text and callback.report is None
    assert len(first.history["loss"]) == 1


def test_callback_on_tensorflow_still_checks() -> None:
    """Good twin: on TensorFlow the same callback checks, and raises on the leak."""
    from maskcheck.keras import MaskCheck

    model = tagger()
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.array([[3, 4, 0, 0], [5, 0, 0, 0]], "int32")
    with pytest.raises(maskcheck.PaddingLeakError):
        model.fit(x, np.zeros((2, 4), "int32"), epochs=1, verbose=0,
                  callbacks=[MaskCheck(on_leak="raise", mode="static")])


CONFTEST_ON_JAX = '''
import maskcheck.backends

maskcheck.backends.keras_backend = lambda: "jax"  # for every item, collected model files too
'''

FIXTURE_ON_JAX = '''
import keras


def test_fixture_check(maskcheck):
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    model = keras.Model(x, keras.layers.Conv1D(3, 3, padding="same")(h))
    maskcheck.assert_clean(model)
'''


def test_fixture_on_another_backend_skips_with_the_line(pytester: pytest.Pytester) -> None:
    """Decision: a skip (see `_skip_off_tensorflow`): nothing about the model is known."""
    pytester.makeconftest(CONFTEST_ON_JAX)
    pytester.makepyfile(test_on_jax=FIXTURE_ON_JAX)
    (pytester.path / "tagger.keras").write_bytes(TAGGER.read_bytes())
    result = pytester.runpytest_subprocess("--maskcheck", "-rs", "-p", "no:cacheprovider",
                                           "-p", "no:randomly", timeout=240)
    result.assert_outcomes(skipped=2)  # the fixture's test and the collected model file
    out = result.stdout.str()
    for who in ("the maskcheck fixture", "pytest --maskcheck"):
        assert f"{who} needs Keras' TensorFlow backend, but this process runs Keras on 'jax'" in out
    assert "Traceback" not in out


# --- 4. backends: a real process on another backend, where one is installed -----------------


@functools.lru_cache(maxsize=None)
def _other_backend() -> str | None:
    """The first Keras backend other than TensorFlow that imports here (the numpy backend
    imports scipy and jax, so it needs them too), or None."""
    for backend in ("jax", "torch", "numpy"):
        probe = subprocess.run([sys.executable, "-c", "import keras"], capture_output=True,
                               env={**os.environ, "KERAS_BACKEND": backend}, timeout=120)
        if probe.returncode == 0:
            return backend
    return None


REAL_PROCESS = textwrap.dedent('''
    import warnings
    import keras
    import numpy as np
    import maskcheck
    from maskcheck.keras import MaskCheck, MaskCheckWarning

    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    model = keras.Model(x, keras.layers.Conv1D(3, 3, padding="same")(h))
    try:
        maskcheck.check(model)
    except maskcheck.UnsupportedBackendError as exc:
        print("check:", exc)
    callback = MaskCheck()
    callback.set_model(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        callback.on_train_begin()  # what fit calls first (the numpy backend has no fit)
        callback.on_train_begin()
    print("callback:", [str(w.message) for w in caught if w.category is MaskCheckWarning])
''')


def test_a_real_process_on_another_backend() -> None:
    backend = _other_backend()
    if backend is None:
        pytest.skip("no Keras backend other than TensorFlow imports here (jax and torch are not "
                    "installed; the numpy backend needs scipy and jax)")
    result = subprocess.run([sys.executable, "-c", REAL_PROCESS], capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": backend}, timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"check: maskcheck.check needs Keras' TensorFlow backend, but this "
                               f"process runs Keras on '{backend}'")
    assert lines[1].count("MaskCheck needs Keras' TensorFlow backend") == 1


def test_a_keras_that_cannot_import_tensorflow_is_one_line(tmp_path: Path) -> None:
    """Where TensorFlow is missing or broken the command cannot check anything: one line, exit 2.
    (A `tensorflow` package that fails to import stands in for one that is not installed.)"""
    shadow = tmp_path / "shadow" / "tensorflow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named tensorflow (shadowed)')\n")
    path = os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])
    result = run_cli(TAGGER, CLEAN, env={"PYTHONPATH": path, "KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 2
    assert stderr_lines(result) == ["Error: cannot import Keras with the TensorFlow backend (ImportError: "
                                    "No module named tensorflow (shadowed)); maskcheck checks models "
                                    "under TensorFlow: install it (pip install tensorflow)"]
