"""JUnit XML for CI test dashboards: one test case per model.

A model fails when it has a finding at or above the report's `fail_on`
threshold, so the dashboard agrees with the exit status; findings below it
are kept in `<system-out>`, after a note when the probes were inconclusive
(SPEC 9; the case passes or fails on its findings, as the exit status does). A
target that could not be loaded is an `<error>`, as a crashed test is.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from maskcheck.finding import FAIL_ON_RANKS, Finding, ModelReport, Report
from maskcheck.reporters.text import finding_line

# Characters XML 1.0 cannot carry at all, even escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


def _finding_lines(model: ModelReport, findings: list[Finding]) -> str:
    """The text reporter's two lines per finding (what happened, then the fix), and one
    indented line per finding of the same cause."""
    lines: list[str] = []
    for f in findings:
        lines.append(finding_line(model, f))
        lines.append(f"    fix: {f.fix}")
        lines.extend(f"    related: {finding_line(model, r)}" for r in f.related)
    return "\n".join(lines) + "\n"


def _testcase(model: ModelReport, threshold: int) -> tuple[ET.Element, str | None]:
    """One <testcase>, and "failure"/"error" when it did not pass."""
    case = ET.Element("testcase", {"classname": "maskcheck", "name": _clean(model.target)})
    outcome: str | None = None
    if model.error is not None:
        error = ET.SubElement(case, "error", {"type": _clean(model.error.type),
                                              "message": _clean(model.error.message)})
        error.text = _clean(f"{model.target}: error: {model.error.message} [{model.error.type}]\n")
        outcome = "error"
    failing = [f for f in model.findings if f.severity.rank >= threshold]
    passing = [f for f in model.findings if f.severity.rank < threshold]
    if failing:
        failure = ET.SubElement(case, "failure", {"message": f"{len(failing)} finding(s)",
                                                  "type": "maskcheck"})
        failure.text = _clean(_finding_lines(model, failing))
        outcome = outcome or "failure"
    said = _finding_lines(model, passing) if passing else ""
    if model.error is None and model.inconclusive is not None:  # SPEC 9: not clean
        said = f"{model.target}: note: dynamic checks inconclusive: {model.inconclusive}\n" + said
    if said:
        ET.SubElement(case, "system-out").text = _clean(said)
    return case, outcome


def render(report: Report) -> str:
    """The JUnit document with an XML declaration; attribute order is fixed."""
    threshold = FAIL_ON_RANKS[report.fail_on]
    cases = [_testcase(model, threshold) for model in report.models]
    counts = {
        "tests": str(len(cases)),
        "failures": str(sum(1 for _, outcome in cases if outcome == "failure")),
        "errors": str(sum(1 for _, outcome in cases if outcome == "error")),
    }
    root = ET.Element("testsuites", {"name": "maskcheck", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "maskcheck", **counts, "skipped": "0"})
    suite.extend(case for case, _ in cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
