"""Real probe data to a short, bounded list of numpy batches (SPEC 4, 5 `--data`, 7 `data=`).

`read_batches(data, batches=1, rows=32)` accepts what the user may pass:

* arrays (numpy, TensorFlow tensors, anything `np.asarray` reads): x alone, a
  whole dataset that is cut into batches of `rows` samples;
* a list of arrays (x for several inputs, in model order) or a dict of arrays
  (x by input name); a dict with any of the keys in `RESERVED_KEYS` (and an
  `np.load` result) is the npz layout instead: `x` (or the other keys as the
  inputs by name), `y` / `labels`, `sample_weight(s)`, `mask`, `lengths`;
* a tuple `(x,)`, `(x, y)` or `(x, y, sample_weight)`, also a whole dataset;
* a `tf.data.Dataset`, a `keras.utils.PyDataset` (`Sequence`), a generator or
  any other iterable: each element is one batch, `x`, `(x,)`, `(x, y)` or
  `(x, y, sample_weight)` as `Model.fit` reads it (a list element is such a
  tuple, as Keras's `unpack_x_y_sample_weight` has it). At most `batches`
  elements are read, never the whole stream.

Every batch is cut to its first `rows` samples and copied, so nothing later
can write into the user's arrays. Data that cannot serve (empty, ragged,
strings, objects, mismatched batch sizes, no batch axis) raises `DataError`
whose message is one line saying why and what to do (SPEC 9).

`load_data_option(spec)` reads what `--data` names: an `.npz` file (loaded
with `allow_pickle=False`) or `module:function`, imported the way
`maskcheck.loading` imports factory targets and called with no arguments.

Numpy, Keras and TensorFlow are imported inside functions only; a
`tf.data.Dataset` or a `PyDataset` is recognised through `sys.modules`, since
a value of either type means its library is already imported.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskcheck.dynamic.plan import ProbeError
from maskcheck.interrupts import RUN_STOPS, user_exit

#: Keys that make a dict the npz layout rather than x by input name.
RESERVED_KEYS = frozenset({"x", "y", "labels", "sample_weight", "sample_weights", "mask", "lengths"})
#: `module:function`, the same shape as `maskcheck.loading`'s factory targets.
_FUNCTION = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_][\w.]*$")
_DENSIFY = ("densify it: .to_tensor() pads with 0 at the end, or build the batches with "
            "Dataset.padded_batch or keras.utils.pad_sequences")
_PAD = "pad the sequences to one length with keras.utils.pad_sequences (or Dataset.padded_batch)"
_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}|\s*\[Op:\w+\].*$")
_FORMS = "expected x, (x,), (x, y) or (x, y, sample_weight)"


class DataError(ProbeError):
    """The data cannot be used as probe data; the message is one line naming why and what to do."""


@dataclass(frozen=True, eq=False)
class Batch:
    """One batch of probe data, as numpy arrays in the model's input structure.

    Equality is identity (the fields hold arrays); `repr` shows shapes, not values.
    """

    x: Any  # an array, a list/tuple of arrays (model order) or a dict name -> array
    y: Any = None  # an array, a list/dict of arrays (one per output), or None
    sample_weight: Any = None  # per sample (B,) or per step (B, T), or a structure like y, or None
    mask: Any = None  # the user's explicit (B, T) boolean mask, or None
    lengths: Any = None  # the user's explicit (B,) integer lengths, or None

    @property
    def size(self) -> int:
        """The number of samples."""
        return int(_leaves(self.x, "x")[0][1].shape[0])

    def __repr__(self) -> str:
        parts = [f"size={self.size}", f"x={_shapes(self.x)}"]
        parts += [f"{name}={_shapes(value)}" for name, value in
                  (("y", self.y), ("sample_weight", self.sample_weight), ("mask", self.mask),
                   ("lengths", self.lengths)) if value is not None]
        return f"Batch({', '.join(parts)})"


def read_batches(data: Any, *, batches: int = 1, rows: int = 32) -> list[Batch]:
    """The first `batches` batches of `data`, each cut to at most `rows` samples.

    Args:
        data: arrays, a list or dict of arrays, an `(x, y[, sample_weight])`
            tuple, an npz mapping, a `tf.data.Dataset`, a `keras.utils.PyDataset`,
            a generator or another iterable of batches (module docstring). A
            callable is not called.
        batches: how many batches to read, at least 1.
        rows: the most samples kept per batch, at least 1.

    Returns:
        Between 1 and `batches` batches, the same ones for the same input.

    Raises:
        DataError: the data cannot serve as probe data (one line: why, and the fix).

    Example:
        >>> [b.size for b in read_batches(np.zeros((70, 8)), batches=3, rows=32)]
        [32, 32, 6]
    """
    for name, value in (("batches", batches), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"{name} must be a positive integer, not {value!r}")
    kind = _stream_kind(data)
    if kind is None:
        return _split(_whole(data), batches, rows)
    elements = _read_stream(data, kind, batches)
    out = []
    for index, element in enumerate(elements):
        where = f"batch {index} of the {kind}: "
        batch = _element(element, where)
        if batch.size == 0:
            raise DataError(f"the data is empty: {where[:-2]} has 0 samples; give batches with at least "
                            "one sample")
        out.append(_cut(batch, 0, rows))
    return out


def load_data_option(spec: str) -> Any:
    """What `--data` names: an `.npz` file or `module:function`.

    Args:
        spec: a path to an existing `.npz` file, or `module:function` (a dotted
            attribute path is allowed after the colon). The module is looked up
            with the working folder on `sys.path`, as factory targets are.

    Returns:
        For an `.npz` file, a dict key -> numpy array in the file's order; for
        `module:function`, what the function returned when called with no
        arguments (arrays, a tuple, a dataset, a generator...), for
        `read_batches`.

    Raises:
        DataError: one line starting `--data SPEC:`, saying why and what to do.
    """
    text = os.fspath(spec) if isinstance(spec, os.PathLike) else spec
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"--data {text!r}: give an .npz file or module:function")
    path = Path(text)
    if path.is_dir():
        raise DataError(f"--data {text}: is a directory; give an .npz file (numpy.savez) or module:function")
    if path.exists():
        return _read_npz(path, text)
    if _FUNCTION.match(text):
        return _call_function(text)
    if path.suffix.lower() == ".npz":
        raise DataError(f"--data {text}: no such file")
    raise DataError(f"--data {text}: neither an existing .npz file nor module:function "
                    "(a function that returns the data)")


# --------------------------------------------------------------------------- kinds of data

def _stream_kind(data: Any) -> str | None:
    """What yields batches one at a time ("tf.data.Dataset", ...), or None for a whole dataset."""
    if data is None:
        raise DataError("no data (None); pass arrays, an (x, y) tuple, a tf.data.Dataset, "
                        "a keras.utils.PyDataset or a generator")
    if isinstance(data, (str, bytes, os.PathLike)):
        raise DataError(f"the data is a {type(data).__name__} ({str(data)[:60]!r}), not arrays; "
                        "read an .npz file or module:function with load_data_option (--data)")
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(data, tf.data.Dataset):
        return "tf.data.Dataset"
    if _is_pydataset(data):
        return type(data).__name__
    if isinstance(data, (tuple, list, Mapping)) or hasattr(data, "files") or _array_like(data):
        return None
    if hasattr(data, "__next__"):
        return "generator" if inspect.isgenerator(data) else "iterator"
    if callable(data):
        what = "generator function" if inspect.isgeneratorfunction(data) else (
            "class" if inspect.isclass(data) else "callable")
        raise DataError(f"the data is a {what} ({getattr(data, '__name__', type(data).__name__)}), "
                        "which maskcheck does not call; pass what it returns, or name it as "
                        "--data module:function")
    if hasattr(data, "__iter__"):
        return type(data).__name__
    return None  # a number or an object: _whole says why it cannot serve


def _is_pydataset(data: Any) -> bool:
    keras = sys.modules.get("keras")
    if keras is None:
        return False
    utils = getattr(keras, "utils", None)
    kinds = tuple(k for k in (getattr(utils, "PyDataset", None), getattr(utils, "Sequence", None))
                  if isinstance(k, type))
    return bool(kinds) and isinstance(data, kinds)


def _array_like(value: Any) -> bool:
    return hasattr(value, "__array__") or (hasattr(value, "shape") and hasattr(value, "dtype"))


def _read_stream(data: Any, kind: str, batches: int) -> list[Any]:
    """At most `batches` elements, never more; user code that raises becomes a DataError."""
    if kind == "tf.data.Dataset":
        try:
            elements = list(data.take(batches))
        except Exception as exc:  # tf.errors.* from the user's pipeline
            hint = ""
            if re.search(r"Cannot (batch tensors|add tensor to the batch)", str(exc)):
                hint = "; variable-length sequences need Dataset.padded_batch (or pad them first)"
            raise DataError(f"reading the tf.data.Dataset failed: {type(exc).__name__}: "
                            f"{_first_line(exc)}{hint}") from exc
    elif _is_pydataset(data):
        elements = _read_pydataset(data, kind, batches)
    else:
        iterator = data if hasattr(data, "__next__") else iter(data)
        elements = []
        while len(elements) < batches:
            try:
                elements.append(next(iterator))
            except StopIteration:
                break
            except Exception as exc:  # the user's generator may raise anything
                raise DataError(f"the {kind} raised {type(exc).__name__} at batch {len(elements)}: "
                                f"{_first_line(exc)}") from exc
    if not elements:
        raise DataError(f"the data is empty: the {kind} yielded no batches")
    return elements


def _read_pydataset(data: Any, kind: str, batches: int) -> list[Any]:
    try:
        count = data.num_batches  # falls back to len(); None means infinite
    except NotImplementedError:  # no __len__: Keras's own answer for "unknown", read lazily
        count = None
    except Exception as exc:
        raise DataError(f"{kind}.num_batches raised {type(exc).__name__}: {_first_line(exc)}") from exc
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise DataError(f"{kind}.num_batches is {count!r}; it must be a non-negative int or None")
    elements = []
    for index in range(batches if count is None else min(batches, count)):
        try:
            elements.append(data[index])
        except IndexError:
            if count is None:
                break
            raise DataError(f"{kind}[{index}] raised IndexError, yet it reports {count} batches") from None
        except Exception as exc:  # the user's __getitem__ may raise anything
            raise DataError(f"{kind}[{index}] raised {type(exc).__name__}: {_first_line(exc)}") from exc
    return elements


# --------------------------------------------------------------------------- structure

def _whole(data: Any) -> Batch:
    """A whole dataset held in memory (arrays, a tuple, a list or dict, an npz mapping)."""
    if isinstance(data, tuple):
        return _from_tuple(data, "")
    if isinstance(data, Mapping) or hasattr(data, "files"):
        return _from_mapping(data, "")
    return _batch(data, None, None, None, None, "")


def _element(element: Any, where: str) -> Batch:
    """One element of a stream, read as `Model.fit` reads it (a list is a tuple)."""
    if isinstance(element, list):
        element = tuple(element)
    if isinstance(element, tuple):
        return _from_tuple(element, where)
    if isinstance(element, Mapping) or hasattr(element, "files"):
        return _from_mapping(element, where)
    return _batch(element, None, None, None, None, where)


def _from_tuple(data: tuple, where: str) -> Batch:
    if not 1 <= len(data) <= 3:
        subject = where[:-2] if where else "the data"
        raise DataError(f"{subject} is a tuple of {len(data)} items; {_FORMS}")
    x, y, weights = (tuple(data) + (None, None))[:3]
    return _batch(x, y, weights, None, None, where)


def _from_mapping(data: Any, where: str) -> Batch:
    keys = list(data.files) if hasattr(data, "files") else list(data)
    try:
        items = {key: data[key] for key in keys}
    except ValueError as exc:  # np.load(..., allow_pickle=False) and an object array
        raise DataError(f"{where}the .npz holds object arrays (pickled Python objects), which "
                        f"maskcheck does not load; save numeric arrays ({_PAD})") from exc
    if not RESERVED_KEYS.intersection(k for k in keys if isinstance(k, str)):
        return _batch(items, None, None, None, None, where)  # x by input name
    y = _one_of(items, "y", "labels", where)
    weights = _one_of(items, "sample_weight", "sample_weights", where)
    mask, lengths = items.pop("mask", None), items.pop("lengths", None)
    if "x" in items:
        x = items.pop("x")
        if items:
            raise DataError(f"{where}the data has 'x' and also the keys {_names(items)}, which are "
                            f"neither inputs nor known keys; with 'x', the only other keys may be "
                            f"{_names(RESERVED_KEYS - {'x'})}")
    elif items:
        x = items  # the inputs by name
    else:
        raise DataError(f"{where}the data has no inputs (keys {_names(keys)}); put them under 'x' "
                        "or under each input's name")
    return _batch(x, y, weights, mask, lengths, where)


def _one_of(items: dict, key: str, alias: str, where: str) -> Any:
    if key in items and alias in items:
        raise DataError(f"{where}the data has both {key!r} and {alias!r}; keep one of them")
    return items.pop(key, items.pop(alias, None))


def _batch(x: Any, y: Any, weights: Any, mask: Any, lengths: Any, where: str) -> Batch:
    """Converted, checked arrays; `where` prefixes messages about stream elements."""
    batch = Batch(_arrays(x, "x", where, optional=False), _arrays(y, "y", where),
                  _arrays(weights, "sample_weight", where),
                  _mask(mask, where), _lengths(lengths, where))
    sizes = [(part, int(a.shape[0])) for value, name in
             ((batch.x, "x"), (batch.y, "y"), (batch.sample_weight, "sample_weight"),
              (batch.mask, "mask"), (batch.lengths, "lengths"))
             if value is not None for part, a in _leaves(value, name)]
    first_part, first = sizes[0]
    for part, size in sizes[1:]:
        if size != first:
            raise DataError(f"{where}unequal batch sizes: {first_part} has {first} samples but {part} "
                            f"has {size}; every array of a batch needs the same first (batch) axis")
    if first == 0 and not where:
        raise DataError(f"the data is empty: {first_part} has 0 samples; give at least one sample")
    return batch


def _arrays(value: Any, part: str, where: str, *, optional: bool = True) -> Any:
    """`value` with every leaf a numpy array, in the same structure (dict, list, tuple)."""
    if value is None:
        if optional:
            return None
        raise DataError(f"{where}{part} is None; the inputs must be arrays with a batch axis")
    if isinstance(value, Mapping):
        if not value:
            raise DataError(f"{where}{part} is an empty dict; it needs one array per name")
        return {key: _arrays(item, f"{part}[{key!r}]", where, optional=optional)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)) and not _plain(value):
        if not value:
            raise DataError(f"{where}{part} is an empty {type(value).__name__}; it needs one array each")
        items = [_arrays(item, f"{part}[{i}]", where, optional=optional) for i, item in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    return _leaf(value, part, where)


def _plain(value: Any) -> bool:
    """Nested lists of Python numbers or strings: one array, not a structure of several."""
    import numpy as np

    if isinstance(value, (list, tuple)):
        return bool(value) and all(_plain(item) for item in value)
    return isinstance(value, (bool, int, float, str, bytes, np.generic))


def _leaf(value: Any, part: str, where: str) -> Any:
    import numpy as np

    name = type(value).__name__
    module = type(value).__module__ or ""
    if "Ragged" in name:
        raise DataError(f"{where}{part} is a tf.RaggedTensor (sequences of different lengths); {_DENSIFY}")
    if "Sparse" in name and module.startswith(("tensorflow", "keras")):
        raise DataError(f"{where}{part} is a tf.SparseTensor; densify it with tf.sparse.to_dense")
    if module.startswith("scipy.sparse"):
        raise DataError(f"{where}{part} is a scipy sparse matrix; densify it with .toarray()")
    if isinstance(value, (str, bytes)):
        raise DataError(f"{where}{part} is a string; {_strings()}")
    try:
        array = value.numpy() if callable(getattr(value, "numpy", None)) else np.asarray(value)
        array = np.asarray(array)
    except ValueError as exc:
        if isinstance(value, (list, tuple)) and "inhomogeneous" in str(exc):
            raise DataError(f"{where}{part} holds sequences of different lengths (ragged); {_PAD}") from exc
        raise DataError(f"{where}{part} is a {name}, not an array: {_first_line(exc)}") from exc
    except Exception as exc:
        raise DataError(f"{where}{part} is a {name}, not an array: {_first_line(exc)}") from exc
    kind = array.dtype.kind
    if kind in "USa" or (kind == "O" and array.size and isinstance(array.flat[0], (str, bytes))):
        raise DataError(f"{where}{part} holds strings (dtype {array.dtype}); {_strings()}")
    if kind == "O":
        if array.size and isinstance(array.flat[0], (list, tuple, np.ndarray)):
            raise DataError(f"{where}{part} is an object array of sequences (ragged); {_PAD}")
        what = f"an instance of {name}" if array.ndim == 0 else "an array of Python objects (dtype object)"
        raise DataError(f"{where}{part} is {what}, not numbers; probe data must be numeric arrays")
    if kind not in "biuf":
        raise DataError(f"{where}{part} has dtype {array.dtype}; probe data must be bool, int or float")
    if array.ndim == 0:
        raise DataError(f"{where}{part} is a single number (0-d, no batch axis); give arrays a leading "
                        "batch axis (batch a tf.data.Dataset with .batch(n))")
    return array


def _strings() -> str:
    return ("probe data must be numbers: pass the token ids (e.g. from keras.layers.TextVectorization "
            "or a tokenizer), not raw text")


def _mask(mask: Any, where: str) -> Any:
    import numpy as np

    if mask is None:
        return None
    if isinstance(mask, (Mapping, list, tuple)) and not _plain(mask):
        raise DataError(f"{where}mask must be one (batch, time) array, not a {type(mask).__name__}")
    array = _leaf(mask, "mask", where)
    if array.ndim < 2:
        raise DataError(f"{where}mask has shape {array.shape}; it must be (batch, time), "
                        "True at real steps and False at padding")
    if array.dtype.kind != "b":
        if not np.isin(array, (0, 1)).all():
            raise DataError(f"{where}mask holds values other than 0 and 1; it must be boolean "
                            "(True at real steps, False at padding)")
        array = array != 0
    return array


def _lengths(lengths: Any, where: str) -> Any:
    import numpy as np

    if lengths is None:
        return None
    if isinstance(lengths, (Mapping, list, tuple)) and not _plain(lengths):
        raise DataError(f"{where}lengths must be one (batch,) array, not a {type(lengths).__name__}")
    array = _leaf(lengths, "lengths", where)
    if array.ndim != 1:
        raise DataError(f"{where}lengths has shape {array.shape}; it must be (batch,), "
                        "the number of real steps of each sample")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array))):
        raise DataError(f"{where}lengths holds non-integer values; give whole numbers of steps")
    if array.dtype.kind not in "iuf" or (array.size and array.min() < 0):
        raise DataError(f"{where}lengths must be non-negative integers (real steps per sample)")
    return array.astype(np.int64)


# --------------------------------------------------------------------------- cutting

def _split(batch: Batch, batches: int, rows: int) -> list[Batch]:
    count = min(batches, -(-batch.size // rows))
    return [_cut(batch, k * rows, rows) for k in range(count)]


def _cut(batch: Batch, start: int, rows: int) -> Batch:
    def cut(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, dict):
            return {key: cut(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(cut(item) for item in value)
        return value[start:start + rows].copy()  # a copy: nothing later writes into the user's data

    return Batch(cut(batch.x), cut(batch.y), cut(batch.sample_weight), cut(batch.mask), cut(batch.lengths))


def _leaves(value: Any, part: str) -> list[tuple[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, f"{part}[{key!r}]")]
    if isinstance(value, (list, tuple)):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{part}[{i}]")]
    return [(part, value)]


def _shapes(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key!r}: {_shapes(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_shapes(item) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if value is None:
        return "None"
    return f"{value.dtype}{tuple(value.shape)}"


def _names(keys: Any) -> str:
    return ", ".join(repr(k) for k in sorted(keys, key=str))


def _first_line(exc: BaseException) -> str:
    """The message's first line, without TensorFlow's `{{function_node ...}}` and `[Op:...]` noise."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines[0].split()) if lines else type(exc).__name__
    text = _TF_NOISE.sub("", text).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# --------------------------------------------------------------------------- --data

