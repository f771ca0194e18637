"""Human text, ruff-like: one line per finding, the fix under it, a summary."""

from __future__ import annotations

from maskcheck.finding import Report


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


def render(report: Report) -> str:
    lines: list[str] = []
    for model in report.models:
        if model.error is not None:
            lines.append(f"{model.target}: error: {model.error.message} [{model.error.type}]")
            # what the static engine found before the check stopped is still listed
        elif model.stats.get("dynamic"):  # probes could not run; the static result stands alone
            lines.append(f"{model.target}: note: dynamic checks {model.stats['dynamic']}")
        for f in model.findings:
            where = "/".join(f.path[1:]) or f.layer or "?"
            lines.append(f"{model.target}:{where} ({f.layer_class}): {f.rule} [{f.severity.value}] "
                         f"{f.name} {f.message}")
            lines.append(f"    fix: {f.fix}")
            if "dynamic" in f.kind:
                lines.append(f"    evidence: {describe_evidence(f.evidence)}")
    s = report.summary()
    plural = "s" if s["models"] != 1 else ""
    counts = f"{s['errors']} error(s), {s['warnings']} warning(s), {s['infos']} info(s)"
    failed = f", {s['failed']} could not be checked" if s["failed"] else ""
    lines.append(f"Checked {s['models']} model{plural}: {counts}{failed}.")
    return "\n".join(lines) + "\n"
