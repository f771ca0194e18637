"""Baselines (SPEC 5): record today's findings, then fail only on new ones.

A baseline entry is (rule, target, layer path): no line numbers and no
measured values, so moving code or a probe's numbers changing keeps it valid,
and the file is sorted with one entry per line so it diffs well. Entries are
a multiset: two MC102 findings at one layer need two entries.

The file carries two numbers: `"maskcheck_baseline"` is the baseline FORMAT
(the shape of the file and the meaning of its keys) and `"version"` the
maskcheck that wrote it. Only the format decides whether a file is read: a
baseline written by an older (or newer) maskcheck of the same format is
applied, so upgrading maskcheck keeps a team's baseline; a finding whose rule
or layer changed between versions is simply new, and an entry no longer
matched is counted as fixed. A different format, or a file without one, is
refused in one line saying how to regenerate it. `version` is informational
only (and may be absent). Raise FORMAT only when old files would be misread.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

from maskcheck.finding import Finding, Report
from maskcheck.version import __version__

#: The baseline file format ("maskcheck_baseline"), independent of the tool version.
FORMAT = 1

Key = tuple[str, str, tuple[str, ...]]


class BaselineError(ValueError):
    """The baseline file cannot be read, is corrupt, or has another baseline format."""


MODEL_FILES = (".keras", ".h5")


def target_key(target: str) -> str:
    """A target as the baseline stores it: model files relative to the working folder in
    slashes (so `./models/x.keras`, `models\\x.keras` and its absolute path are one
    target), factory references as written."""
    if target.lower().endswith(MODEL_FILES):
        from maskcheck.adoption.locations import display_path

        return display_path(target)
    return target


def finding_key(target: str, finding: Finding) -> Key:
    """The baseline key of one finding of `target`'s model: (rule, target, layer path)."""
    return (finding.rule, target_key(target), tuple(finding.path))


def render_baseline(report: Report) -> str:
    keys = sorted(finding_key(m.target, f) for m in report.models for f in m.findings)
    lines = [json.dumps({"rule": rule, "target": target, "path": list(path)}, ensure_ascii=False)
             for rule, target, path in keys]
    body = ",\n    ".join(lines)
    return ("{\n"
            f'  "maskcheck_baseline": {FORMAT},\n'
            f'  "version": {json.dumps(__version__)},\n'
            f'  "findings": [{chr(10) + "    " + body + chr(10) + "  " if lines else ""}]\n'
            "}\n")


def write_baseline(path: str, report: Report) -> None:
    try:
        Path(path).write_text(render_baseline(report), encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"--write-baseline {path}: cannot write: {exc.strerror or exc}") from None


def read_baseline(path: str) -> Counter[Key]:
    """The baseline's entries, counted.

    Raises:
        BaselineError: missing, unreadable or corrupt file, or another baseline format
            (the maskcheck version that wrote it does not matter).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"--baseline {path}: no such file (write one with --write-baseline {path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"--baseline {path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"--baseline {path}: not a maskcheck baseline (invalid JSON at line "
                            f"{exc.lineno})") from None
    _check_format(path, data)
    entries = data.get("findings")
    counted: Counter[Key] = Counter()
    if not isinstance(entries, list):
        raise BaselineError(f"--baseline {path}: corrupt baseline (\"findings\" is not a list)")
    for number, entry in enumerate(entries, start=1):
        if not (isinstance(entry, dict) and isinstance(entry.get("rule"), str)
                and isinstance(entry.get("target"), str) and isinstance(entry.get("path"), list)
                and all(isinstance(p, str) for p in entry["path"])):
            raise BaselineError(f"--baseline {path}: corrupt baseline (entry {number} needs rule, "
                                "target and path)")
        counted[(entry["rule"], target_key(entry["target"]), tuple(entry["path"]))] += 1
    return counted


def _check_format(path: str, data: object) -> None:
    """Refuse a file that is not a baseline, or one of another format, in one line."""
    regenerate = f"regenerate it with --write-baseline {path}"
    if not isinstance(data, dict) or "maskcheck_baseline" not in data:
        raise BaselineError(f"--baseline {path}: not a maskcheck baseline (no \"maskcheck_baseline\" "
                            f"format key); {regenerate}")
    found = data["maskcheck_baseline"]
    if found == FORMAT and not isinstance(found, bool):
        return
    wrote = data.get("version")
    by = f" (written by maskcheck {wrote})" if isinstance(wrote, str) and wrote else ""
    if isinstance(found, int) and not isinstance(found, bool) and found > FORMAT:
        raise BaselineError(f"--baseline {path}: baseline format {found}{by} is newer than this "
                            f"maskcheck {__version__} reads (format {FORMAT}); upgrade maskcheck "
                            f"or {regenerate}")
    raise BaselineError(f"--baseline {path}: baseline format {json.dumps(found)}{by}, this maskcheck "
                        f"{__version__} reads format {FORMAT}; {regenerate}")


def apply_baseline(report: Report, baseline: Counter[Key]) -> Report:
    """Findings in the baseline move to `suppressed` (suppressed_by "baseline").

    The baseline keys on the primary finding: a baselined primary takes its related
    findings with it, and entries for related findings (a baseline written before they
    were grouped) are used up, never counted as fixed.

    Entries left over for a target this run checked are counted as fixed; entries of
    targets not checked now (a run on part of the tree) are not. A finding suppressed
    by a comment or per-layer-ignores still uses up its entry: it is not fixed."""
    left = Counter(baseline)

    def use(target: str, finding: Finding) -> bool:
        key = finding_key(target, finding)
        if left[key] > 0:
            left[key] -= 1
            return True
        return False

    for model in report.models:
        for finding in model.suppressed:
            use(model.target, finding)
            for related in finding.related:
                use(model.target, related)
    models = []
    for model in report.models:
        kept, baselined = [], []
        for finding in model.findings:
            primary = use(model.target, finding)
            for related in finding.related:  # an older baseline may list them: not fixed
                use(model.target, related)
            if primary:
                baselined.append(replace(finding, suppressed_by="baseline"))
            else:
                kept.append(finding)
        models.append(replace(model, findings=tuple(kept),
                              suppressed=model.suppressed + tuple(baselined)) if baselined else model)
    checked = {target_key(m.target) for m in report.models if m.error is None}
    fixed = sum(count for (_, target, _), count in left.items() if target in checked)
    return replace(report, models=tuple(models), baseline_fixed=fixed)

