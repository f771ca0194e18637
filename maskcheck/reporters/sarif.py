"""SARIF 2.1.0 for GitHub code scanning and other SARIF viewers.

Every rule code is listed in `tool.driver.rules` (so a viewer can explain a
code even when this run did not raise it); each finding becomes a `result`
pointing at the model file and, logically, at the layer path. Targets that
could not be loaded are tool execution notifications, not results: they are
failures of the run, not findings about the model. So is a model whose probes
were inconclusive (SPEC 9), at level "warning": its result is the static one alone.

A finding whose layer was built at a known source line points at that line
of that file, relative to the repository root (the nearest folder above the
working folder with a `.git`), as code scanning expects. Suppressed and
baselined findings are results too, with SARIF `suppressions`, so code
scanning shows them as dismissed; unused suppressions are tool configuration
notifications.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from maskcheck.version import __version__
from maskcheck.finding import Finding, ModelReport, Report, Severity, UnusedIgnore
from maskcheck.rules import ALL_RULES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://pypi.org/project/maskcheck/"

#: SARIF has no "info" level; "note" is its lowest result level.
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def artifact_uri(target: str) -> str:
    """The target as a URI reference: relative paths stay relative.

    Backslashes become slashes and unsafe characters are percent-encoded;
    `:` is encoded too, so a `module:factory` target is not read as a URI
    scheme. Absolute paths become `file://` URIs.
    """
    path = target.replace("\\", "/")
    if _WINDOWS_DRIVE.match(target):
        return "file:///" + path[:2] + quote(path[2:], safe="/")
    if path.startswith("/"):
        return "file://" + quote(path, safe="/")
    return quote(path, safe="/")


def repository_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above `start` (the working folder) holding `.git`.

    Falls back to `start` itself when no repository encloses it."""
    here = Path(os.path.abspath(start if start is not None else os.getcwd()))
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return here


def source_uri(file: str, root: Path | None = None) -> str:
    """A path relative to the working folder as a URI relative to the repository root.

    A file outside the repository keeps its absolute path (a `file://` URI)."""
    cwd = os.getcwd()
    root = root if root is not None else repository_root(cwd)
    path = os.path.abspath(os.path.join(cwd, file))
    try:
        path = Path(path).relative_to(root).as_posix()
    except ValueError:
        pass
    return artifact_uri(path)


def _rule_descriptor(rule: Any) -> dict[str, Any]:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary()},
        "fullDescription": {"text": rule.explain().rstrip("\n")},
        "help": {"text": rule.fix_explained or rule.fix},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {"tags": ["maskcheck", *rule.engines()]},
    }


def _ad_hoc_descriptor(finding: Finding) -> dict[str, Any]:
    """A descriptor for a code missing from ALL_RULES, so ruleIndex stays valid."""
    return {
        "id": finding.rule,
        "name": finding.name,
        "shortDescription": {"text": finding.name},
        "fullDescription": {"text": finding.name},
        "help": {"text": finding.fix},
        "defaultConfiguration": {"level": LEVELS[finding.severity]},
    }


def _physical_location(target: str, finding: Finding, root: Path) -> dict[str, Any]:
    if finding.location is not None:
        return {"artifactLocation": {"uri": source_uri(finding.location["file"], root)},
                "region": {"startLine": int(finding.location["line"])}}
    # A model file has no lines; GitHub still needs a region to place the
    # alert, so it goes on line 1 of the file.
    return {"artifactLocation": {"uri": artifact_uri(target)}, "region": {"startLine": 1}}


#: How each kind of suppression is told in SARIF (`suppressions` of a result).
SUPPRESSIONS = {
    "comment": {"kind": "inSource"},
    "per-layer-ignores": {"kind": "external", "justification": "per-layer-ignores in pyproject.toml"},
    "baseline": {"kind": "external", "justification": "maskcheck baseline"},
}


