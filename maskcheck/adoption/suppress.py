"""Inline suppressions and `per-layer-ignores` (SPEC 6), and which of them matched nothing.

`# maskcheck: ignore[MC101,MC102]` (or a bare `# maskcheck: ignore`) on any
line of the call that built a layer suppresses those codes at that layer;
codes may be rule codes, prefixes (`MC1`) or rule names, as in --select.
`per-layer-ignores` maps layer-path globs (`*` matches across `/`) to codes;
a glob matches the path joined by `/`, with or without the model's name in
front. A suppressed finding moves to `ModelReport.suppressed` with
`suppressed_by` set, so it is counted, never dropped.

One `Suppressor` lives for one run: it remembers which comments and entries
matched, so `--warn-unused-ignores` can list the rest.
"""

from __future__ import annotations

import fnmatch
import io
import re
import tokenize
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from maskcheck.finding import Finding, UnusedIgnore
from maskcheck.adoption.locations import Site, children, display_path, site_of
from maskcheck.rules import UnknownRuleError, resolve_selection

COMMENT = re.compile(r"#\s*maskcheck:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)


@dataclass(frozen=True)
class Comment:
    """One `# maskcheck: ignore[...]` comment: None codes means every code."""

    file: str
    line: int
    entries: tuple[str, ...] | None
    codes: frozenset[str] | None
    unknown: tuple[str, ...] = ()

    def covers(self, code: str) -> bool:
        return self.codes is None or code in self.codes


def parse_comment(text: str) -> tuple[tuple[str, ...] | None, frozenset[str] | None, tuple[str, ...]] | None:
    """(entries, resolved codes, unknown entries) of a comment's text, or None when it is not ours."""
    match = COMMENT.search(text)
    if match is None:
        return None
    if match.group("codes") is None:
        return None, None, ()
    entries = tuple(e.strip() for e in match.group("codes").split(",") if e.strip())
    codes: set[str] = set()
    unknown = []
    for entry in entries:
        try:
            codes |= resolve_selection([entry])
        except UnknownRuleError:
            unknown.append(entry)
    return entries, frozenset(codes), tuple(unknown)


def read_comments(file: str) -> dict[int, Comment]:
    """Every maskcheck comment in a Python file, by line (real comments only, not strings)."""
    try:
        source = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    comments: dict[int, Comment] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type != tokenize.COMMENT:
                continue
            parsed = parse_comment(token.string)
            if parsed is not None:
                entries, codes, unknown = parsed
                comments[token.start[0]] = Comment(file, token.start[0], entries, codes, unknown)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return comments
    return comments


def layer_globs(path: tuple[str, ...]) -> tuple[str, ...]:
    """The strings a per-layer-ignores glob is matched against: with and without the model."""
    return tuple(dict.fromkeys(("/".join(path), "/".join(path[1:]))))


@dataclass
class Suppressor:
    """Applies one run's suppressions and remembers what each one matched."""

    per_layer_ignores: tuple[tuple[str, frozenset[str]], ...] = ()
    pyproject: str | None = None
    _comments: dict[str, dict[int, Comment]] = field(default_factory=dict, init=False)
    _used_comments: set[tuple[str, int, str]] = field(default_factory=set, init=False)
    _used_entries: set[tuple[str, str]] = field(default_factory=set, init=False)
    _scopes: dict[str, set[tuple[int, int]]] = field(default_factory=dict, init=False)
    _ran: set[str] = field(default_factory=set, init=False)

    def comments(self, file: str) -> dict[int, Comment]:
        if file not in self._comments:
            self._comments[file] = read_comments(file)
        return self._comments[file]

    def note_checked(self, sites: Iterable[Site], codes: Iterable[str]) -> None:
        """Where a checked model's layers were built, and the codes that ran on it."""
        for site in sites:
            scopes = self._scopes.setdefault(site.file, set())
            scopes.add(site.scope or (site.line, site.end_line))
        self._ran.update(codes)

    def apply(self, findings: Iterable[Finding],
              sites: dict[tuple[str, ...], Site]) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
        """(kept, suppressed) findings; `sites` maps a finding's path to where its layer was built.

        A suppressed primary finding takes its related findings with it; a related
        finding suppressed on its own leaves its group for the suppressed list."""
        kept, suppressed = [], []
        for finding in findings:
            reason = self._reason(finding, sites)
            if reason is not None:
                for other in finding.related:  # a comment naming them too was used, not idle
                    self._reason(other, sites)
                suppressed.append(replace(finding, suppressed_by=reason))
                continue
            related = []
            for other in finding.related:
                why = self._reason(other, sites)
                if why is None:
                    related.append(other)
                else:
                    suppressed.append(replace(other, suppressed_by=why))
            kept.append(replace(finding, related=tuple(related)))
        return tuple(kept), tuple(suppressed)

    def _reason(self, finding: Finding, sites: dict[tuple[str, ...], Site]) -> str | None:
        return self._by_comment(finding, sites.get(finding.path)) or self._by_config(finding)

    def _by_comment(self, finding: Finding, site: Site | None) -> str | None:
        if site is None:
            return None
        comments = self.comments(site.file)
        for line in site.lines():
            comment = comments.get(line)
            if comment is not None and comment.covers(finding.rule):
                self._used_comments.add((site.file, line, finding.rule))
                return "comment"
        return None

    def _by_config(self, finding: Finding) -> str | None:
        names = layer_globs(finding.path)
        for glob, codes in self.per_layer_ignores:
            if finding.rule in codes and any(fnmatch.fnmatchcase(n, glob) for n in names):
                self._used_entries.add((glob, finding.rule))
                return "per-layer-ignores"
        return None

    def unused(self) -> tuple[UnusedIgnore, ...]:
        """Suppressions that matched no finding, among codes that ran (--warn-unused-ignores).

        Comments are looked for in the functions (or module code) that built a checked
        model's layers, so a module's other factories, not run now, are left alone; a
        comment's codes whose rules did not run (not selected, other --mode) are not
        reported, since they could not have matched."""
        unused = []
        for file, scopes in sorted(self._scopes.items()):
            for line, comment in sorted(self.comments(file).items()):
                if not any(first <= line <= last for first, last in scopes):
                    continue
                used = {code for f, n, code in self._used_comments if f == file and n == line}
                where = display_path(file)
                if comment.unknown:
                    unused.append(UnusedIgnore(where, line, comment.unknown,
                                               f"unknown rule code(s) {', '.join(comment.unknown)} "
                                               "in 'maskcheck: ignore'"))
                if comment.codes is None:
                    if not used:
                        unused.append(UnusedIgnore(where, line, (), "'maskcheck: ignore' matched no finding"))
                    continue
                idle = sorted(c for c in comment.codes & self._ran if c not in used)
                if idle and not (comment.codes & used):
                    text = ",".join(comment.entries or ())
                    unused.append(UnusedIgnore(where, line, tuple(idle),
                                               f"'maskcheck: ignore[{text}]' matched no finding"))
                elif idle:
                    unused.append(UnusedIgnore(where, line, tuple(idle),
                                               f"'maskcheck: ignore' codes {', '.join(idle)} "
                                               "matched no finding on this line"))
        source = display_path(self.pyproject) if self.pyproject else "pyproject.toml"
        for glob, codes in self.per_layer_ignores:
            idle = sorted(c for c in codes & self._ran if (glob, c) not in self._used_entries)
            if idle:
                unused.append(UnusedIgnore(source, None, tuple(idle),
                                           f"per-layer-ignores entry {glob!r} = {', '.join(idle)} "
                                           "matched no finding"))
        return tuple(unused)


def model_sites(model: Any) -> dict[tuple[str, ...], Site]:
    """Every recorded layer site of `model`, by layer path (the adapter's paths)."""
    sites: dict[tuple[str, ...], Site] = {}

    def walk(layer: Any, path: tuple[str, ...], depth: int) -> None:
        if depth > 64:
            return
        for child in children(layer):
            name = getattr(child, "name", None)
            if not isinstance(name, str):
                continue
            child_path = path + (name,)
            site = site_of(child)
            if site is not None:
                sites.setdefault(child_path, site)
            if child is not layer:
                walk(child, child_path, depth + 1)

    walk(model, (getattr(model, "name", "model"),), 0)
    return sites
