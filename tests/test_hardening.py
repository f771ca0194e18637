"""Configuration cannot run code, user code ends one target only, and exits never lie.

Each test here failed on the commit before issue 26: a pyproject's `unsafe = true` let a
model file's Lambda run, a factory's `sys.exit(0)` ended the run with exit 0, Ctrl-C exited
1 ("findings"), and a 64-bit seed was accepted and gave a false MC103. Their twins (the flag
on the command line, a factory that returns, a 32-bit seed) show the guard is not a refusal
of everything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from maskcheck.cli import main
from maskcheck.config import ConfigError, build_config

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"
CLEAN = MODELS / "lstm_tagger.keras"
LEAKY = MODELS / "conv_tagger.keras"


def invoke(*args: object, cwd: Path | None = None) -> "click.testing.Result":
    previous = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    finally:
        os.chdir(previous)


def cli(*args: object, cwd: Path, **popen: object) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-m", "maskcheck", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A .keras file whose Lambda touches a marker file when its code runs (on load with
    safe_mode=False, or on a forward pass); the marker is absent after building."""
    import keras

    folder = tmp_path_factory.mktemp("lambda")
    marker = folder / "lambda_ran"
    code = f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]"
    inputs = keras.Input((None, 3), name="x")
    outputs = keras.layers.Dense(2)(keras.layers.Lambda(eval(code))(inputs))  # noqa: S307
    path = folder / "lambda.keras"
    keras.Model(inputs, outputs, name="with_lambda").save(path)
    marker.unlink(missing_ok=True)
    return path, marker


# --- 1. unsafe comes from the person running the check, never from a file ---------------


def _pyproject(folder: Path, table: str) -> None:
    (folder / "pyproject.toml").write_text("[project]\nname = 'x'\n\n[tool.maskcheck]\n" + table)


def test_unsafe_in_pyproject_is_an_error_naming_the_flag(tmp_path, lambda_model) -> None:
    path, marker = lambda_model
    _pyproject(tmp_path, "unsafe = true\n")
    result = invoke(path, "--mode", "static", cwd=tmp_path)
    assert result.exit_code == 2
    assert "unsafe" in result.output and "--unsafe" in result.output
    assert "pyproject.toml" in result.output and len(result.output.strip().splitlines()) == 1
    assert not marker.exists()  # the model was never loaded
    with pytest.raises(ConfigError, match="--unsafe"):
        build_config({}, tmp_path)


def test_unsafe_false_in_pyproject_is_refused_too(tmp_path) -> None:
    """The key is not a setting of files at all, whatever its value (a later edit to true
    must not be a quiet change)."""
    _pyproject(tmp_path, "unsafe = false\n")
    with pytest.raises(ConfigError, match="may not set 'unsafe'"):
        build_config({}, tmp_path)


def test_unsafe_on_the_command_line_still_loads_the_lambda(tmp_path, lambda_model) -> None:
    path, marker = lambda_model
    result = invoke(path, "--mode", "static", "--unsafe", cwd=tmp_path)
    assert result.exit_code in (0, 1), result.output
    assert marker.exists()  # the twin: the flag is what lets code run
    marker.unlink()


def test_isolated_ignores_every_configuration_file(tmp_path) -> None:
    _pyproject(tmp_path, 'unsafe = true\nfail-on = "never"\nimport = ["no_such_module_anywhere"]\n')
    refused = invoke(LEAKY, "--mode", "static", cwd=tmp_path)
    assert refused.exit_code == 2 and "--unsafe" in refused.output
    isolated = invoke(LEAKY, "--mode", "static", "--isolated", cwd=tmp_path)
    assert isolated.exit_code == 1, isolated.output  # defaults: fail-on warning, nothing imported
    assert "MC102" in isolated.output
    config = build_config({}, tmp_path, isolated=True)
    assert config.source is None and config.fail_on == "warning" and config.imports == ()


