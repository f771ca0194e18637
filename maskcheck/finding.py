"""Findings and reports: plain frozen values, standard library only.

Everything the engines produce and the reporters render lives here, so a
reporter or a test can build a report without importing Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping


class Severity(str, Enum):
    """How bad a finding is; also the values `--fail-on` accepts."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: info 1, warning 2, error 3."""
        return {"info": 1, "warning": 2, "error": 3}[self.value]


#: `--fail-on` values mapped to the lowest rank that fails; `never` fails on nothing.
FAIL_ON_RANKS = {"error": 3, "warning": 2, "info": 1, "never": 4}


def _freeze(evidence: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(sorted((evidence or {}).items())))


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem at one layer. Fields are those of SPEC section 6."""

    rule: str
    name: str
    severity: Severity
    kind: tuple[str, ...]
    layer: str | None
    layer_class: str | None
    path: tuple[str, ...]
    message: str
    fix: str
    evidence: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "kind", tuple(self.kind))
        object.__setattr__(self, "path", tuple(self.path))
        object.__setattr__(self, "evidence", _freeze(self.evidence))

    def sort_key(self) -> tuple:
        return (-self.severity.rank, self.rule, self.path, self.message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "name": self.name,
            "severity": self.severity.value,
            "kind": list(self.kind),
            "layer": self.layer,
            "layer_class": self.layer_class,
            "path": list(self.path),
            "message": self.message,
            "fix": self.fix,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class TargetError:
    """Why a target could not be loaded or checked (SPEC 6 `error`)."""

    type: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}


@dataclass(frozen=True, slots=True)
class ModelReport:
    """The outcome for one target: its findings, or the error that stopped it."""

    target: str
    model: str | None
    findings: tuple[Finding, ...] = ()
    error: TargetError | None = None
    stats: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", tuple(sorted(self.findings, key=Finding.sort_key)))
        object.__setattr__(self, "stats", _freeze(self.stats))

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        return "findings" if self.findings else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "model": self.model,
            "status": self.status,
            "error": self.error.to_dict() if self.error else None,
            "findings": [f.to_dict() for f in self.findings],
            "stats": dict(self.stats),
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Everything one run found, across all its targets, in target order."""

    models: tuple[ModelReport, ...] = ()
    fail_on: str = "warning"

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for m in self.models for f in m.findings)

    @property
    def errors(self) -> tuple[ModelReport, ...]:
        """The targets that could not be loaded or checked."""
        return tuple(m for m in self.models if m.error is not None)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    @property
    def ok(self) -> bool:
        """True when no finding is at or above `fail_on` and no target failed."""
        threshold = FAIL_ON_RANKS[self.fail_on]
        return not self.errors and all(f.severity.rank < threshold for f in self.findings)

    def exit_code(self, fail_on: str | None = None) -> int:
        """0 clean, 1 findings at or above `fail_on`, 2 a target could not be checked."""
        if self.errors:
            return 2
        threshold = FAIL_ON_RANKS[fail_on or self.fail_on]
        return 1 if any(f.severity.rank >= threshold for f in self.findings) else 0

    def summary(self) -> dict[str, int]:
        return {
            "models": len(self.models),
            "errors": self.count(Severity.ERROR),
            "warnings": self.count(Severity.WARNING),
            "infos": self.count(Severity.INFO),
            "failed": len(self.errors),
        }

    def to_dict(self) -> dict[str, Any]:
        from maskcheck import __version__

        return {
            "schema": 1,
            "tool": {"name": "maskcheck", "version": __version__},
            "models": [m.to_dict() for m in self.models],
            "summary": self.summary(),
        }

    def to_json(self) -> str:
        from maskcheck.reporters.json import render

        return render(self)
