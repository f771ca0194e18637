"""Where each layer was built in the user's code (SPEC 6 `location`).

A Keras layer does not remember the line that created it, so maskcheck
records it while it builds models itself: `record_locations()` wraps
`Operation.__new__` (every layer, model and symbolic `keras.ops` call goes
through it) and notes the innermost calling frame outside Keras, keras-hub,
TensorFlow, maskcheck and the standard library. It is active only inside
the context: factory targets, the `maskcheck` pytest fixture's tests, and
any user code run under `with maskcheck.record_locations():`. Models built
elsewhere get no locations, so nobody who never asks pays for a frame walk.
"""

from __future__ import annotations

import contextlib
import os
import sys
import sysconfig
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

#: Top-level packages whose frames are never "the user's code".
LIBRARY_PACKAGES = ("keras", "keras_hub", "keras_nlp", "keras_cv", "tensorflow", "tf_keras",
                    "maskcheck", "tree", "optree", "absl")


@dataclass(frozen=True, slots=True)
class Site:
    """The call that built one layer: absolute file, first and last line of the call."""

    file: str
    line: int
    end_line: int
    #: first and last line of the function (or module) whose code made the call: where
    #: --warn-unused-ignores looks for comments that should have matched something
    scope: tuple[int, int] | None = None

    def lines(self) -> range:
        return range(self.line, max(self.line, self.end_line) + 1)

    def to_location(self, base: Path | None = None) -> dict[str, Any]:
        """SPEC 6 `location`: the file relative to `base` (the working folder) when inside it."""
        return {"file": display_path(self.file, base), "line": self.line}


def display_path(file: str, base: Path | None = None) -> str:
    """`file` relative to `base` (default: the working folder) in slashes, else absolute."""
    base = (base or Path.cwd()).resolve()
    path = Path(file).resolve()
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


_SITES: "weakref.WeakKeyDictionary[Any, Site]" = weakref.WeakKeyDictionary()
_depth = 0
_original_new: Any = None
_stdlib_roots: tuple[str, ...] = ()
#: co_filename -> (real path, is library code)
_files: dict[str, tuple[str, bool]] = {}
#: code object -> its instructions' (line, end line, column, end column)
_positions: dict[Any, list[Any]] = {}
#: code object -> (first line, last line) of its source
_scopes: dict[Any, tuple[int, int]] = {}


def _scope(code: Any) -> tuple[int, int]:
    if code not in _scopes:
        lines = [line for _, _, line in code.co_lines() if line]
        _scopes[code] = (min([code.co_firstlineno, *lines]), max([code.co_firstlineno, *lines]))
    return _scopes[code]


def _folders(paths: Any) -> tuple[str, ...]:
    return tuple(os.path.realpath(folder) + os.sep for folder in paths if folder)


def _is_library(filename: str) -> bool:
    known = _files.get(filename)
    if known is None:
        if filename.startswith("<"):  # exec'd strings, frozen modules: no file to point at
            known = (filename, True)
        else:
            real = os.path.realpath(filename)
            parts = Path(real).parts
            in_stdlib = (any(real.startswith(root) for root in _stdlib_roots)
                         and "site-packages" not in parts and "dist-packages" not in parts)
            known = (real, in_stdlib)
        _files[filename] = known
    return known[1]


#: Modules that rebuild layers from a config (loading a file, a preset, a clone): such a
#: layer was not written at the line that called them, so it gets no location.
REBUILDERS = ("keras.src.saving", "keras.src.models.cloning", "keras.saving", "keras_hub.src.utils")


def _user_site(frame: Any) -> Site | None:
    """The innermost user frame, or None when no user frame or a rebuilding frame is on the stack."""
    site = None
    while frame is not None:
        name = str(frame.f_globals.get("__name__") or "")
        if name.startswith(REBUILDERS):
            return None
        code = frame.f_code
        if site is None and name.partition(".")[0] not in LIBRARY_PACKAGES \
                and not _is_library(code.co_filename):
            line = frame.f_lineno
            end = line
            if hasattr(code, "co_positions") and frame.f_lasti >= 0:  # Python 3.11+: the call's lines
                if code not in _positions:
                    _positions[code] = list(code.co_positions())
                try:
                    start, stop, _, _ = _positions[code][frame.f_lasti // 2]
                    line, end = start or line, stop or line
                except (IndexError, ValueError):
                    pass
            site = Site(_files[code.co_filename][0], line, end, _scope(code))
        frame = frame.f_back
    return site


def _recording_new(cls: Any, *args: Any, **kwargs: Any) -> Any:
    instance = _original_new(cls, *args, **kwargs)
    try:
        site = _user_site(sys._getframe(1))
        if site is not None and instance not in _SITES:
            _SITES[instance] = site
    except Exception:  # never let bookkeeping break the user's model
        pass
    return instance


@contextlib.contextmanager
def record_locations() -> Iterator[None]:
    """Record where layers are built while the block runs (re-entrant).

    A frame is the user's when its module is not in LIBRARY_PACKAGES and its file
    is not in the standard library (site-packages below it excepted).

    >>> with maskcheck.record_locations():
    ...     model = build_tagger()
    >>> maskcheck.check(model)  # findings now carry `location`
    """
    global _depth, _original_new, _stdlib_roots
    from keras.src.ops.operation import Operation

    if _depth == 0:
        _stdlib_roots = _folders(sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib"))
        _files.clear()
        _positions.clear()
        _scopes.clear()
        _original_new = Operation.__dict__["__new__"].__func__
        Operation.__new__ = staticmethod(_recording_new)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            Operation.__new__ = staticmethod(_original_new)
            _positions.clear()
            _scopes.clear()


def site_of(layer: Any) -> Site | None:
    try:
        return _SITES.get(layer)
    except TypeError:  # unhashable or not weak-referenceable
        return None


def children(layer: Any) -> list[Any]:
    operations = getattr(layer, "operations", None)
    if operations:
        return list(operations)
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        return []
    try:
        return list(flatten(include_self=False, recursive=False))
    except TypeError:
        return []


def site_at(model: Any, path: tuple[str, ...]) -> Site | None:
    """The site of the layer at `path` (model name first), else of its nearest recorded
    enclosing layer below the model itself (a sublayer built outside any recording)."""
    current, best = model, None
    for name in path[1:]:
        current = next((c for c in children(current) if getattr(c, "name", None) == name), None)
        if current is None:
            break
        best = site_of(current) or best
    return best
