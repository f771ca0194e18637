"""Human text, ruff-like: one line per finding, the fix under it, a summary.

A finding whose layer was built at a known source line starts with
`file:line: ` (as compilers and ruff do, so editors can jump there).
Suppressed and baselined findings are only counted in the summary; unused
suppressions get one line each just before it.

Read top-down, like the model: within a target, findings follow the layer
graph (the node whose path is the finding's, else its nearest enclosing node,
else the first node inside it), ties by severity then rule code. Findings
placed nowhere in the graph (a loss or output-level finding names the model
alone) come after the layers, worst first; so does every finding of a report
that carries no graph. Findings that share a cause are folded under their
primary as `related:` lines (their own fix and evidence only under
--verbose: the primary's fix addresses the cause). A padding assumption
(`evidence["assumed"]`) is said once per target, in a `note:` line before its
findings, and taken off each message (the JSON keeps every message whole);
where not every finding of the target rests on it, those that do end with
`(assumes input 'NAME')`. Under --verbose (`report.settings["verbose"]`) a
`data:` line says what the user's data showed (`stats["data"]`). A model the
probes could not measure (SPEC 9) gets a `note: dynamic checks inconclusive:`
line and is counted as inconclusive in the summary: it is not clean.

`render(report, color=True)` adds ANSI colour (severity words, rule codes,
paths), for a terminal; the default is plain text, as in files and goldens.
"""

from __future__ import annotations

from typing import Any, Mapping

from maskcheck.assumptions import assumed_clause, assumption_note
from maskcheck.finding import Finding, ModelReport, Report, UnusedIgnore


class _Paint:
    """ANSI SGR codes when on, the text unchanged when off (stdlib only, no click)."""

    SEVERITY = {"error": "1;31", "warning": "1;33", "info": "1;36"}

    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on and text else text

    def bold(self, text: str) -> str:
        return self(text, "1")

    def dim(self, text: str) -> str:
        return self(text, "2")

    def severity(self, severity: str, text: str | None = None) -> str:
        return self(text if text is not None else severity, self.SEVERITY.get(severity, "1"))


_PLAIN = _Paint(False)


def describe_evidence(evidence) -> str:
    """The probe's numbers in one phrase: where, on which side, how much."""
    parts = []
    if "padding" in evidence:
        parts.append(f"{evidence['padding']}-padding")
    where = [f"{key} {evidence[key]}" for key in ("sample", "position") if evidence.get(key) is not None]
    if evidence.get("output") is not None:
        where.insert(0, f"output {evidence['output']!r}")
    if where:
        parts.append(", ".join(where))
    if evidence.get("max_abs_diff") is not None:
        parts.append(f"max |diff| {evidence['max_abs_diff']:.3g}")
    return "probe " + "; ".join(parts) if parts else "probe"


def _layer_where(finding: Finding) -> str:
    return "/".join(finding.path[1:]) or finding.layer or "?"


def _body(finding: Finding, message: str, paint: _Paint) -> str:
    """`(Class): CODE [severity] name message`: what a finding line says after its place."""
    return (f"{paint.dim('(' + str(finding.layer_class) + ')')}: {paint.bold(finding.rule)} "
            f"[{paint.severity(finding.severity.value)}] {finding.name} {message}")


def finding_line(model: ModelReport, finding: Finding, message: str | None = None,
                 paint: _Paint = _PLAIN) -> str:
    """The first line of a finding: where (source line, target, layer path), code, message."""
    prefix = finding.where()
    place = paint.bold(f"{prefix + ' ' if prefix else ''}{model.target}:{_layer_where(finding)}")
    return f"{place} {_body(finding, finding.message if message is None else message, paint)}"


def related_line(primary: Finding, related: Finding, message: str | None = None,
                 paint: _Paint = _PLAIN) -> str:
    """`    related: [file:line: ]path (Class): CODE [severity] name message`, indented
    under its primary; the source line only where it differs from the primary's."""
    prefix = related.where()
    prefix = prefix + " " if prefix and prefix != primary.where() else ""
    place = paint.bold(f"{prefix}{_layer_where(related)}")
    return (f"    {paint.dim('related:')} {place} "
            f"{_body(related, related.message if message is None else message, paint)}")


