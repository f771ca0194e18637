"""GitHub Actions workflow commands: one annotation line per finding.

`::error file=PATH,title=MC102 unmasked-mixing::message Fix: fix`. The
runner turns these into annotations on the pull request; nothing else is
printed, because every stdout line of a step is parsed for commands.

A finding whose layer was built at a known source line is annotated there
(`file=models/tagger.py,line=14`) instead of on the target. Suppressed and
baselined findings get no annotation; unused suppressions are warnings, and so is
a model whose probes were inconclusive (SPEC 9: not clean).
Findings folded under a primary (same cause) get no annotation of their own:
the primary's message ends by naming them.
"""

from __future__ import annotations

from maskcheck.finding import Finding, Report, Severity

#: Workflow commands know error, warning and notice; info maps to notice.
COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(value: str) -> str:
    """Escape the message part, as the runner's `escapeData` does."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a `key=value` property, where `:` and `,` are separators too."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _command(name: str, file: str, title: str, message: str, line: int | None = None) -> str:
    at = f",line={line}" if line is not None else ""
    return (f"::{name} file={escape_property(file)}{at},title={escape_property(title)}"
            f"::{escape_data(message)}")


def related_sentence(finding: Finding) -> str:
    """` Same cause: MC101 at 'conv', MC301 at 'bi/forward_lstm'.` (empty without related)."""
    if not finding.related:
        return ""
    places = ", ".join(f"{r.rule} at {'/'.join(r.path[1:]) or r.layer or 'the model'!r}"
                       for r in finding.related)
    return f" Same cause: {places}."


def render(report: Report) -> str:
    """The annotation lines, newline-terminated; empty when there is nothing to say."""
    lines: list[str] = []
    for model in report.models:
        if model.error is not None:
            lines.append(_command("error", model.target, "maskcheck load error", model.error.message))
        elif model.inconclusive is not None:  # SPEC 9: inconclusive is not clean
            lines.append(_command("warning", model.target, "maskcheck dynamic checks inconclusive",
                                  model.inconclusive))
        for f in model.findings:
            file, line = ((f.location["file"], int(f.location["line"])) if f.location is not None
                          else (model.target, None))
            lines.append(_command(COMMANDS[f.severity], file, f"{f.rule} {f.name}",
                                  f"{f.message} Fix: {f.fix}{related_sentence(f)}", line))
    for unused in report.unused_ignores or ():
        lines.append(_command("warning", unused.file, "maskcheck unused-ignore", unused.message,
                              unused.line))
    return "".join(line + "\n" for line in lines)
