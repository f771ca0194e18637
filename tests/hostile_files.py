"""Hostile model files, built at test time (no stored binaries) for tests/test_hostile.py.

Each file carries a payload that would leave a trace if it ran: a marker file
under `models/markers/`, a file fetched by `get_file` into `models/fetched/`, or
an archive member written outside the models folder. `build(folder)` writes
every file of `CASES` beside one clean twin.
"""

from __future__ import annotations

import copy
import hashlib
import json
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLEAN = "clean.keras"
MIB = 1 << 20
DEPTH = 100_000


@dataclass(frozen=True)
class Case:
    """One hostile file and the refusal it must get (`type` of the target error)."""

    name: str
    error_type: str
    words: str  # a fragment the one-line reason must contain ("" for none)
    attack: str  # what the file tries


# Every refusal of something that would run code or read outside the archive is UnsafeModel,
# worded from Keras's own reason; a legacy .h5 names no module, so os.system there is an
# unknown custom object. The registered_name mismatch is Keras's own ValueError.
CASES = (
    # Python bytecode that runs when the model is rebuilt.
    Case("lambda.keras", "UnsafeModel", "--unsafe", "Lambda bytecode in a .keras archive"),
    Case("lambda.h5", "UnsafeModel", "--unsafe", "Lambda bytecode in a legacy .h5 file"),
    Case("lambda_activation.keras", "UnsafeModel", "Python lambda", "a serialized Python lambda as an activation"),
    Case("deserialize_lambda.h5", "UnsafeModel", "--unsafe",
         "a legacy .h5 layer named `deserialize` (found in keras.layers) wrapping a Lambda"),
    # Arbitrary module / class_name: as a layer class, as a function the graph calls
    # with chosen arguments, as a layer argument, inside a Lambda, behind a registered name.
    Case("os_system_layer.keras", "UnsafeModel", "os.system", "os.system as a layer class"),
    Case("os_system_call.keras", "UnsafeModel", "os.system", "os.system as a layer called with a command"),
    Case("popen_layer.keras", "UnsafeModel", "subprocess.Popen", "subprocess.Popen as a layer class"),
    Case("eval_activation.keras", "UnsafeModel", "builtins.eval", "builtins.eval as an activation"),
    Case("system_activation.keras", "UnsafeModel", "os.system", "os.system as an activation"),
    Case("lambda_named_function.keras", "UnsafeModel", "os.system", "a Lambda whose function is os.system"),
    Case("registered_outside.keras", "ValueError", "registered_name",
         "a Keras Dense whose registered_name points at subprocess.Popen"),
    Case("os_system_layer.h5", "UnknownCustomObject", "'system'", "os.system as a layer in a legacy .h5"),
    # Non-modeling Keras APIs smuggled in as layers.
    Case("get_file_call.keras", "UnsafeModel", "get_file", "keras.utils.get_file called with a file:// URL"),
    Case("get_file_layer.keras", "UnsafeModel", "get_file", "keras.utils.get_file as a layer class"),
    Case("get_file_private.keras", "UnsafeModel", "get_file", "get_file by its private module path"),
    Case("unsafe_then_lambda.keras", "UnsafeModel", "enable_unsafe_deserialization",
         "keras.config.enable_unsafe_deserialization as a layer, then a Lambda"),
    Case("unsafe_private_then_lambda.keras", "UnsafeModel", "enable_unsafe_deserialization",
         "enable_unsafe_deserialization by its private module path, then a Lambda"),
    # Code and files outside the archive.
    Case("tfsm.keras", "UnsafeModel", "TFSMLayer", "a TFSMLayer loading a SavedModel whose graph writes a file"),
    Case("vocabulary_file.keras", "UnsafeModel", "vocabulary file", "a StringLookup reading a vocabulary file outside "
         "the archive"),
    # Archive members that would land outside an extraction folder.
    Case("traversal.keras", "UnsafeArchive", "", "a ../ member"),
    Case("absolute.keras", "UnsafeArchive", "", "an absolute member path"),
    Case("symlink.keras", "UnsafeArchive", "", "a symlink member pointing outside the archive"),
    # Archive and JSON bombs, each over a default cap.
    Case("config_bomb.keras", "ArchiveTooLarge", "", "config.json that inflates to 24 MiB"),
    Case("ratio_bomb.keras", "ArchiveTooLarge", "", "a member with a compression ratio near 1000"),
    Case("size_bomb.keras", "ArchiveTooLarge", "", "a zip directory claiming 65 GiB uncompressed"),
    Case("json_list.keras", "ArchiveTooLarge", "", "config.json holding a 20 MiB JSON list"),
    Case("deep_list.keras", "ArchiveTooLarge", "", f"config.json nested {DEPTH} lists deep"),
    Case("deep_dict.keras", "ArchiveTooLarge", "", f"config.json nested {DEPTH} objects deep"),
)


