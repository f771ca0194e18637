"""Findings and reports: plain frozen values, standard library only.

Everything the engines produce and the reporters render lives here, so a
reporter or a test can build a report without importing Keras. Values never
import a reporter: `to_json()`, `_repr_html_()` and `ModelReport.view` ask the
registry in `maskcheck.renderers` for theirs at call time (see there why that
makes no import cycle).
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping

from maskcheck import renderers
from maskcheck.version import __version__


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
    #: findings that share this one's cause, folded under it (SPEC 5): the same layer,
    #: or a layer nested in it. Empty for a finding that is not a group's primary.
    related: tuple["Finding", ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))
        if self.location is not None:
            object.__setattr__(self, "location", _freeze(self.location))
        object.__setattr__(self, "kind", tuple(self.kind))
        object.__setattr__(self, "path", tuple(self.path))
        object.__setattr__(self, "evidence", _freeze(self.evidence))
        object.__setattr__(self, "related", tuple(self.related))

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
            **({"related": [r.to_dict() for r in self.related]} if self.related else {}),
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
class GraphNode:
    """One layer or operation of a checked model, as the static engine read it."""

    index: int
    path: tuple[str, ...]
    name: str
    class_name: str
    #: "input", "op" (an operation inside a layer's call) or "layer"
    kind: str
    #: what it does with a mask: "creates", "consumes", "propagates", "drops" or "none"
    mask_role: str
    #: the shape of its first output (None for an unknown size); None when it has no output
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """One tensor from the node that makes it to a node that reads it."""

    source: int
    target: int
    #: SPEC 6b padding state: "masked", "unmasked", "mismatched" or "clean"
    padding: str
    shape: tuple[int | None, ...]
    #: "data", or the keyword a mask was passed under (``padding_mask``)
    role: str = "data"


@dataclass(frozen=True, slots=True)
class GraphSummary:
    """What the engines know about a checked model's layer graph, free of any presentation.

    The static engine's reading (nodes in topological order, the tensors between
    them with their padding state) and the probes' per-position |change| at each
    culprit layer. The HTML report decides how to draw it (`ModelReport.view`)."""

    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    #: indices of the nodes whose outputs are the model's outputs
    outputs: tuple[int, ...]
    #: layer path joined by "/" -> one entry per padding side probed:
    #: {"padding", "sample", "valid": [0/1 per position], "change": [float per position]}
    profiles: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "edges", tuple(self.edges))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "profiles", MappingProxyType(dict(self.profiles)))


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
    #: the picture of the layer graph, given ready-made (a report built by hand); read it
    #: as `view`, which draws one from `graph` when none was given
    view: InitVar[Mapping[str, Any] | None] = None
    #: what the engines know about the layer graph (`GraphSummary`); None when no graph
    #: was read. Never part of `to_dict()`.
    graph: GraphSummary | None = field(default=None, compare=False, repr=False)
    _given_view: Mapping[str, Any] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self, view: Mapping[str, Any] | None) -> None:
        object.__setattr__(self, "findings", tuple(sorted(self.findings, key=Finding.sort_key)))
        object.__setattr__(self, "suppressed", tuple(sorted(self.suppressed, key=Finding.sort_key)))
        object.__setattr__(self, "stats", _freeze(self.stats))
        object.__setattr__(self, "_given_view", view)

    @property
    def all_findings(self) -> tuple[Finding, ...]:
        """Every finding, each primary followed by the related ones folded under it."""
        return tuple(f for p in self.findings for f in (p, *p.related))

    @property
    def inconclusive(self) -> str | None:
        """Why the probes could not measure this model (SPEC 9: inconclusive is not clean),
        from ``stats["dynamic"]``; None when they could, or did not run."""
        said = self.stats.get("dynamic")
        prefix = "inconclusive: "
        return said[len(prefix):] if isinstance(said, str) and said.startswith(prefix) else None

    @property
    def status(self) -> str:
        """"error", "findings" or "ok", the JSON schema's three values. A model the probes
        could not measure keeps "ok" there (the static engine found nothing) and says why
        in ``stats["dynamic"]``; every reporter shows that note (`inconclusive`)."""
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
        return renderers.lookup("html-notebook")(Report((self,)))


def _model_view(report: ModelReport) -> Mapping[str, Any] | None:
    """What the HTML report draws for this model: the picture given ready-made, else the
    one the HTML side draws from `graph` (looked up in `maskcheck.renderers` at call
    time); None when neither exists. Plain JSON values: nodes, edges, outputs, nested-
    model groups and the probes' profiles."""
    if report._given_view is not None:
        return report._given_view
    if report.graph is None:
        return None
    return renderers.lookup("graph-view")(report.graph)


# `view` is both the keyword a hand-built report passes its picture under (the InitVar
# above) and what every reader reads; set after the decorator so the dataclass keeps the
# InitVar's default (None) and readers get the property.
ModelReport.view = property(_model_view, doc=_model_view.__doc__)  # type: ignore[assignment]


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
    def all_findings(self) -> tuple[Finding, ...]:
        """Every finding, each primary followed by the related ones folded under it."""
        return tuple(f for m in self.models for f in m.all_findings)

    @property
    def errors(self) -> tuple[ModelReport, ...]:
        """The targets that could not be loaded or checked."""
        return tuple(m for m in self.models if m.error is not None)

    def count(self, severity: Severity) -> int:
        """Primary findings of `severity` (related findings are counted apart)."""
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
            "related": sum(len(f.related) for f in self.findings),
            "failed": len(self.errors),
            "suppressed": sum(1 for m in self.models for f in m.suppressed
                              if f.suppressed_by != "baseline"),
            "baselined": sum(1 for m in self.models for f in m.suppressed
                             if f.suppressed_by == "baseline"),
            "fixed": self.baseline_fixed,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "tool": {"name": "maskcheck", "version": __version__},
            "models": [m.to_dict() for m in self.models],
            "summary": self.summary(),
            **({"unused_ignores": [u.to_dict() for u in self.unused_ignores]}
               if self.unused_ignores is not None else {}),
        }

    def to_json(self) -> str:
        """The `--format json` report (the JSON reporter, looked up at call time)."""
        return renderers.lookup("json")(self)

    def to_text(self) -> str:
        """The text report, as `maskcheck` prints it (without colour)."""
        return renderers.lookup("text")(self)

    def __str__(self) -> str:
        """`print(report)` shows the text report (its last newline left to print)."""
        return self.to_text().rstrip("\n")

    def _repr_html_(self) -> str:
        """Jupyter: `maskcheck.check(model)` in a cell draws the HTML report inline."""
        return renderers.lookup("html-notebook")(self)
