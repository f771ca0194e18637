"""Targets to models: files, directories and `module:factory` callables.

Every failure becomes a `LoadError` with one line naming the reason, so the
CLI can report it and go on with the other targets. Models are loaded in
Keras safe mode unless the user passed --unsafe, files are only read, and
nothing is ever written beside them.

A model file is untrusted input: before Keras decompresses or parses anything,
`ArchiveLimits` caps what the zip directory declares (config.json's size, the
total size, compression ratios) and config.json's nesting depth, and a member
named outside the archive (absolute, `..`) or marked as a symlink is refused.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shutil
import stat
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from maskcheck.interrupts import RUN_STOPS, Terminated, raise_pending, user_exit  # noqa: F401 (Terminated: re-exported)

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


_MIB = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps a model file must meet before Keras decompresses or parses it.

    Sizes and ratios come from the zip central directory (`ZipInfo.file_size` and
    `compress_size`), never from inflating a member; only config.json, once under
    its size cap, is read to measure its nesting depth.

    The defaults leave wide room over what real models need: Keras stores every
    member uncompressed (ratio 1.0 in every fixture and keras-hub model), and the
    largest configs measured are 1.0 MiB, nesting 11 deep (keras.applications
    NASNetLarge, 1041 layers; the zoo's and keras-hub's are under 8 KB, depth <= 11).
    The config cap is not higher because parsing is what costs: a 7.6 MiB config
    holding one long list already takes Keras ~9 s and ~0.9 GB to reject.

    Attributes:
        config_mb: config.json's uncompressed size (legacy .h5: the model_config attribute).
        config_depth: how deeply config.json's JSON arrays and objects nest.
        archive_mb: the whole archive's uncompressed size.
        compression_ratio: uncompressed / compressed size, of the whole archive and of any
            member over 1 MiB (so a bomb cannot hide behind a large stored member).
    """

    config_mb: int = 8
    config_depth: int = 128
    archive_mb: int = 64 * 1024
    compression_ratio: int = 100

    #: Members (and archives) below this uncompressed size escape the ratio cap: inflating
    #: them cannot cost much, and a tiny file may compress oddly well.
    RATIO_FLOOR = _MIB

    @classmethod
    def from_config(cls, config: Any) -> "ArchiveLimits":
        """The caps a `maskcheck.config.Config` sets (`max_config_mb`, ...)."""
        return cls(config_mb=config.max_config_mb, config_depth=config.max_config_depth,
                   archive_mb=config.max_archive_mb, compression_ratio=config.max_compression_ratio)


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


def load_target(target: Target, *, unsafe: bool,
                limits: ArchiveLimits = ArchiveLimits()) -> tuple[Any, Any]:
    """Load one target; returns (model, data) where data is None for files.

    Args:
        limits: caps a model file must meet before it is decompressed or parsed.

    Raises:
        LoadError: with a one-line reason.
    """
    if target.error is not None:
        raise target.error
    if target.kind == "factory":
        return _call_factory(target.location)
    return _load_file(Path(target.location), unsafe=unsafe, limits=limits), None


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


def _load_file(path: Path, *, unsafe: bool, limits: ArchiveLimits = ArchiveLimits()) -> Any:
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
        _check_keras_archive(path, limits)
    else:
        _check_h5(path, limits)
    import keras

    with _private_folder(path) as loadable:
        try:
            model = _load_keras(keras, loadable, unsafe=unsafe)
            raise_pending()  # a Ctrl-C that Keras's weight loader swallowed (a bare except)
            return model
        except LoadError:
            raise
        except Exception as exc:
            error = _classify(exc, unsafe)
            if loadable != path:  # name the user's file, not its stand-in
                error = LoadError(error.type, error.message.replace(str(loadable), str(path)))
            raise error from exc


