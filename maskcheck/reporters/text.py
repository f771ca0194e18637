"""Human text, ruff-like: one line per finding, the fix under it, a summary."""

from __future__ import annotations

from maskcheck.finding import Report


def render(report: Report) -> str:
    lines: list[str] = []
    for model in report.models:
        if model.error is not None:
            lines.append(f"{model.target}: error: {model.error.message} [{model.error.type}]")
            continue
        for f in model.findings:
            where = "/".join(f.path[1:]) or f.layer or "?"
            lines.append(f"{model.target}:{where} ({f.layer_class}): {f.rule} [{f.severity.value}] "
                         f"{f.name} {f.message}")
            lines.append(f"    fix: {f.fix}")
    s = report.summary()
    plural = "s" if s["models"] != 1 else ""
    counts = f"{s['errors']} error(s), {s['warnings']} warning(s), {s['infos']} info(s)"
    failed = f", {s['failed']} could not be checked" if s["failed"] else ""
    lines.append(f"Checked {s['models']} model{plural}: {counts}{failed}.")
    return "\n".join(lines) + "\n"
