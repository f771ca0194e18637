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
from maskcheck.finding import Finding, ModelReport, Report, Severity, TargetError
from maskcheck.reporters import REPORTERS, get_reporter
from maskcheck.reporters import github, junit, sarif
from maskcheck.rules import ALL_RULES

try:  # tests/ may or may not be a package; work either way
    from tests.sample_report import sample_report
except ImportError:  # pragma: no cover
    from sample_report import sample_report

GOLDEN = Path(__file__).parent / "golden"
EXTENSIONS = {"text": "txt", "json": "json", "sarif": "sarif", "github": "github", "junit": "xml"}
VERSION_PLACEHOLDER = "<version>"


def redact(text: str, fmt: str = "") -> str:
    """Hide what the golden should not pin: the version, and in SARIF the rule docs.

    Rule texts belong to the rules (and are checked against them in
    `test_sarif_required_structure`); pinning them here would break this
    golden on every docstring edit.
    """
    if fmt == "sarif":
        log = json.loads(text)
        for rule in log["runs"][0]["tool"]["driver"]["rules"]:
            for key in ("shortDescription", "fullDescription", "help"):
                rule[key]["text"] = f"<{rule['id']} {key}>"
        text = json.dumps(log, indent=2, ensure_ascii=False) + "\n"
    return text.replace(maskcheck.__version__, VERSION_PLACEHOLDER)


def empty_report() -> Report:
    return Report(models=(ModelReport("models/clean.keras", "clean", stats={"layers": 2}),))


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
        assert descriptor["help"]["text"] == rule.fix
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


# --- GitHub ------------------------------------------------------------------

def test_github_lines() -> None:
    lines = github.render(sample_report()).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("::error file=models/tagger.keras,title=MC102 unmasked-mixing::")
    assert lines[0].endswith(" Fix: In 'conv1d': use Conv1D(padding='causal') with post-padding.")
    assert lines[1].startswith("::warning file=models/tagger.keras,title=MC101 mask-dropped::")
    assert lines[2].startswith("::notice file=models/tagger.keras,title=MC104 mask-never-used::")
    assert lines[3].startswith("::error file=models/broken.keras,title=maskcheck load error::Unknown layer")


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


def test_junit_survives_control_characters() -> None:
    report = Report((ModelReport("m.keras", None, error=TargetError("E", "bad\x00byte")),))
    assert _suite(junit.render(report)).find("testcase/error").get("message") == "bad\ufffdbyte"


def test_text_says_when_probes_could_not_run() -> None:
    from maskcheck.reporters import text

    skipped = ModelReport("models/mlp.keras", "mlp", stats={"dynamic": "skipped: model 'mlp' has no padded input"})
    rendered = text.render(Report((skipped,)))
    assert rendered.splitlines()[0] == "models/mlp.keras: note: dynamic checks skipped: model 'mlp' has no padded input"


def test_text_evidence_line_names_side_sample_position_and_size() -> None:
    from maskcheck.reporters import text

    rendered = text.render(sample_report())
    assert "    evidence: probe post-padding; sample 2, position 6; max |diff| 0.43" in rendered.splitlines()