@contextlib.contextmanager
def _private_folder(path: Path) -> Iterator[Path]:
    """The .keras file as Keras should open it: through a link in a fresh folder under the
    system temporary directory, removed on every way out (return, exception, Ctrl-C,
    `Terminated`).

    Keras (saving_lib `_load_model_from_fileobj`) extracts weights it judges too large
    for memory into a temporary folder created beside the file it opened: over 512 MB
    of weights without psutil, or half the free memory with it. Opened through this
    link, "beside" is maskcheck's own folder, so nothing is ever written next to the
    user's file, and no Keras internals are patched. Where symlinks are not allowed
    (Windows without the privilege) the file is copied instead. A legacy .h5 is read in
    place by h5py, which writes nothing.
    """
    if path.suffix.lower() != ".keras":
        yield path
        return
    try:
        folder = Path(tempfile.mkdtemp(prefix="maskcheck-load-"))
    except OSError as exc:
        raise _no_temp(exc) from exc
    try:
        link = folder / "model.keras"
        try:
            os.symlink(path.resolve(), link)
        except OSError:
            try:
                shutil.copyfile(path, link)
            except OSError as exc:
                raise _no_temp(exc) from exc
        yield link
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _no_temp(exc: OSError) -> LoadError:
    return LoadError("TempDirUnavailable", f"cannot prepare the model under the temporary directory "
                     f"{tempfile.gettempdir()} ({exc.strerror or exc}); maskcheck never writes beside "
                     "a model file: point TMPDIR at a writable folder")


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


def _too_large(what: str, option: str) -> LoadError:
    return LoadError("ArchiveTooLarge", f"{what} (raise the cap with {option} N if you trust this file)")


def _mib(size: int) -> str:
    """A byte count for a message: MiB, or KiB / bytes when smaller."""
    if size >= _MIB:
        return f"{size / _MIB:,.1f} MiB"
    return f"{size / 1024:,.1f} KiB" if size >= 1024 else f"{size} bytes"


