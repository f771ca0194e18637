"""Human text, ruff-like: one line per finding, the fix under it, a summary.

A finding whose layer was built at a known source line starts with
`file:line: ` (as compilers and ruff do, so editors can jump there).
Suppressed and baselined findings are only counted in the summary; unused
suppressions get one line each just before it.
"""

from __future__ import annotations

from maskcheck.finding import Finding, ModelReport, Report, UnusedIgnore


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


def finding_line(model: ModelReport, finding: Finding) -> str:
    """The first line of a finding: where (source line, target, layer path), code, message."""
    where = "/".join(finding.path[1:]) or finding.layer or "?"
    prefix = finding.where()
    return (f"{prefix + ' ' if prefix else ''}{model.target}:{where} ({finding.layer_class}): "
            f"{finding.rule} [{finding.severity.value}] {finding.name} {finding.message}")


def unused_ignore_line(unused: UnusedIgnore) -> str:
    """`FILE:LINE: unused suppression: MESSAGE`; no `LINE` for a pyproject entry."""
    where = unused.file if unused.line is None else f"{unused.file}:{unused.line}"
    return f"{where}: unused suppression: {unused.message}"


def summary_line(report: Report) -> str:
    s = report.summary()
    plural = "s" if s["models"] != 1 else ""
    counts = f"{s['errors']} error(s), {s['warnings']} warning(s), {s['infos']} info(s)"
    extra = "".join(f", {s[key]} {label}" for key, label in (
        ("suppressed", "suppressed"), ("baselined", "baselined"),
        ("fixed", "fixed since the baseline")) if s.get(key))
    failed = f", {s['failed']} could not be checked" if s["failed"] else ""
    return f"Checked {s['models']} model{plural}: {counts}{extra}{failed}."


def render(report: Report) -> str:
    lines: list[str] = []
    for model in report.models:
        if model.error is not None:
            lines.append(f"{model.target}: error: {model.error.message} [{model.error.type}]")
            # what the static engine found before the check stopped is still listed
        elif model.stats.get("dynamic"):  # probes could not run; the static result stands alone
            lines.append(f"{model.target}: note: dynamic checks {model.stats['dynamic']}")
        if model.error is None and model.stats.get("loss"):  # the loss probes could not run
            lines.append(f"{model.target}: note: loss checks {model.stats['loss']}")
        for f in model.findings:
            lines.append(finding_line(model, f))
            lines.append(f"    fix: {f.fix}")
            if "dynamic" in f.kind:
                lines.append(f"    evidence: {describe_evidence(f.evidence)}")
    lines.extend(unused_ignore_line(u) for u in report.unused_ignores or ())
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"