def _read_npz(path: Path, spec: str) -> dict[str, Any]:
    import numpy as np

    if not zipfile.is_zipfile(path):
        raise DataError(f"--data {spec}: not a valid .npz file (not a zip archive, or truncated); write it with "
                        "numpy.savez(path, x=..., y=...)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            items = {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"--data {spec}: the .npz holds object arrays (pickled Python objects), "
                            f"which maskcheck does not load for safety; save numeric arrays "
                            f"({_PAD})") from exc
        raise DataError(f"--data {spec}: damaged .npz file: {_first_line(exc)}") from exc
    except Exception as exc:  # zipfile.BadZipFile, zlib.error, EOFError, OSError
        raise DataError(f"--data {spec}: damaged .npz file: {type(exc).__name__}: {_first_line(exc)}") from exc
    for key, value in items.items():
        if not isinstance(value, np.ndarray):
            raise DataError(f"--data {spec}: member {key!r} is not a numpy array; "
                            "write the file with numpy.savez")
    if not items:
        raise DataError(f"--data {spec}: the .npz holds no arrays")
    return items


def _allow_cwd_imports() -> None:
    """As `maskcheck.loading` does for factories: the working folder is importable, like `python -m`."""
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")


def _call_function(spec: str) -> Any:
    _allow_cwd_imports()
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except RUN_STOPS:
        raise
    except BaseException as exc:  # the user's module may raise anything, sys.exit included
        raise DataError(f"--data {spec}: cannot import {module_name!r}: {user_exit(exc, verb=False)}") from exc
    function: Any = module
    for part in attr.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise DataError(f"--data {spec}: module {module_name!r} has no attribute {attr!r}")
    if not callable(function):
        raise DataError(f"--data {spec}: {attr!r} is not callable ({type(function).__name__}); "
                        "name a function that returns the data")
    try:
        result = function()
    except RUN_STOPS:
        raise
    except BaseException as exc:
        raise DataError(f"--data {spec}: {attr}() {user_exit(exc)}") from exc
    if result is None:
        raise DataError(f"--data {spec}: {attr}() returned None; return arrays, an (x, y) tuple, "
                        "a tf.data.Dataset, a keras.utils.PyDataset or a generator")
    return result
