"""Which model files a directory target means (SPEC 5): `maskcheck .` in a repository.

A directory is searched recursively for model files, skipping what is not the
project's own models, as ruff does for Python files:

* the default excludes: hidden folders (`.git`, `.venv`, `.tox`, ...), virtual
  environments (any folder holding a `pyvenv.cfg`, and folders named `venv`),
  `site-packages`, `node_modules` and `__pycache__`;
* `exclude` in `[tool.maskcheck]` REPLACES the default excludes and
  `extend-exclude` adds to them. Both are globs relative to the folder of the
  pyproject.toml they come from: a glob without a slash matches a file or
  folder name at any depth (`legacy`, `*_old.keras`), one with a slash a path
  from that folder (`models/archive`, `experiments/**/*.keras`); `*` stays
  within a name, `**` crosses folders, a trailing `/` matches folders only
  (`build/`);
* what `.gitignore` files ignore: the ones inside the searched folder and those
  of its parent folders up to the git repository's root (with its
  `.git/info/exclude`), or outside a repository up to the pyproject's folder.
  Negation `!`, folder-only `dir/`, anchored `/x` and `**` follow git; as in
  git, a file inside an ignored folder stays ignored.

Only what the search finds is filtered: a file or folder named on the command
line is always checked (ruff does the same without --force-exclude), so
`maskcheck .venv/model.keras` checks that model. Implemented here with
`re` (no pathspec dependency); global git excludes (`core.excludesFile`) are
not read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

#: Folders skipped unless `exclude` replaces the list (folder-only patterns).
DEFAULT_EXCLUDE = (".*/", "venv/", "site-packages/", "node_modules/", "__pycache__/")


@dataclass(frozen=True)
class Pattern:
    """One glob, gitignore-style, relative to `base` (its file's folder)."""

    regex: re.Pattern[str]
    base: Path
    anchored: bool  # matched against the path from `base`; otherwise against the name
    folders_only: bool
    negate: bool = False
    text: str = ""

    def matches(self, path: Path, is_dir: bool) -> bool:
        if self.folders_only and not is_dir:
            return False
        if not self.anchored:
            return self.regex.fullmatch(path.name) is not None
        try:
            relative = path.relative_to(self.base).as_posix()
        except ValueError:  # outside the folder this pattern belongs to
            return False
        return relative != "." and self.regex.fullmatch(relative) is not None


def compile_pattern(text: str, base: Path, *, gitignore: bool) -> Pattern | None:
    """A gitignore line (or an exclude glob) as a Pattern; None for blanks and comments."""
    line = text.rstrip("\r\n")
    while line.endswith((" ", "\t")) and not line.endswith(("\\ ", "\\\t")):
        line = line[:-1]  # trailing blanks are dropped unless escaped
    if not gitignore:
        line = line.strip()
        if line.startswith("./"):
            line = line[2:]
    if not line or (gitignore and line.startswith("#")):
        return None
    negate = gitignore and line.startswith("!")
    if negate:
        line = line[1:]
    folders_only = line.endswith("/") and not line.endswith("\\/")
    line = line.rstrip("/") if folders_only else line
    if not line:
        return None
    anchored = "/" in line  # a slash at the start or in the middle anchors (git)
    line = line.lstrip("/")
    if not line:
        return None
    return Pattern(re.compile(_translate(line)), base, anchored, folders_only, negate, text.strip())


def _translate(glob: str) -> str:
    """A gitignore glob as a regex for `fullmatch` over a slash-separated path."""
    out, i, n = [], 0, len(glob)
    while i < n:
        char = glob[i]
        if char == "*":
            if glob.startswith("**", i) and (i == 0 or glob[i - 1] == "/"):
                if glob[i + 2:i + 3] == "/":  # `**/`: any folders, or none
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                if i + 2 == n:  # trailing `/**`: everything inside
                    out.append(".*")
                    i += 2
                    continue
            while i < n and glob[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if char == "?":
            out.append("[^/]")
        elif char == "[":
            end = i + 1
            if end < n and glob[end] in "!^":
                end += 1
            if end < n and glob[end] == "]":
                end += 1
            end = glob.find("]", end)
            if end < 0:  # no closing bracket: a literal `[`
                out.append(re.escape(char))
            else:
                inside = glob[i + 1:end]
                inside = ("^" + inside[1:]) if inside[:1] in "!^" else inside
                out.append("(?!/)[" + inside.replace("\\", "\\\\") + "]")
                i = end
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def read_gitignore(path: Path) -> tuple[Pattern, ...]:
    """The patterns of one ignore file, relative to its folder (none if unreadable)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ()
    base = path.parent if path.name == ".gitignore" else path.parent.parent.parent  # .git/info/exclude
    return tuple(p for p in (compile_pattern(line, base, gitignore=True) for line in lines) if p)


@dataclass(frozen=True)
class Excludes:
    """What a directory search skips; `exclude=None` keeps DEFAULT_EXCLUDE (and venv detection)."""

    exclude: tuple[str, ...] | None = None
    extend_exclude: tuple[str, ...] = ()
    root: Path = field(default_factory=Path.cwd)  # globs are relative to it (the pyproject's folder)

    def patterns(self) -> tuple[Pattern, ...]:
        root = _absolute(self.root)
        globs = (DEFAULT_EXCLUDE if self.exclude is None else self.exclude) + self.extend_exclude
        return tuple(p for p in (compile_pattern(g, root, gitignore=False) for g in globs) if p)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _ancestor_ignores(top: Path, project: Path) -> tuple[Pattern, ...]:
    """.gitignore patterns of the folders above `top`: up to its git repository's root, or,
    outside a repository, up to the project folder (the pyproject's) when that is above it."""
    folders = []
    for folder in top.parents:
        folders.append(folder)
        if (folder / ".git").exists():
            repo: Path | None = folder
            break
    else:
        repo = None
        if project == top or project not in top.parents:
            return ()
        folders = folders[:folders.index(project) + 1]
    patterns = list(read_gitignore(repo / ".git" / "info" / "exclude")) if repo else []
    for folder in reversed(folders):  # shallow first: deeper files take precedence
        patterns.extend(read_gitignore(folder / ".gitignore"))
    return tuple(patterns)


def _ignored(patterns: tuple[Pattern, ...], path: Path, is_dir: bool) -> bool:
    """git's rule: the last matching pattern decides; `!` re-includes."""
    for pattern in reversed(patterns):
        if pattern.matches(path, is_dir):
            return not pattern.negate
    return False


def find_models(folder: Path, suffixes: tuple[str, ...],
                excludes: Excludes | None = None) -> tuple[list[Path], list[str]]:
    """Model files under `folder` (spelled from `folder`, sorted) and what was skipped.

    `skipped` names the pruned folders and model files (relative to `folder`), so an
    empty result can say why. `folder` itself is never excluded: it was named.
    """
    excludes = excludes if excludes is not None else Excludes()
    globs = excludes.patterns()
    detect_venvs = excludes.exclude is None
    top = _absolute(folder)
    found: list[Path] = []
    skipped: list[str] = []
    stack = [(Path(), _ancestor_ignores(top, _absolute(excludes.root)))]
    while stack:
        relative, ignores = stack.pop()
        real = top / relative
        ignores = ignores + read_gitignore(real / ".gitignore")
        try:
            entries = list(os.scandir(real))
        except OSError:
            continue
        for entry in entries:
            path = real / entry.name
            try:
                is_dir = entry.is_dir() and not entry.is_symlink()  # as Path.rglob: no linked folders
                is_model = not is_dir and Path(entry.name).suffix in suffixes and entry.is_file()
            except OSError:
                continue
            if not (is_dir or is_model):
                continue
            if (any(g.matches(path, is_dir) for g in globs)
                    or (is_dir and detect_venvs and (path / "pyvenv.cfg").is_file())
                    or _ignored(ignores, path, is_dir)):
                skipped.append((relative / entry.name).as_posix() + ("/" if is_dir else ""))
            elif is_dir:
                stack.append((relative / entry.name, ignores))
            else:
                found.append(folder / relative / entry.name)
    return sorted(found), sorted(skipped)
