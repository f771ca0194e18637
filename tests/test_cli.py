"""The `maskcheck` command end to end: exit codes, bad input, output hygiene.

Tests that promise something about the installed command (exit codes, what
reaches the terminal, what gets imported) run the real console script in a
subprocess. Option parsing and formats run in-process through click's
CliRunner, which is much faster because TensorFlow loads once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from maskcheck.cli import main

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"
LEAKY = MODELS / "conv_tagger.keras"  # Embedding(mask_zero) -> Conv1D -> LSTM: MC101 + MC102
CLEAN = MODELS / "lstm_tagger.keras"


def console_script() -> str:
    """The installed `maskcheck` entry point of the Python running the tests."""
    beside = Path(sys.executable).with_name("maskcheck")
    found = str(beside) if beside.exists() else shutil.which("maskcheck")
    assert found, "the maskcheck console script is not installed (pip install -e .)"
    return found


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command must quiet TensorFlow by itself
    return subprocess.run([console_script(), *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, env=full_env, timeout=300)


def invoke(*args: str) -> "click.testing.Result":
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --- the console script ---------------------------------------------------------


def test_exit_0_for_a_clean_model() -> None:
    result = run_cli(str(CLEAN), "--mode", "static")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Checked 1 model: 0 error(s), 0 warning(s), 0 info(s)." in result.stdout


def test_exit_1_for_findings_and_stdout_holds_only_the_report() -> None:
    result = run_cli(str(LEAKY), "--mode", "static", "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)  # nothing but the report on stdout
    found = [g for f in report["models"][0]["findings"] for g in (f, *f.get("related", ()))]
    assert {f["rule"] for f in found} >= {"MC101", "MC102"}
    for noise in ("oneDNN", "absl", "cuda", "UserWarning", "Traceback"):
        assert noise not in result.stderr, f"library noise on stderr: {result.stderr[:500]}"


def test_exit_2_for_a_usage_error_without_traceback() -> None:
    result = run_cli(str(CLEAN), "--select", "MC999")
    assert result.returncode == 2
    assert "unknown rule 'MC999'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_fail_on_decides_the_exit_status() -> None:
    # conv_tagger has an error (MC102) and a warning (MC101): only "never" passes it.
    assert run_cli(str(LEAKY), "--mode", "static", "--fail-on", "never").returncode == 0
    assert run_cli(str(LEAKY), "--mode", "static", "--select", "MC101", "--fail-on", "error").returncode == 0
    assert run_cli(str(LEAKY), "--mode", "static", "--select", "MC101").returncode == 1


def test_light_commands_do_not_import_tensorflow() -> None:
    code = textwrap.dedent("""
        import sys
        from maskcheck.cli import main
        for args in (["--help"], ["--version"], ["--list-rules"], ["--explain", "MC101"],
                     ["--explain", "unmasked-mixing"], ["--explain", "padding"],
                     ["--explain", "MC402"]):
            try:
                main(args)
            except SystemExit as exit:
                assert exit.code in (0, None), (args, exit.code)
        heavy = sorted(m for m in ("tensorflow", "keras", "hypothesis", "h5py") if m in sys.modules)
        print("HEAVY", heavy, file=sys.stderr)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr
    assert "MC305" in result.stdout and "Bad model" in result.stdout
    assert "--padded none" in result.stdout and "Runs on real data only" in result.stdout


def test_version_of_the_console_script() -> None:
    import maskcheck

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"maskcheck, version {maskcheck.__version__}"


