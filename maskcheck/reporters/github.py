"""GitHub Actions workflow commands: one annotation line per finding.

`::error file=PATH,title=MC102 unmasked-mixing::message Fix: fix`. The
runner turns these into annotations on the pull request; nothing else is
printed, because every stdout line of a step is parsed for commands.
"""

from __future__ import annotations

from maskcheck.finding import Report, Severity

#: Workflow commands know error, warning and notice; info maps to notice.
COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(value: str) -> str:
    """Escape the message part, as the runner's `escapeData` does."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a `key=value` property, where `:` and `,` are separators too."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _command(name: str, file: str, title: str, message: str) -> str:
    return (f"::{name} file={escape_property(file)},title={escape_property(title)}"
            f"::{escape_data(message)}")


def render(report: Report) -> str:
    """The annotation lines, newline-terminated; empty when there is nothing to say."""
    lines: list[str] = []
    for model in report.models:
        if model.error is not None:
            lines.append(_command("error", model.target, "maskcheck load error", model.error.message))
        for f in model.findings:
            lines.append(_command(COMMANDS[f.severity], model.target, f"{f.rule} {f.name}",
                                  f"{f.message} Fix: {f.fix}"))
    return "".join(line + "\n" for line in lines)