def _check_keras_archive(path: Path, limits: ArchiveLimits = ArchiveLimits()) -> None:
    """Refuse a damaged, unsafe or oversized archive from its zip directory alone.

    Nothing is inflated but config.json, and only once its declared size is under the cap.
    A member whose checksum fails shows up when Keras reads it (`_classify`: CorruptFile).
    """
    if not zipfile.is_zipfile(path):
        raise LoadError("CorruptFile", "not a .keras archive (not a zip file, or truncated)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            for info in members:
                _check_member_name(info)
            names = {info.filename for info in members}
            if "config.json" not in names:
                raise LoadError("CorruptFile", "not a Keras model archive (no config.json inside)")
            _check_sizes(members, archive.getinfo("config.json"), limits)
            config = archive.read("config.json")  # at most its declared size, now under the cap
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as exc:  # RuntimeError: an encrypted member
        raise LoadError("CorruptFile", f"damaged .keras archive: {_one_line(exc)}") from exc
    _check_depth(config, "config.json", limits)


def _check_member_name(info: zipfile.ZipInfo) -> None:
    """A member must name a file inside the archive, and not a link to elsewhere."""
    name = info.filename
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise LoadError("UnsafeArchive", f"archive member {name!r} has an absolute path; "
                        "a model archive names its files relative to itself")
    if ".." in parts:
        raise LoadError("UnsafeArchive", f"archive member {name!r} climbs out of the archive "
                        "with '..'; a model archive never does")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise LoadError("UnsafeArchive", f"archive member {name!r} is a symbolic link; "
                        "a model archive holds only plain files")


def _check_sizes(members: list[zipfile.ZipInfo], config: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    """The caps on declared sizes and ratios, from the central directory alone."""
    if config.file_size > limits.config_mb * _MIB:
        raise _too_large(f"config.json is {_mib(config.file_size)} uncompressed, over the "
                         f"--max-config-mb cap of {limits.config_mb} MiB", "--max-config-mb")
    total = sum(info.file_size for info in members)
    if total > limits.archive_mb * _MIB:
        raise _too_large(f"archive is {_mib(total)} uncompressed, over the --max-archive-mb cap of "
                         f"{limits.archive_mb} MiB", "--max-archive-mb")
    for info in sorted(members, key=lambda i: -i.file_size):
        if info.file_size < limits.RATIO_FLOOR:
            break
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.compression_ratio:
            raise _too_large(f"archive member {info.filename!r} inflates {ratio:,.0f}x "
                             f"({_mib(info.compress_size)} to {_mib(info.file_size)}), over the "
                             f"--max-compression-ratio cap of {limits.compression_ratio}",
                             "--max-compression-ratio")
    stored = sum(info.compress_size for info in members)
    ratio = total / max(stored, 1)
    if total >= limits.RATIO_FLOOR and ratio > limits.compression_ratio:
        raise _too_large(f"archive inflates {ratio:,.0f}x ({_mib(stored)} to {_mib(total)}), over "
                         f"the --max-compression-ratio cap of {limits.compression_ratio}",
                         "--max-compression-ratio")


#: +1 for an opening bracket, -1 for a closing one, 0 for any other byte.
_BRACKET_STEP = bytes(255 if c in b"]}" else 1 if c in b"[{" else 0 for c in range(256))  # 255: int8 -1


def json_depth(text: bytes) -> int:
    """How deeply JSON arrays and objects nest in `text`, without parsing it.

    Escapes go first (escaped backslashes, then escaped quotes: two byte
    replaces), so every quote left opens or closes a string; a bracket counts
    when an even number of quotes precede it. The depth is the largest running
    sum of the bracket steps, a numpy cumsum taken 1 MiB at a time: 16 MiB takes
    a fraction of a second and a few byte-sized copies of the text.
    """
    import numpy as np

    code = np.frombuffer(text.replace(b"\\\\", b"").replace(b'\\"', b""), dtype=np.uint8)
    in_string = np.cumsum(code == ord('"'), dtype=np.uint8) & 1  # parity wraps safely
    steps = np.frombuffer(_BRACKET_STEP, dtype=np.int8)[code][in_string == 0]
    steps = steps[steps != 0]
    depth = level = 0
    for start in range(0, steps.size, _MIB):
        running = np.cumsum(steps[start:start + _MIB], dtype=np.int64) + level
        depth, level = max(depth, int(running.max())), int(running[-1])
    return depth


def _check_depth(config: bytes, what: str, limits: ArchiveLimits) -> None:
    depth = json_depth(config)
    if depth > limits.config_depth:
        raise _too_large(f"{what} nests {depth} levels deep, over the --max-config-depth cap of "
                         f"{limits.config_depth}", "--max-config-depth")


def _check_h5(path: Path, limits: ArchiveLimits = ArchiveLimits()) -> None:
    with path.open("rb") as handle:
        if handle.read(8) != b"\x89HDF\r\n\x1a\n":
            raise LoadError("CorruptFile", "not an HDF5 file")
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "model_config" not in handle.attrs:
                raise LoadError("NotAModel", "HDF5 file holds no Keras model (no model_config; "
                                "weights only?)")
            # Keras parses both as JSON (training_config when it compiles the model).
            for name in ("model_config", "training_config"):
                if name in handle.attrs:
                    _check_depth(_h5_json_attr(handle, name, limits), name, limits)
    except OSError as exc:
        raise LoadError("CorruptFile", f"damaged HDF5 file: {_one_line(exc)}") from exc


def _h5_json_attr(handle: Any, name: str, limits: ArchiveLimits) -> bytes:
    """A JSON attribute's bytes (model_config, training_config), its size capped before
    Keras parses it.

    A fixed-length string's size is its storage size, read before the value. A
    variable-length one (what Keras writes) reports only its 16-byte descriptor,
    so its size is bounded by the file's: HDF5 never compresses attributes, so a
    value can be no larger than the file holding it, and reading it costs no more
    memory than the file's size (no bomb). Only then is its length checked, before
    the JSON parse that multiplies memory.
    """
    import h5py

    cap = limits.config_mb * _MIB
    attr = h5py.h5a.open(handle.id, name.encode())
    if attr.get_space().get_simple_extent_npoints() != 1:
        raise LoadError("CorruptFile", f"{name} is not one JSON string")
    kind = attr.get_type()
    is_vlen = isinstance(kind, h5py.h5t.TypeStringID) and kind.is_variable_str()
    if not is_vlen and attr.get_storage_size() > cap:
        raise _too_large(f"{name} is {_mib(attr.get_storage_size())}, over the "
                         f"--max-config-mb cap of {limits.config_mb} MiB", "--max-config-mb")
    try:
        value = handle.attrs[name]
    except Exception:  # a type h5py cannot read: Keras cannot either, and its error says why
        return b""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    if not isinstance(value, bytes):  # Keras cannot read it either; its own error says so
        return b""
    if len(value) > cap:
        raise _too_large(f"{name} is {_mib(len(value))}, over the --max-config-mb cap of "
                         f"{limits.config_mb} MiB", "--max-config-mb")
    return value


_CLASS_NOT_FOUND = re.compile(r"Could not locate (?:class|function) '([^']+)'")


_BAD_CRC = re.compile(r"Bad CRC-32 for file '([^']*)'")


def _classify(exc: Exception, unsafe: bool) -> LoadError:
    text = str(exc)
    crc = _BAD_CRC.search(text)
    if crc:  # the pre-check inflates nothing, so a damaged member shows here
        return LoadError("CorruptFile", f"damaged .keras archive: member {crc.group(1)!r} fails its checksum")
    if isinstance(exc, (zipfile.BadZipFile, zlib.error)):
        return LoadError("CorruptFile", f"damaged .keras archive: {_one_line(exc)}")
    if "Lambda" in text and ("safe_mode" in text or "disallowed" in text):
        return LoadError("UnsafeModel", "model contains a Lambda layer whose Python code would run on load; "
                         "maskcheck loads in safe mode so a model file cannot execute code. "
                         "Pass --unsafe only if you trust this file")
    requested = _REQUESTED.findall(text)
    if requested and not unsafe:  # Keras's own safe-mode sentence, innermost (last) first
        kind, what = requested[-1]
        return LoadError("UnsafeModel", f"the model requests the {kind} of {what.strip()}, which "
                         "safe mode refuses (it could run code or read files outside the archive); "
                         "pass --unsafe only if you trust this file")
    if not unsafe and "safe_mode" in text:
        return LoadError("UnsafeModel", f"loading needs code execution, which safe mode forbids "
                         f"(pass --unsafe only if you trust this file): {_one_line(exc)}")
    api = _NOT_MODELING.search(text)
    if api:
        return LoadError("UnsafeModel", f"the model names {api.group(1)}, which is not a layer, "
                         "operation or loss; Keras refuses such APIs in a model file (they could "
                         "fetch files or switch safe mode off), and nothing was run")
    match = _CLASS_NOT_FOUND.search(text)
    if match:
        name = match.group(1)
        module = _module_of(text[match.end():], name)
        if module and _foreign(module):
            return LoadError("UnsafeModel", f"the model names {module}.{name}, which is not a "
                             "Keras object; a model file may only name layers and registered "
                             "objects, so it was never imported or called")
        where = f"--import {module}" if module else "--import MODULE for the module that defines it"
        return LoadError("UnknownCustomObject", f"model uses custom object {name!r}"
                         + (f" (module {module!r})" if module else "") + ", which is not registered; "
                         f"pass {where} (decorated with @keras.saving.register_keras_serializable)")
    return LoadError(type(exc).__name__, f"cannot load model: {_one_line(exc)}")


#: Keras's safe-mode refusals: "Requested the deserialization of a Python lambda. ...",
#: "Requested the loading of a vocabulary file outside of the model archive. ..."
_REQUESTED = re.compile(r"Requested the (deserialization|loading) of ([^.]{1,120})\.")
#: "Cannot deserialize `keras.utils.get_file` because it is not a modeling function.", and
#: "Could not deserialize 'keras.src....get_file' because it is not a KerasSaveable subclass"
_NOT_MODELING = re.compile(r"(?:Cannot|Could not) deserialize [`']([^`']{1,200})[`'] because it is not "
                           r"a (?:modeling function|KerasSaveable subclass)")


def _module_of(after: str, name: str) -> str | None:
    """The `module` of the object Keras could not find, from the config it quotes."""
    quoted = after.partition("Full object config: {")[2][:300]
    found = re.match(r"'module': '([\w.]{1,200})', 'class_name': '(?:" + re.escape(name)
                     + "|function)'", quoted)
    return found.group(1) if found else None


def _foreign(module: str) -> bool:
    """A module no model's custom object lives in: the standard library (os.system,
    subprocess.Popen, builtins.eval)."""
    top = module.split(".")[0]
    return top in sys.stdlib_module_names


def _one_line(exc: BaseException) -> str:
    # Cut before splitting: Keras may quote a whole (hostile, megabytes long) config.
    text = " ".join(str(exc)[:2000].split())
    return text if len(text) <= 300 else text[:297] + "..."