def test_python_dash_m() -> None:
    result = subprocess.run([sys.executable, "-m", "maskcheck", "--list-rules"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.count("\n") == 24


# --- bad input --------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_targets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of every kind of bad target SPEC 9 names, plus factory modules."""
    import h5py
    import keras
    import numpy as np

    folder = tmp_path_factory.mktemp("bad")
    (folder / "mylayers.py").write_text(textwrap.dedent("""
        import keras

        @keras.saving.register_keras_serializable(package="mylayers")
        class Doubler(keras.layers.Layer):
            def call(self, x):
                return x * 2.0
    """))
    (folder / "factories.py").write_text(textwrap.dedent("""
        import keras

        def raises():
            raise RuntimeError("database unavailable")

        def not_a_model():
            return 42

        def tagger():
            x = keras.Input((None,), dtype="int32")
            h = keras.layers.Embedding(50, 4, mask_zero=True)(x)
            y = keras.layers.Conv1D(4, 3, padding="same", name="conv")(h)
            return keras.Model(x, y, name="factory_tagger")
    """))
    sys.path.insert(0, str(folder))
    try:
        import mylayers  # noqa: F401  (registers Doubler for saving)

        x = keras.Input((None, 4))
        keras.Model(x, mylayers.Doubler()(x)).save(folder / "custom.keras")
        x = keras.Input((None, 4))
        keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0)(x)).save(folder / "lambda.keras")
        keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0)(x)).save(folder / "lambda.h5")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("mylayers", None)
    x = keras.Input((None, 4))
    keras.Model(x, keras.layers.Conv1D(2, 3, name="conv")(x), name="legacy").save(folder / "legacy.h5")
    (folder / "empty.keras").write_bytes(b"")
    (folder / "random.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    whole = LEAKY.read_bytes()
    (folder / "truncated.keras").write_bytes(whole[: len(whole) // 2])
    with h5py.File(folder / "weights_only.h5", "w") as handle:
        handle["w"] = np.arange(4.0)
    (folder / "no_models").mkdir()
    (folder / "no_models" / "notes.txt").write_text("nothing to see\n")
    return folder


BAD = {  # target -> (error type, words the one-line reason must contain)
    "missing.keras": ("FileNotFound", "no such file"),
    "no_models": ("NoModels", "no .keras or .h5"),
    "empty.keras": ("EmptyFile", "empty"),
    "random.keras": ("CorruptFile", "not a .keras archive"),
    "truncated.keras": ("CorruptFile", "not a .keras archive"),
    "weights_only.h5": ("NotAModel", "holds no Keras model"),
    "custom.keras": ("UnknownCustomObject", "--import"),
    "lambda.keras": ("UnsafeModel", "--unsafe"),
    "lambda.h5": ("UnsafeModel", "--unsafe"),  # legacy files get the same protection
    "factories:raises": ("FactoryError", "database unavailable"),
    "factories:not_a_model": ("FactoryError", "expected a keras.Model"),
}


def test_every_bad_target_gets_one_line_and_the_others_are_still_checked(bad_targets: Path) -> None:
    good = ["factories:tagger", "legacy.h5", str(LEAKY)]
    result = run_cli(*BAD, *good, "--mode", "static", "--format", "json", cwd=bad_targets)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    models = {m["target"]: m for m in json.loads(result.stdout)["models"]}
    for target, (type_, words) in BAD.items():
        entry = models[target]
        assert entry["status"] == "error", target
        assert entry["error"]["type"] == type_, (target, entry["error"])
        assert words in entry["error"]["message"], (target, entry["error"])
        assert "\n" not in entry["error"]["message"]
        # machine formats also get one line per failed target on stderr
        assert f"maskcheck: {target}: {entry['error']['message']}" in result.stderr
    assert models["factories:tagger"]["status"] == "findings"
    assert models["legacy.h5"]["model"] == "legacy"
    assert [f["layer"] for f in models["legacy.h5"]["findings"] if f["rule"] == "MC102"] == ["conv"]
    assert models[str(LEAKY)]["status"] == "findings"


def test_bad_targets_in_text_output(bad_targets: Path) -> None:
    result = run_cli(*BAD, "--mode", "static", cwd=bad_targets)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    for target, (type_, _words) in BAD.items():
        [line] = [line for line in lines if line.startswith(f"{target}: error: ")]
        assert line.endswith(f"[{type_}]")
    assert lines[-1] == f"Checked {len(BAD)} models: 0 error(s), 0 warning(s), 0 info(s), {len(BAD)} could not be checked."
    assert "Traceback" not in result.stderr


def test_lambda_loads_with_unsafe_and_custom_layer_with_import(bad_targets: Path) -> None:
    result = run_cli("lambda.keras", "custom.keras", "--unsafe", "--import", "mylayers",
                     "--mode", "static", "--format", "json", cwd=bad_targets)
    statuses = {m["target"]: m["status"] for m in json.loads(result.stdout)["models"]}
    assert statuses["lambda.keras"] != "error" and statuses["custom.keras"] != "error", result.stdout


def test_missing_import_module_is_a_target_error(bad_targets: Path) -> None:
    result = invoke(str(LEAKY), "--import", "no_such_module_xyz", "--mode", "static")
    assert result.exit_code == 2
    assert "--import no_such_module_xyz: ModuleNotFoundError" in result.output


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_nothing_is_written_beside_models_and_models_are_unchanged(tmp_path: Path) -> None:
    shutil.copytree(MODELS, tmp_path / "models")
    (tmp_path / "models" / "factories.py").write_text(
        "import keras\n\ndef mlp():\n    x = keras.Input((3,))\n    return keras.Model(x, keras.layers.Dense(1)(x))\n")
    before = snapshot(tmp_path)
    result = run_cli("models", "factories:mlp", "--mode", "static", cwd=tmp_path,
                     env={"PYTHONPATH": str(tmp_path / "models"), "PYTHONDONTWRITEBYTECODE": ""})
    assert result.returncode == 1, result.stderr
    assert snapshot(tmp_path) == before


# --- JSON report ----------------------------------------------------------------------

FINDING_FIELDS = {"rule": str, "name": str, "severity": str, "kind": list, "layer": (str, type(None)),
                  "layer_class": (str, type(None)), "path": list, "message": str, "fix": str,
                  "evidence": dict}


def validate_report(report: dict) -> None:
    """Check a JSON report against the field list of SPEC section 6."""
    assert set(report) == {"schema", "tool", "models", "summary"}
    assert report["schema"] == 1
    assert report["tool"]["name"] == "maskcheck" and isinstance(report["tool"]["version"], str)
    for model in report["models"]:
        assert set(model) == {"target", "model", "status", "error", "findings", "suppressed", "stats"}
        assert isinstance(model["suppressed"], list)
        assert isinstance(model["target"], str)
        assert model["status"] in ("ok", "findings", "error")
        assert isinstance(model["findings"], list) and isinstance(model["stats"], dict)
        if model["status"] == "error":
            # SPEC 9: a model that raises on every batch keeps its static findings
            assert set(model["error"]) == {"type", "message"}
            assert all(f["kind"] == ["static"] for f in model["findings"])
        else:
            assert model["error"] is None and isinstance(model["model"], str)
            assert (model["status"] == "findings") == bool(model["findings"])
        related = [r for f in model["findings"] for r in f.get("related", ())]
        assert all("related" not in r for r in related)  # groups are one level deep
        for finding in model["findings"] + related:
            assert set(FINDING_FIELDS) <= set(finding) <= set(FINDING_FIELDS) | {"location", "related"}
            for key, kind in FINDING_FIELDS.items():
                assert isinstance(finding[key], kind), (key, finding[key])
            assert finding["severity"] in ("error", "warning", "info")
            assert set(finding["kind"]) <= {"static", "dynamic"} and finding["kind"]
            assert finding["path"][-1] == finding["layer"]
    summary = report["summary"]
    assert set(summary) == {"models", "errors", "warnings", "infos", "related", "failed",
                            "suppressed", "baselined", "fixed"}
    found = [f for m in report["models"] for f in m["findings"]]
    assert summary["models"] == len(report["models"])
    for key, severity in (("errors", "error"), ("warnings", "warning"), ("infos", "info")):
        assert summary[key] == sum(f["severity"] == severity for f in found)
    assert summary["failed"] == sum(m["status"] == "error" for m in report["models"])


def test_json_report_matches_the_spec_for_findings_clean_and_error() -> None:
    result = invoke(LEAKY, CLEAN, "missing.keras", "--mode", "static", "--format", "json")
    report = json.loads(result.stdout)
    validate_report(report)
    assert [m["status"] for m in report["models"]] == ["findings", "ok", "error"]
    assert result.exit_code == 2


def test_json_is_deterministic_apart_from_stats() -> None:
    def without_stats(text: str) -> str:
        report = json.loads(text)
        for model in report["models"]:
            model.pop("stats")
        return json.dumps(report)

    first = invoke(LEAKY, CLEAN, "--mode", "static", "--format", "json").stdout
    second = invoke(LEAKY, CLEAN, "--mode", "static", "--format", "json").stdout
    assert without_stats(first) == without_stats(second)


# --- options and configuration -----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github", "junit"])
def test_every_format_end_to_end_with_output_file(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"report.{fmt}"
    result = invoke(LEAKY, "--mode", "static", "--format", fmt, "--output", out)
    assert result.exit_code == 1
    assert result.stdout == ""
    text = out.read_text(encoding="utf-8")
    if fmt in ("json", "sarif"):
        parsed = json.loads(text)
        if fmt == "json":
            validate_report(parsed)
        else:
            results = parsed["runs"][0]["results"]
            assert {r["ruleId"] for r in results} >= {"MC102"}
            assert any(loc["message"]["text"].startswith("MC101 ") for r in results
                       for loc in r.get("relatedLocations", ()))
    elif fmt == "junit":
        import xml.etree.ElementTree as ET

        suite = ET.fromstring(text)
        assert suite.get("tests") == "1" and suite.get("failures") == "1"
    elif fmt == "github":
        assert text.startswith("::error file=") and "title=MC102 unmasked-mixing::" in text
    else:
        assert "MC102 [error] unmasked-mixing" in text


def test_output_to_an_unwritable_place_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [str(CLEAN), "--mode", "static", "--output",
                                       str(tmp_path / "no" / "such" / "dir" / "r.txt")])
    assert result.exit_code == 2 and "cannot write" in result.output


def test_statistics_counts_per_rule() -> None:
    result = invoke(LEAKY, MODELS / "conv_classifier.keras", "--mode", "static", "--statistics")
    assert "    4  MC102  unmasked-mixing" in result.stdout  # conv and pool in each model
    assert "    2  MC101  mask-dropped" in result.stdout


def test_select_and_ignore_take_codes_prefixes_and_names() -> None:
    def rules(*args: str) -> set[str]:
        report = json.loads(invoke(LEAKY, "--mode", "static", "--format", "json", *args).stdout)
        return {f["rule"] for f in report["models"][0]["findings"]}

    assert rules("--select", "MC101") == {"MC101"}
    assert rules("--select", "unmasked-mixing") == {"MC102"}
    assert rules("--ignore", "MC1") == set()
    assert rules("--select", "MC1", "--ignore", "mask-dropped") == {"MC102"}


def write_pyproject(folder: Path, table: str) -> None:
    (folder / "pyproject.toml").write_text("[project]\nname = 'x'\n\n[tool.maskcheck]\n" + table)


def test_pyproject_settings_apply_and_the_command_line_wins(tmp_path: Path, monkeypatch) -> None:
    write_pyproject(tmp_path, 'select = ["MC101"]\nformat = "json"\n')
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # the nearest pyproject.toml above the working folder
    from_file = json.loads(invoke(LEAKY, "--mode", "static").stdout)
    assert {f["rule"] for f in from_file["models"][0]["findings"]} == {"MC101"}
    overridden = json.loads(invoke(LEAKY, "--mode", "static", "--select", "MC102").stdout)
    assert {f["rule"] for f in overridden["models"][0]["findings"]} == {"MC102"}


@pytest.mark.parametrize("table, words", [
    ('colour = "blue"\n', "unknown key 'colour'"),
    ('fail-on = "sometimes"\n', "--fail-on must be one of"),
    ('select = ["MC9"]\n', "unknown rule 'MC9'"),
    ('seed = "abc"\n', "--seed must be an integer"),
    ("select = \n", "cannot read [tool.maskcheck]"),
])
def test_bad_pyproject_is_a_one_line_error(tmp_path: Path, monkeypatch, table: str, words: str) -> None:
    write_pyproject(tmp_path, table)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [str(CLEAN)])
    assert result.exit_code == 2
    assert words in result.output and "pyproject.toml" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args, words", [
    (["--seed", "-1"], "--seed must be an integer from 0 to 4294967295"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
    (["--generate-steps", "0"], "--generate-steps must be an integer >= 1"),
    (["--atol", "x"], "--atol must be a non-negative number"),
    (["--mask-input", "tokens"], "--mask-input expects INPUT=MASK"),
    (["--padded", "tokens:x"], "--padded tokens:x: AXIS must be an integer >= 1"),
    (["--padding", "middle"], "Invalid value for '--padding'"),
])
def test_bad_option_values(args: list[str], words: str) -> None:
    result = CliRunner().invoke(main, [str(CLEAN), *args])
    assert result.exit_code == 2
    assert words in result.output


def test_no_targets_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, [])
    assert result.exit_code == 2 and "no TARGETS given" in result.output


def test_explain_unknown_rule() -> None:
    result = CliRunner().invoke(main, ["--explain", "MC999"])
    assert result.exit_code == 2 and "unknown rule or topic 'MC999'" in result.output


def test_progress_appears_on_a_terminal_only() -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([console_script(), str(CLEAN), str(LEAKY), "--mode", "static"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=follower, timeout=300)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    terminal = b"".join(chunks).decode()
    assert "[2/2] checking" in terminal and "[1/2] loading" in terminal
    assert b"[1/2]" not in proc.stdout


def test_verbose_shows_the_traceback_behind_a_target_error(bad_targets: Path) -> None:
    result = run_cli("lambda.keras", "random.keras", "--verbose", "--mode", "static", cwd=bad_targets)
    assert result.returncode == 2
    assert "maskcheck: lambda.keras: model contains a Lambda layer" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "lambda.keras: error: " in result.stdout and "random.keras: error: " in result.stdout