def marker(folder: Path, name: str) -> Path:
    """The file the payload of case `name` would create if it ran."""
    return folder / "markers" / name


def escape_name(folder: Path) -> str:
    """The file name archive members aim at, one folder above `folder` (unique per folder)."""
    return f"maskcheck-escaped-{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]}.txt"


def payload_lambda(path: Path) -> Callable[[Any], Any]:
    """A function whose bytecode touches `path` each time it is called."""
    return eval(f"lambda t: (__import__('pathlib').Path({str(path)!r}).touch(), t)[1]")  # noqa: S307


# -- the clean base and small editing tools -----------------------------------

def base_model() -> Any:
    import keras

    x = keras.Input((None, 4), name="x")
    return keras.Model(x, keras.layers.Dense(2, name="dense")(x), name="clean")


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path: Path, members: dict[str, bytes], extra: Callable[[zipfile.ZipFile], None] | None = None) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if extra is not None:
            extra(archive)


def _replace_layer(config: dict, entry: dict, kwargs: dict | None = None) -> dict:
    """`config` with its Dense layer replaced by `entry` (same name and inputs).

    With `kwargs`, the node calls the replacement with them instead of the input
    tensor: how a function smuggled in as a layer gets called with chosen arguments.
    """
    config = copy.deepcopy(config)
    layers = config["config"]["layers"]
    new = {**entry, "name": layers[1]["name"], "inbound_nodes": copy.deepcopy(layers[1]["inbound_nodes"])}
    if kwargs is not None:
        new["inbound_nodes"][0]["kwargs"] = kwargs
    layers[1] = new
    return config


def _with_activation(config: dict, activation: Any) -> dict:
    config = copy.deepcopy(config)
    config["config"]["layers"][1]["config"]["activation"] = activation
    return config


def _function(module: str, name: str) -> dict:
    """A serialized function reference, as Keras writes `activation="relu"`."""
    return {"module": module, "class_name": "function", "config": name, "registered_name": name}


def _class(module: str, name: str, config: dict) -> dict:
    return {"module": module, "class_name": name, "config": config, "registered_name": None}


def _lambda_function(folder: Path, name: str) -> dict:
    """The `function` entry of a Lambda layer config whose payload touches marker `name`."""
    import keras

    layer = keras.layers.Lambda(payload_lambda(marker(folder, name)))
    return keras.saving.serialize_keras_object(layer)["config"]["function"]


