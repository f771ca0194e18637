"""Targets to models: files, directories and `module:factory` callables.

Every failure becomes a `LoadError` with one line naming the reason, so the
CLI can report it and go on with the other targets. Models are loaded in
Keras safe mode unless the user passed --unsafe, files are only read, and
nothing is ever written beside them.
"""

from __future__ import annotations

import importlib
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskcheck.interrupts import RUN_STOPS, user_exit

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
_FACTORY = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_][\w.]*$")


class LoadError(Exception):
    """A target could not be loaded; `type` classifies it for the JSON report.

    `__cause__` keeps the underlying exception, whose traceback --verbose shows.
    """

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message


@dataclass(frozen=True)
class Target:
    """One thing to check: a model file or a factory reference."""

    label: str  # as shown in reports
    kind: str  # "file", "factory", or "error" for a target that names nothing usable
    location: str
    error: LoadError | None = None


def expand_targets(raw: tuple[str, ...], excludes: Any = None) -> list[Target]:
    """Expand command-line targets, directories recursively, in a stable order.

    A directory's search skips hidden folders, virtual environments, what
    .gitignore ignores and the `exclude`/`extend-exclude` globs (`excludes`, a
    `maskcheck.adoption.discovery.Excludes`); a target named here is always kept.
    A target that names nothing usable stays in its place with its `error` set.
    """
    from maskcheck.adoption.discovery import find_models

    expanded: list[Target] = []
    for item in raw:
        path = Path(item)
        if path.is_dir():
            found, skipped = find_models(path, MODEL_SUFFIXES, excludes)
            if not found:
                expanded.append(Target(item, "error", item, LoadError(
                    "NoModels", "directory holds no .keras or .h5 model files" + _skipped(skipped))))
            expanded.extend(Target(p.as_posix(), "file", str(p)) for p in found)
        elif path.exists():
            expanded.append(Target(item, "file", item))
        elif _FACTORY.match(item):
            expanded.append(Target(item, "factory", item))
        else:
            expanded.append(Target(item, "error", item, LoadError("FileNotFound", "no such file or directory")))
    return expanded


def _skipped(names: list[str]) -> str:
    """What the search left out, for a directory that yielded no model."""
    if not names:
        return ""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (f" (skipped {shown}: hidden, virtual environment, .gitignore or exclude; "
            "name a file to check it anyway)")


def import_modules(names: tuple[str, ...]) -> None:
    """Import the --import modules (they register custom layers).

    Raises:
        LoadError: a module cannot be imported.
    """
    _allow_cwd_imports()
    for name in names:
        try:
            importlib.import_module(name)
        except RUN_STOPS:
            raise
        except BaseException as exc:  # the user's module may raise anything, sys.exit included
            raise LoadError("ImportError", f"--import {name}: {user_exit(exc, verb=False)}") from exc


def _allow_cwd_imports() -> None:
    """Let `pkg.mod:factory` and --import find modules in the working folder, as `python -m` does."""
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")


def load_target(target: Target, *, unsafe: bool) -> tuple[Any, Any]:
    """Load one target; returns (model, data) where data is None for files.

    Raises:
        LoadError: with a one-line reason.
    """
    if target.error is not None:
        raise target.error
    if target.kind == "factory":
        return _call_factory(target.location)
    return _load_file(Path(target.location), unsafe=unsafe), None


def _call_factory(reference: str) -> tuple[Any, Any]:
    """Import the module and call the factory, recording where each layer is built."""
    from maskcheck.adoption.locations import record_locations

    with record_locations():
        return _import_and_call(reference)


