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
    #: SPEC 6: where the culprit layer was built, {"file", "line"}; None when unknown
    location: Mapping[str, Any] | None = None
    #: why the finding does not count: "comment", "per-layer-ignores" or "baseline"
    suppressed_by: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))
        if self.location is not None:
            object.__setattr__(self, "location", _freeze(self.location))
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
            **({"location": dict(self.location)} if self.location is not None else {}),
            **({"suppressed_by": self.suppressed_by} if self.suppressed_by else {}),
        }

    def where(self) -> str:
        """`file:line:` for reporters' line prefixes; empty when the location is unknown."""
        if self.location is None:
            return ""
        return f"{self.location['file']}:{self.location['line']}:"


@dataclass(frozen=True, slots=True)
class UnusedIgnore:
    """A suppression that matched no finding (reported under --warn-unused-ignores).

    `line` is None for a `per-layer-ignores` entry, whose `file` is the pyproject."""

    file: str
    line: int | None
    codes: tuple[str, ...]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "codes": list(self.codes),
                "message": self.message}


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
    #: findings kept out of the exit status by a suppression or the baseline (each says which)
    suppressed: tuple[Finding, ...] = ()
    #: what the HTML report draws (`maskcheck.static.view`): the layer graph with each
    #: edge's padding state and, for probe-confirmed leaks, per-position change profiles.
    #: Plain JSON values; None when no graph was read. Never part of `to_dict()`.
    view: Mapping[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", tuple(sorted(self.findings, key=Finding.sort_key)))
        object.__setattr__(self, "suppressed", tuple(sorted(self.suppressed, key=Finding.sort_key)))
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
            "suppressed": [f.to_dict() for f in self.suppressed],
            "stats": dict(self.stats),
        }

    def _repr_html_(self) -> str:
        """Jupyter: this model's picture (the HTML report of a one-model run)."""
        from maskcheck.reporters.html import notebook_frame

        return notebook_frame(Report((self,)))


@dataclass(frozen=True, slots=True)
class Report:
    """Everything one run found, across all its targets, in target order."""

    models: tuple[ModelReport, ...] = ()
    fail_on: str = "warning"
    #: suppressions that matched nothing; None unless --warn-unused-ignores asked
    unused_ignores: tuple[UnusedIgnore, ...] | None = None
    #: baseline entries no finding matched any more (fixed since the baseline was written)
    baseline_fixed: int = 0
    #: the settings the run used (mode, padding, seed, ...), shown in the HTML report's
    #: header; None when the report was built by hand. Never part of `to_dict()`.
    settings: Mapping[str, Any] | None = field(default=None, compare=False)

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
        return self.exit_code() == 0

    def exit_code(self, fail_on: str | None = None) -> int:
        """0 clean, 1 findings at or above `fail_on`, 2 a target could not be checked.

        Suppressed and baselined findings never count; unused suppressions count as
        warnings (like mypy's --warn-unused-ignores)."""
        if self.errors:
            return 2
        threshold = FAIL_ON_RANKS[fail_on or self.fail_on]
        if self.unused_ignores and Severity.WARNING.rank >= threshold:
            return 1
        return 1 if any(f.severity.rank >= threshold for f in self.findings) else 0

    def summary(self) -> dict[str, int]:
        return {
            "models": len(self.models),
            "errors": self.count(Severity.ERROR),
            "warnings": self.count(Severity.WARNING),
            "infos": self.count(Severity.INFO),
            "failed": len(self.errors),
            "suppressed": sum(1 for m in self.models for f in m.suppressed
                              if f.suppressed_by != "baseline"),
            "baselined": sum(1 for m in self.models for f in m.suppressed
                             if f.suppressed_by == "baseline"),
            "fixed": self.baseline_fixed,
        }

    def to_dict(self) -> dict[str, Any]:
        from maskcheck import __version__

        return {
            "schema": 1,
            "tool": {"name": "maskcheck", "version": __version__},
            "models": [m.to_dict() for m in self.models],
            "summary": self.summary(),
            **({"unused_ignores": [u.to_dict() for u in self.unused_ignores]}
               if self.unused_ignores is not None else {}),
        }

    def to_json(self) -> str:
        from maskcheck.reporters.json import render

        return render(self)

    def _repr_html_(self) -> str:
        """Jupyter: `maskcheck.check(model)` in a cell draws the HTML report inline."""
        from maskcheck.reporters.html import notebook_frame

        return notebook_frame(self)