def _symlink(name: str) -> zipfile.ZipInfo:
    """A member that unzip would create as a symbolic link; its data is the link target."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, so the mode bits below mean a symlink
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _forged_size(archive: zipfile.ZipFile) -> None:
    """A small member whose zip-directory entry claims 65 GiB (its local header stays honest)."""
    archive.writestr("assets/huge.bin", bytes(1024))
    archive.filelist[-1].file_size = 65 << 30


# -- builders that the liveness test also uses --------------------------------

def write_lambda_model(path: Path, folder: Path) -> None:
    """A model whose Lambda touches the marker of `path.name` (in .keras or legacy .h5 form)."""
    import keras

    x = keras.Input((None, 4), name="x")
    keras.Model(x, keras.layers.Lambda(payload_lambda(marker(folder, path.name)), name="dense")(x)).save(path)
    marker(folder, path.name).unlink(missing_ok=True)  # building the model called the function once


def write_savedmodel(path: Path, marker_path: Path) -> None:
    """A tiny SavedModel whose `serve` graph writes `marker_path` each time it runs (a TF op, no Python)."""
    import tensorflow as tf

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
        def serve(self, x: Any) -> Any:
            tf.io.write_file(str(marker_path), "ran")
            return x[..., :2] * 2.0

    module = Writer()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def write_tfsm_model(path: Path, folder: Path, base: dict[str, bytes]) -> None:
    """A .keras whose layer is a TFSMLayer over a SavedModel in `folder/savedmodel` (outside the archive)."""
    saved = folder / "savedmodel"
    write_savedmodel(saved, marker(folder, path.name))
    config = _replace_layer(json.loads(base["config.json"]), _class("keras.layers", "TFSMLayer", {
        "name": "dense", "trainable": True, "dtype": "float32", "filepath": str(saved),
        "call_endpoint": "serve", "call_training_endpoint": None}))
    _write(path, {**base, "config.json": json.dumps(config).encode()})


def write_h5_with_layer(path: Path, folder: Path, class_name: str, config: dict,
                        module: str | None = None, weights: bool = True) -> None:
    """A legacy HDF5 model whose second layer is `class_name` (the model_config attribute by hand).

    Without `weights` the base layer holds none, so a replacement without weights can load.
    """
    import h5py
    import keras

    if weights:
        base_model().save(path)
    else:
        x = keras.Input((None, 4), name="x")
        keras.Model(x, keras.layers.Activation("linear", name="dense")(x), name="clean").save(path)
    with h5py.File(path, "r+") as handle:
        model_config = json.loads(handle.attrs["model_config"])
        layer = model_config["config"]["layers"][1]
        layer["class_name"] = class_name
        if module is not None:  # legacy configs name only a class
            layer.update(module=module, registered_name=class_name)
        layer["config"] = config
        handle.attrs["model_config"] = json.dumps(model_config)


def write_clean(folder: Path) -> dict[str, bytes]:
    """Save the clean twin in `folder` (with an empty `markers/`); return its archive members."""
    (folder / "markers").mkdir(parents=True, exist_ok=True)
    base_model().save(folder / CLEAN)
    return _members(folder / CLEAN)


def write_code_payloads(folder: Path, base: dict[str, bytes]) -> tuple[str, ...]:
    """The files whose payload is code (Python or a TF graph); with --unsafe each one runs it."""
    for name in ("lambda.keras", "lambda.h5"):
        write_lambda_model(folder / name, folder)
    config = _with_activation(json.loads(base["config.json"]), _serialized_lambda(folder, "lambda_activation.keras"))
    _write(folder / "lambda_activation.keras", {**base, "config.json": json.dumps(config).encode()})
    write_h5_with_layer(folder / "deserialize_lambda.h5", folder, "deserialize", {
        "config": {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                   "config": {"name": "dense", "function": _lambda_function(folder, "deserialize_lambda.h5")}}},
        weights=False)
    write_tfsm_model(folder / "tfsm.keras", folder, base)
    return ("lambda.keras", "lambda.h5", "lambda_activation.keras", "deserialize_lambda.h5", "tfsm.keras")


# -- all of them ----------------------------------------------------------------

def build(folder: Path) -> None:
    """Write the clean twin and the file of every case in `CASES` into `folder`.

    Payloads aim at `folder/markers/`, `folder/fetched/` and `folder.parent`, so a
    test can prove that none of them ran.
    """
    base = write_clean(folder)
    config = json.loads(base["config.json"])
    files: dict[str, Any] = dict.fromkeys(write_code_payloads(folder, base))  # name -> members, None: written

    def edited(config_: Any) -> dict[str, bytes]:
        return {**base, "config.json": json.dumps(config_).encode()}

    command = f"touch {marker(folder, 'os_system')}"
    files["os_system_layer.keras"] = edited(_replace_layer(config, _class("os", "system", {"command": command})))
    files["os_system_call.keras"] = edited(_replace_layer(config, _function("os", "system"),
                                                          kwargs={"command": command}))
    files["popen_layer.keras"] = edited(_replace_layer(config, _class("subprocess", "Popen", {
        "args": ["touch", str(marker(folder, "popen"))]})))
    files["eval_activation.keras"] = edited(_with_activation(config, _function("builtins", "eval")))
    files["system_activation.keras"] = edited(_with_activation(config, _function("os", "system")))
    files["lambda_named_function.keras"] = edited(_replace_layer(config, _class("keras.layers", "Lambda", {
        "name": "dense", "function": _function("os", "system"), "arguments": {"command": command}})))
    files["registered_outside.keras"] = edited(_replace_layer(
        config, {**config["config"]["layers"][1], "registered_name": "subprocess>Popen"}))
    write_h5_with_layer(folder / "os_system_layer.h5", folder, "system", {"command": command, "name": "dense"},
                        module="os")
    files["os_system_layer.h5"] = None

    source = folder / "get_file_source.txt"
    source.write_text("fetched\n")
    fetch = {"fname": "fetched.txt", "origin": source.as_uri(), "cache_dir": str(folder / "fetched"),
             "cache_subdir": "."}
    files["get_file_call.keras"] = edited(_replace_layer(config, _function("keras.utils", "get_file"),
                                                         kwargs=fetch))
    files["get_file_layer.keras"] = edited(_replace_layer(config, _class("keras.utils", "get_file", fetch)))
    files["get_file_private.keras"] = edited(_replace_layer(
        config, _function("keras.src.utils.file_utils", "get_file"), kwargs=fetch))
    for name, module in (("unsafe_then_lambda.keras", "keras.config"),
                         ("unsafe_private_then_lambda.keras", "keras.src.saving.serialization_lib")):
        hostile = _replace_layer(config, _function(module, "enable_unsafe_deserialization"), kwargs={})
        hostile["config"]["layers"].append({
            **_class("keras.layers", "Lambda", {"name": "payload", "function": _lambda_function(folder, name)}),
            "name": "payload", "inbound_nodes": copy.deepcopy(config["config"]["layers"][1]["inbound_nodes"])})
        hostile["config"]["output_layers"] = ["payload", 0, 0]
        files[name] = edited(hostile)

    secret = folder / "secret.txt"
    secret.write_text("alpha\nbeta\n")
    files["vocabulary_file.keras"] = edited(_replace_layer(config, _class("keras.layers", "StringLookup", {
        "name": "dense", "vocabulary": str(secret), "output_mode": "int"})))

    escape = escape_name(folder)
    files["traversal.keras"] = {**base, f"../{escape}": b"escaped\n"}
    files["absolute.keras"] = {**base, str(folder.parent / escape): b"escaped\n"}
    _write(folder / "symlink.keras", base,
           lambda archive: archive.writestr(_symlink("assets/link"), str(folder.parent / escape)))
    files["symlink.keras"] = None

    files["config_bomb.keras"] = {**base, "config.json": base["config.json"] + b" " * (24 * MIB)}
    files["ratio_bomb.keras"] = {**base, "assets/zeros.bin": bytes(48 * MIB)}
    _write(folder / "size_bomb.keras", base, _forged_size)
    files["size_bomb.keras"] = None
    files["json_list.keras"] = edited(dict(config, padding=[0] * (10 * MIB)))
    files["deep_list.keras"] = {**base, "config.json": b"[" * DEPTH + b"]" * DEPTH}
    files["deep_dict.keras"] = {**base, "config.json": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH}

    for name, members in files.items():
        if members is not None:
            _write(folder / name, members)
    assert sorted(files) == sorted(case.name for case in CASES), "CASES and build() disagree"
    leftovers = sorted(p.name for p in (folder / "markers").iterdir())
    assert not leftovers, f"building ran a payload: {leftovers}"


def _serialized_lambda(folder: Path, name: str) -> dict:
    """A Python lambda as `serialize_keras_object` writes it (`__lambda__`), touching marker `name`."""
    from keras.src.utils.python_utils import func_dump

    return {"class_name": "__lambda__", "config": {"value": func_dump(payload_lambda(marker(folder, name)))}}
