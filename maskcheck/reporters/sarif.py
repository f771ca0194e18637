"""SARIF 2.1.0 for GitHub code scanning and other SARIF viewers.

Every rule code is listed in `tool.driver.rules` (so a viewer can explain a
code even when this run did not raise it); each finding becomes a `result`
pointing at the model file and, logically, at the layer path. Targets that
could not be loaded are tool execution notifications, not results: they are
failures of the run, not findings about the model.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import quote

from maskcheck import __version__
from maskcheck.finding import Finding, ModelReport, Report, Severity
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


def _rule_descriptor(rule: Any) -> dict[str, Any]:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary()},
        "fullDescription": {"text": rule.explain().rstrip("\n")},
        "help": {"text": rule.fix},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {"tags": ["maskcheck", rule.engine]},
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


def _physical_location(target: str) -> dict[str, Any]:
    # A model file has no lines; GitHub still needs a region to place the
    # alert, so it goes on line 1 of the file.
    return {"artifactLocation": {"uri": artifact_uri(target)}, "region": {"startLine": 1}}


def _fingerprint(model: ModelReport, finding: Finding) -> str:
    # Stable across runs (no message text, which may carry probe numbers),
    # and it spares upload-sarif from hashing "lines" of a binary model file.
    key = "\x1f".join((finding.rule, model.target, *finding.path))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _result(model: ModelReport, finding: Finding, rule_index: int) -> dict[str, Any]:
    qualified = "/".join(finding.path) or finding.layer or model.model or model.target
    return {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": LEVELS[finding.severity],
        "message": {"text": f"{finding.message} Fix: {finding.fix}"},
        "locations": [{
            "physicalLocation": _physical_location(model.target),
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


def _notification(model: ModelReport) -> dict[str, Any]:
    assert model.error is not None
    return {
        "level": "error",
        "message": {"text": f"{model.target}: {model.error.message}"},
        "exception": {"kind": model.error.type, "message": model.error.message},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": artifact_uri(model.target)}}}],
    }


def to_sarif(report: Report) -> dict[str, Any]:
    """The SARIF log as plain JSON data (for callers that post-process it)."""
    rules = [_rule_descriptor(rule) for rule in ALL_RULES]
    index = {rule.code: i for i, rule in enumerate(ALL_RULES)}
    results: list[dict[str, Any]] = []
    for model in report.models:
        for finding in model.findings:
            if finding.rule not in index:
                index[finding.rule] = len(rules)
                rules.append(_ad_hoc_descriptor(finding))
            results.append(_result(model, finding, index[finding.rule]))
    failed = report.errors
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
            "invocations": [{
                "executionSuccessful": not failed,
                "toolExecutionNotifications": [_notification(m) for m in failed],
            }],
            "results": results,
        }],
    }


def render(report: Report) -> str:
    """SARIF 2.1.0 JSON; key order is fixed, so equal reports give equal bytes."""
    return json.dumps(to_sarif(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