def _fingerprint(model: ModelReport, finding: Finding) -> str:
    # Stable across runs (no message text, which may carry probe numbers),
    # and it spares upload-sarif from hashing "lines" of a binary model file.
    key = "\x1f".join((finding.rule, model.target, *finding.path))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _result(model: ModelReport, finding: Finding, rule_index: int, root: Path,
            suppressed: bool = False) -> dict[str, Any]:
    qualified = "/".join(finding.path) or finding.layer or model.model or model.target
    result = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": LEVELS[finding.severity],
        "message": {"text": f"{finding.message} Fix: {finding.fix}"},
        "locations": [{
            "physicalLocation": _physical_location(model.target, finding, root),
            "logicalLocations": [{
                "name": finding.layer or qualified,
                "fullyQualifiedName": qualified,
                "kind": "module",
            }],
        }],
        "partialFingerprints": {"maskcheckFinding/v1": _fingerprint(model, finding)},
        "properties": {
            "kind": list(finding.kind),
            "layer": finding.layer,
            "layerClass": finding.layer_class,
            "evidence": dict(finding.evidence),
        },
    }
    if finding.related:  # the findings of the same cause, each where it was found
        result["relatedLocations"] = [_related_location(model, r, number, root)
                                      for number, r in enumerate(finding.related, start=1)]
        result["properties"]["related"] = [
            {"ruleId": r.rule, "level": LEVELS[r.severity], "layer": r.layer,
             "fullyQualifiedName": "/".join(r.path), "kind": list(r.kind)}
            for r in finding.related]
    if suppressed:
        result["suppressions"] = [dict(SUPPRESSIONS.get(finding.suppressed_by, {"kind": "external"}))]
    return result


def _related_location(model: ModelReport, related: Finding, number: int,
                      root: Path) -> dict[str, Any]:
    """SARIF `relatedLocations` entry: where a finding of the same cause was found."""
    qualified = "/".join(related.path) or related.layer or model.model or model.target
    return {
        "id": number,
        "physicalLocation": _physical_location(model.target, related, root),
        "logicalLocations": [{"name": related.layer or qualified,
                              "fullyQualifiedName": qualified, "kind": "module"}],
        "message": {"text": f"{related.rule} {related.name} ({LEVELS[related.severity]}): "
                            f"{related.message}"},
    }


def _notification(model: ModelReport) -> dict[str, Any]:
    assert model.error is not None
    return {
        "level": "error",
        "message": {"text": f"{model.target}: {model.error.message}"},
        "exception": {"kind": model.error.type, "message": model.error.message},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": artifact_uri(model.target)}}}],
    }


def _inconclusive(model: ModelReport) -> dict[str, Any]:
    """SPEC 9: the probes could not measure the model; its result is the static one alone."""
    return {
        "level": "warning",
        "message": {"text": f"{model.target}: dynamic checks inconclusive: {model.inconclusive}"},
        "descriptor": {"id": "inconclusive"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": artifact_uri(model.target)}}}],
    }


def _unused_ignore(unused: UnusedIgnore, root: Path) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": source_uri(unused.file, root)}}
    if unused.line is not None:
        physical["region"] = {"startLine": int(unused.line)}
    return {
        "level": "warning",
        "message": {"text": unused.message},
        "descriptor": {"id": "unused-ignore"},
        "locations": [{"physicalLocation": physical}],
    }


def to_sarif(report: Report) -> dict[str, Any]:
    """The SARIF log as plain JSON data (for callers that post-process it)."""
    rules = [_rule_descriptor(rule) for rule in ALL_RULES]
    index = {rule.code: i for i, rule in enumerate(ALL_RULES)}
    root = repository_root()
    results: list[dict[str, Any]] = []
    for model in report.models:
        for suppressed, finding in [(False, f) for f in model.findings] + [
                (True, f) for f in model.suppressed]:
            if finding.rule not in index:
                index[finding.rule] = len(rules)
                rules.append(_ad_hoc_descriptor(finding))
            results.append(_result(model, finding, index[finding.rule], root, suppressed))
    failed = report.errors
    invocation: dict[str, Any] = {
        "executionSuccessful": not failed,
        "toolExecutionNotifications": [_notification(m) for m in failed] + [
            _inconclusive(m) for m in report.models if m.error is None and m.inconclusive],
    }
    if report.unused_ignores:
        invocation["toolConfigurationNotifications"] = [
            _unused_ignore(u, root) for u in report.unused_ignores]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "maskcheck",
                "version": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }},
            "invocations": [invocation],
            "results": results,
        }],
    }


def render(report: Report) -> str:
    """SARIF 2.1.0 JSON; key order is fixed, so equal reports give equal bytes."""
    return json.dumps(to_sarif(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