def _import_and_call(reference: str) -> tuple[Any, Any]:
    import keras

    _allow_cwd_imports()
    module_name, _, attr = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except RUN_STOPS:
        raise
    except BaseException as exc:  # sys.exit in a module body too
        raise LoadError("ImportError", f"cannot import {module_name!r}: {user_exit(exc, verb=False)}") from exc
    factory: Any = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise LoadError("FactoryNotFound", f"module {module_name!r} has no attribute {attr!r}")
    if not callable(factory):
        raise LoadError("FactoryError", f"{attr!r} is a {type(factory).__name__}, not a callable returning a model")
    try:
        result = factory()
    except RUN_STOPS:
        raise
    except BaseException as exc:  # a factory written as a script may call sys.exit
        raise LoadError("FactoryError", f"factory {user_exit(exc)}") from exc
    model, data = (result if isinstance(result, tuple) and len(result) == 2 else (result, None))
    if not isinstance(model, keras.Model):
        raise LoadError("FactoryError", f"factory returned {type(result).__name__}, expected a keras.Model "
                        "or a (model, data) pair")
    return model, data


def _load_file(path: Path, *, unsafe: bool) -> Any:
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise LoadError("UnsupportedFile", f"not a model file (expected {', '.join(MODEL_SUFFIXES)})")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError("FileNotReadable", exc.strerror or str(exc)) from exc
    if size == 0:
        raise LoadError("EmptyFile", "file is empty")
    if suffix == ".keras":
        _check_keras_archive(path)
    else:
        _check_h5(path)
    import keras

    try:
        return _load_keras(keras, path, unsafe=unsafe)
    except LoadError:
        raise
    except Exception as exc:
        raise _classify(exc, unsafe) from exc


def _load_keras(keras: Any, path: Path, *, unsafe: bool) -> Any:
    try:
        return keras.saving.load_model(path, safe_mode=not unsafe, compile=True)
    except Exception as first:
        # A model whose compile config (a custom loss) fails to rebuild is still
        # worth a graph check; anything that fails without compile is the real error.
        try:
            return keras.saving.load_model(path, safe_mode=not unsafe, compile=False)
        except Exception:
            raise first from None


def _check_keras_archive(path: Path) -> None:
    if not zipfile.is_zipfile(path):
        raise LoadError("CorruptFile", "not a .keras archive (not a zip file, or truncated)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise LoadError("CorruptFile", f"damaged .keras archive: {_one_line(exc)}") from exc
    if bad is not None:
        raise LoadError("CorruptFile", f"damaged .keras archive: member {bad!r} fails its checksum")
    if "config.json" not in names:
        raise LoadError("CorruptFile", "not a Keras model archive (no config.json inside)")


def _check_h5(path: Path) -> None:
    with path.open("rb") as handle:
        if handle.read(8) != b"\x89HDF\r\n\x1a\n":
            raise LoadError("CorruptFile", "not an HDF5 file")
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            has_config = "model_config" in handle.attrs
    except OSError as exc:
        raise LoadError("CorruptFile", f"damaged HDF5 file: {_one_line(exc)}") from exc
    if not has_config:
        raise LoadError("NotAModel", "HDF5 file holds no Keras model (no model_config; weights only?)")


_CLASS_NOT_FOUND = re.compile(r"Could not locate (?:class|function) '([^']+)'")


def _classify(exc: Exception, unsafe: bool) -> LoadError:
    text = str(exc)
    if "Lambda" in text and ("safe_mode" in text or "disallowed" in text):
        return LoadError("UnsafeModel", "model contains a Lambda layer whose Python code would run on load; "
                         "maskcheck loads in safe mode so a model file cannot execute code. "
                         "Pass --unsafe only if you trust this file")
    if not unsafe and "safe_mode" in text:
        return LoadError("UnsafeModel", f"loading needs code execution, which safe mode forbids "
                         f"(pass --unsafe only if you trust this file): {_one_line(exc)}")
    match = _CLASS_NOT_FOUND.search(text)
    if match:
        return LoadError("UnknownCustomObject", f"model uses custom object {match.group(1)!r}, which is "
                         "not registered; pass --import MODULE for the module that defines it "
                         "(decorated with @keras.saving.register_keras_serializable)")
    return LoadError(type(exc).__name__, f"cannot load model: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