def unused_ignore_line(unused: UnusedIgnore) -> str:
    """`FILE:LINE: unused suppression: MESSAGE`; no `LINE` for a pyproject entry."""
    where = unused.file if unused.line is None else f"{unused.file}:{unused.line}"
    return f"{where}: unused suppression: {unused.message}"


def counts_phrase(report: Report, paint: _Paint = _PLAIN) -> str:
    """`1 error(s), 1 warning(s), 0 info(s) (+1 related), 2 suppressed, ...`: the counts
    of the summary line (primary findings by severity; related ones apart)."""
    s = report.summary()
    counts = ", ".join(paint.severity(sev, f"{s[key]} {sev}(s)") if s[key] else f"{s[key]} {sev}(s)"
                       for key, sev in (("errors", "error"), ("warnings", "warning"), ("infos", "info")))
    related = f" (+{s['related']} related)" if s.get("related") else ""
    extra = "".join(f", {s[key]} {label}" for key, label in (
        ("suppressed", "suppressed"), ("baselined", "baselined"),
        ("fixed", "fixed since the baseline")) if s.get(key))
    failed = f", {s['failed']} could not be checked" if s["failed"] else ""
    unsure = sum(1 for m in report.models if m.error is None and m.inconclusive is not None)
    inconclusive = f", {unsure} inconclusive" if unsure else ""  # SPEC 9: not clean
    return f"{counts}{related}{extra}{failed}{inconclusive}"


def summary_line(report: Report, paint: _Paint = _PLAIN) -> str:
    s = report.summary()
    plural = "s" if s["models"] != 1 else ""
    return f"Checked {s['models']} model{plural}: {counts_phrase(report, paint)}."


def _node_paths(model: ModelReport) -> list[tuple[str, ...]]:
    """The paths of the model's graph nodes in graph order: from `graph`, else from a
    picture given ready-made (a hand-built report); empty when neither exists."""
    if model.graph is not None:
        return [node.path for node in sorted(model.graph.nodes, key=lambda n: n.index)]
    view = model.view
    nodes = view.get("nodes") if isinstance(view, Mapping) else None
    return [tuple(str(n["layer"]).split("/")) for n in nodes or () if isinstance(n, Mapping)
            and n.get("layer")]


def _graph_position(finding: Finding, positions: Mapping[tuple[str, ...], int]) -> int | None:
    """Where the finding sits in the graph: its own node, else its nearest enclosing
    node, else the first node inside it (a nested model); None for the model alone."""
    path = finding.path
    for end in range(len(path), 1, -1):  # never the model path alone (loss, outputs)
        if path[:end] in positions:
            return positions[path[:end]]
    inside = [i for p, i in positions.items() if len(path) > 1 and p[:len(path)] == path]
    return min(inside) if inside else None


def ordered(model: ModelReport) -> tuple[Finding, ...]:
    """The model's findings top-down in its graph, unplaced ones after, worst first."""
    positions: dict[tuple[str, ...], int] = {}
    for index, path in enumerate(_node_paths(model)):
        positions.setdefault(path, index)

    def key(item: tuple[int, Finding]) -> tuple:
        order, finding = item
        at = _graph_position(finding, positions)
        return (at is None, at if at is not None else 0, -finding.severity.rank, finding.rule, order)

    return tuple(f for _, f in sorted(enumerate(model.findings), key=key))


def _assumptions(findings: tuple[Finding, ...]) -> list[dict[str, str]]:
    """The distinct `evidence["assumed"]` of these findings (related ones too), in order."""
    seen: list[dict[str, str]] = []
    for finding in (g for f in findings for g in (f, *f.related)):
        assumed = finding.evidence.get("assumed")
        if isinstance(assumed, Mapping) and assumed and dict(assumed) not in seen:
            seen.append(dict(assumed))
    return seen