def test_pytest_ini_cannot_set_unsafe(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmaskcheck_unsafe = true\n")
    pytester.makepyfile(test_x="def test_x(maskcheck):\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    assert result.ret != 0
    text = result.stdout.str() + result.stderr.str()
    assert "maskcheck_unsafe" in text and "--maskcheck-unsafe" in text


pytest_plugins = ["pytester"]


# --- 4. user code ends its target, Ctrl-C and SIGTERM end the run ------------------------


FACTORIES = '''
import sys, time
from pathlib import Path

import keras


def good():
    inputs = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(inputs)
    return keras.Model(inputs, keras.layers.LSTM(3, return_sequences=True)(x), name="good")


def exits():
    sys.exit(0)


def exits_with_message():
    sys.exit("done here")


def interrupts():
    raise KeyboardInterrupt


def waits():
    Path("started").touch()
    time.sleep(120)
    return good()


class Exits(keras.layers.Layer):
    def call(self, x):
        sys.exit(3)


def exits_in_call():
    inputs = keras.Input((None, 2), name="x")
    return keras.Model(inputs, Exits()(keras.layers.Masking()(inputs)), name="exits_in_call")


def data_exits():
    sys.exit(0)
'''


@pytest.fixture()
def factories(tmp_path: Path) -> Path:
    (tmp_path / "hostile_factories.py").write_text(textwrap.dedent(FACTORIES))
    return tmp_path


def _json(result) -> dict:
    return json.loads(result.output[result.output.index("{"):])


def test_sys_exit_in_a_factory_is_that_targets_error(factories) -> None:
    result = invoke("hostile_factories:exits", "hostile_factories:exits_with_message",
                    "hostile_factories:good", "--format", "json", "--mode", "static", cwd=factories)
    assert result.exit_code == 2  # not 0: a target was never checked
    report = _json(result)
    errors = [m["error"] for m in report["models"]]
    assert errors[0]["type"] == "FactoryError" and "sys.exit(0)" in errors[0]["message"]
    assert "sys.exit('done here')" in errors[1]["message"]
    assert errors[2] is None and report["models"][2]["status"] == "ok"  # still checked


def test_sys_exit_in_a_custom_layer_is_that_targets_error(factories) -> None:
    result = invoke("hostile_factories:exits_in_call", "hostile_factories:good", "--format", "json",
                    "--mode", "dynamic", cwd=factories)
    assert result.exit_code == 2
    first, second = _json(result)["models"]
    assert first["status"] == "error" and "sys.exit(3)" in first["error"]["message"]
    assert second["status"] == "ok"


def test_sys_exit_in_an_import_or_a_data_function_is_an_error(factories) -> None:
    (factories / "exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    imported = invoke("hostile_factories:good", "--import", "exits_on_import", "--mode", "static",
                      "--format", "json", cwd=factories)
    assert imported.exit_code == 2
    error = _json(imported)["models"][0]["error"]
    assert error["type"] == "ImportError" and "sys.exit(0)" in error["message"]
    data = invoke("hostile_factories:good", "--data", "hostile_factories:data_exits",
                  "--format", "json", "--mode", "dynamic", cwd=factories)
    assert data.exit_code == 2
    error = _json(data)["models"][0]["error"]
    assert error["type"] == "DataError" and "data_exits() called sys.exit(0)" in error["message"]


def test_keyboard_interrupt_stops_the_run_with_130(factories) -> None:
    result = invoke("hostile_factories:interrupts", "hostile_factories:good", "--mode", "static",
                    cwd=factories)
    assert result.exit_code == 130
    assert "interrupted (Ctrl-C)" in result.output


@pytest.mark.parametrize("sig, code, words", [(signal.SIGINT, 130, "interrupted (Ctrl-C)"),
                                              (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_a_signal_ends_the_run_with_its_exit_status(factories, sig, code, words) -> None:
    process = cli("hostile_factories:waits", "--mode", "static", cwd=factories)
    deadline = time.monotonic() + 120
    while not (factories / "started").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert words in err and "Traceback" not in err and out == ""


# --- numeric options ------------------------------------------------------------------------


@pytest.mark.parametrize("option, value", [("--seed", "18446744073709551616"), ("--seed", "-1"),
                                           ("--seed", "4294967296"), ("--batch-size", "0"),
                                           ("--seq-len", "-3"), ("--data-batches", "0"),
                                           ("--generate-steps", "0")])
def test_numbers_out_of_range_are_usage_errors(option, value) -> None:
    result = invoke(CLEAN, option, value)
    assert result.exit_code == 2
    assert option in result.output and len(result.output.strip().splitlines()) == 1


def test_the_largest_seed_keeps_a_clean_model_clean() -> None:
    import keras

    import maskcheck

    report = maskcheck.check(keras.saving.load_model(CLEAN), seed=2**32 - 1)
    assert report.all_findings == ()
    with pytest.raises(ConfigError, match="from 0 to 4294967295"):
        maskcheck.check(keras.saving.load_model(CLEAN), seed=2**64)


@pytest.mark.parametrize("output, inside", [("report.json", True), ("out/report.json", True),
                                            ("../report.json", False), ("/tmp/x/report.json", False)])
def test_output_from_a_file_stays_inside_the_project(tmp_path, output, inside) -> None:
    """A checkout's pyproject must not make the check overwrite files elsewhere; the command
    line may write anywhere."""
    project = tmp_path / "project"
    project.mkdir()
    _pyproject(project, f"output = {output!r}\n")
    if inside:
        assert build_config({}, project).output == output
    else:
        with pytest.raises(ConfigError, match="outside the project folder"):
            build_config({}, project)
    assert build_config({"output": "/tmp/x/r.json"}, project).output == "/tmp/x/r.json"


def test_a_stop_swallowed_by_a_library_is_raised_again() -> None:
    """Keras's weight loader catches everything (a bare `except:`) around extracting the
    weights; a Ctrl-C that lands there must still stop the run once the load returns."""
    from maskcheck.interrupts import raise_pending, stops_unwind

    with stops_unwind():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except BaseException:  # what a bare `except:` in a library does
            pass
        with pytest.raises(KeyboardInterrupt):
            raise_pending()
    raise_pending()  # a new run starts clean