def _message(finding: Finding, marked: bool) -> str:
    """The message without its assumption clause (said once per model instead); `marked`
    ends it with which inputs it assumes, for a note not every finding shares."""
    assumed = finding.evidence.get("assumed")
    if not isinstance(assumed, Mapping) or not assumed:
        return finding.message
    message = finding.message.replace(assumed_clause(assumed), "")
    if marked:
        message += f" (assumes input {', '.join(repr(name) for name in assumed)})"
    return message


def _plain_value(value: Any, depth: int = 0) -> str:
    """A JSON value in words: `key value, key value` for a mapping (nested ones in
    parentheses), `[a, b]` for a list, `none`, `true`/`false`."""
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k} {_plain_value(v, depth + 1)}" for k, v in value.items())
        return f"({inner})" if depth > 1 else inner
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_plain_value(v, depth + 2) for v in value) + "]"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".6g")
    return str(value)


def data_line(model: ModelReport) -> str | None:
    """`target: data: key value; key value` from `stats["data"]` (what --data showed)."""
    data = model.stats.get("data")
    if not isinstance(data, Mapping) or not data:
        return None
    return f"{model.target}: data: " + "; ".join(f"{k} {_plain_value(v, 1)}" for k, v in data.items())


def _model_lines(model: ModelReport, verbose: bool, paint: _Paint) -> list[str]:
    target = paint.bold(model.target)
    note = paint.bold("note:")
    lines: list[str] = []
    if model.error is not None:
        lines.append(f"{target}: {paint.severity('error', 'error:')} {model.error.message} "
                     f"[{model.error.type}]")
        # what the static engine found before the check stopped is still listed
    elif model.stats.get("dynamic"):  # probes could not run; the static result stands alone
        lines.append(f"{target}: {note} dynamic checks {model.stats['dynamic']}")
    if model.error is None and model.stats.get("loss"):  # the loss probes could not run
        lines.append(f"{target}: {note} loss checks {model.stats['loss']}")
    data = data_line(model) if verbose else None
    if data is not None:
        lines.append(paint.dim(data))
    findings = ordered(model)
    everyone = [g for f in findings for g in (f, *f.related)]
    assumptions = _assumptions(findings)
    shared = (len(assumptions) == 1 and
              all(dict(f.evidence.get("assumed") or {}) == assumptions[0] for f in everyone))
    for assumed in assumptions:
        subject = "the findings below" if shared else "findings marked below"
        lines.append(f"{target}: {note} {assumption_note(assumed, subject)}")
    for f in findings:
        lines.append(finding_line(model, f, _message(f, not shared), paint))
        lines.append(f"    {paint.dim('fix:')} {f.fix}")
        if "dynamic" in f.kind:
            lines.append(f"    {paint.dim('evidence:')} {describe_evidence(f.evidence)}")
        for r in f.related:
            lines.append(related_line(f, r, _message(r, not shared), paint))
            if verbose:  # a related finding's own fix and numbers, for who wants them all
                lines.append(f"        {paint.dim('fix:')} {r.fix}")
                if "dynamic" in r.kind:
                    lines.append(f"        {paint.dim('evidence:')} {describe_evidence(r.evidence)}")
    return lines


def render(report: Report, *, color: bool = False, verbose: bool | None = None) -> str:
    """The text report.

    Args:
        report: what to show.
        color: add ANSI colour (for a terminal; the CLI decides, see `--color`).
        verbose: also show what the data said and related findings' fixes; None reads
            `report.settings["verbose"]` (False for a report built by hand).
    """
    paint = _Paint(color)
    if verbose is None:
        verbose = bool((report.settings or {}).get("verbose"))
    lines: list[str] = []
    for model in report.models:
        lines.extend(_model_lines(model, verbose, paint))
    lines.extend(unused_ignore_line(u) for u in report.unused_ignores or ())
    lines.append(summary_line(report, paint))
    return "\n".join(lines) + "\n"
