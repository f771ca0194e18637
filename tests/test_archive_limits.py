"""Hostile model archives are refused from the zip directory, before Keras inflates them,
and loading never writes beside the user's file.

Every archive here is built at test time from a real fixture model: its own
config.json and weights, with one part made hostile (a bomb, a deep config, a
member named outside the archive, a symlink). Each cap has a case refused under
the defaults or a lowered setting and a real model that still loads.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from maskcheck.config import Config, ConfigError, PYPROJECT_KEYS, build_config
from maskcheck.loading import ArchiveLimits, LoadError, Target, Terminated, json_depth, load_target

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"
CLEAN = MODELS / "lstm_tagger.keras"
MIB = 1 << 20


def _members(source: Path = CLEAN) -> dict[str, bytes]:
    with zipfile.ZipFile(source) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path: Path, members: dict[str, bytes], deflated: frozenset[str] = frozenset()) -> Path:
    """An archive as Keras writes it (members stored), but `deflated` members compressed."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            kind = zipfile.ZIP_DEFLATED if name in deflated else zipfile.ZIP_STORED
            archive.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data, compress_type=kind)
    return path


def _write_repeated(archive: zipfile.ZipFile, name: str, size: int, fill: bytes = b" ") -> None:
    """A member of `size` bytes of `fill`, deflated as it streams (never held whole in memory)."""
    chunk = fill * MIB
    info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as out:
        for start in range(0, size, MIB):
            out.write(chunk[: min(MIB, size - start)])


def _bomb(path: Path, name: str, size: int, fill: bytes = b" ", *, extra: dict[str, bytes] | None = None) -> Path:
    """The clean model's members with `name` replaced by `size` inflated bytes of `fill`."""
    members = {**_members(), **(extra or {})}
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            if member != name:
                archive.writestr(zipfile.ZipInfo(member, (2024, 1, 1, 0, 0, 0)), data,
                                 compress_type=zipfile.ZIP_STORED)
        _write_repeated(archive, name, size, fill)
    return path


def _load(path: Path, **limits: int):
    return load_target(Target(path.name, "file", str(path)), unsafe=False, limits=ArchiveLimits(**limits))


def _refused(path: Path, type_: str = "ArchiveTooLarge", **limits: int) -> LoadError:
    """The load is refused fast and small: under a second, under 64 MiB of Python memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(LoadError) as caught:
            _load(path, **limits)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.type == type_, caught.value.message
    assert "\n" not in caught.value.message
    assert elapsed < 1.0, f"refusal took {elapsed:.2f} s"
    assert peak < 64 * MIB, f"refusal peaked at {peak / MIB:.0f} MiB"
    return caught.value


# --- the defaults pass every real model ------------------------------------------------


def test_defaults_pass_every_fixture_model() -> None:
    """The zoo's archives are within every default cap (keras-hub's are measured in the
    ArchiveLimits docstring's terms: config.json <= 3 KB, depth <= 8, all stored)."""
    from maskcheck.loading import _check_keras_archive

    models = sorted(MODELS.glob("*.keras"))
    assert len(models) >= 20
    for model in models:
        _check_keras_archive(model, ArchiveLimits())


def test_a_real_model_loads_under_the_defaults() -> None:
    model, data = _load(CLEAN)
    assert model.name == "lstm_tagger" and data is None


def test_json_depth_ignores_brackets_in_strings_and_escapes() -> None:
    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'{"x": "[[[[\\"[[{", "y": "\\\\"}') == 1
    assert json_depth(b'"[[["') == 0
    deep = b"[" * 5000 + b"]" * 5000
    assert json_depth(deep) == 5000


# --- config.json size -------------------------------------------------------------------


def test_config_bomb_is_refused_under_the_default_cap(tmp_path: Path) -> None:
    """17 MiB of config.json from about 17 KB on disk: refused from the directory alone."""
    bomb = _bomb(tmp_path / "config_bomb.keras", "config.json", 17 * MIB)
    assert bomb.stat().st_size < 200_000
    error = _refused(bomb)
    assert "config.json is 17.0 MiB uncompressed" in error.message
    assert "--max-config-mb cap of 8 MiB" in error.message and "--max-config-mb N" in error.message


def test_config_size_cap_is_a_setting(tmp_path: Path) -> None:
    """A real model whose config.json is 2 MiB (indented): refused at 1 MiB, loads by default."""
    members = _members()
    config = json.loads(members["config.json"])
    members["config.json"] = json.dumps(config, indent=2000).encode()
    assert len(members["config.json"]) > 2 * MIB
    wide = _write(tmp_path / "wide.keras", members)
    error = _refused(wide, config_mb=1)
    assert "--max-config-mb cap of 1 MiB" in error.message
    assert _load(wide)[0].name == "lstm_tagger"


# --- config.json depth --------------------------------------------------------------------


def test_deep_config_is_refused_under_the_default_cap(tmp_path: Path) -> None:
    members = _members()
    members["config.json"] = b"[" * 100_000 + b"]" * 100_000
    error = _refused(_write(tmp_path / "deep.keras", members))
    assert "config.json nests 100000 levels deep" in error.message
    assert "--max-config-depth cap of 128" in error.message


def test_depth_cap_is_a_setting() -> None:
    error = _refused(CLEAN, config_depth=5)  # the fixture nests 10 deep
    assert "nests 10 levels deep, over the --max-config-depth cap of 5" in error.message


# --- total size and compression ratio -------------------------------------------------------


def test_archive_size_cap_is_a_setting(tmp_path: Path) -> None:
    """A real model carrying 2 MiB of stored assets: refused at 1 MiB, loads by default."""
    blob = np.random.default_rng(0).bytes(2 * MIB)
    big = _write(tmp_path / "assets.keras", {**_members(), "assets/blob.bin": blob})
    error = _refused(big, archive_mb=1)
    assert "archive is 2.0 MiB uncompressed, over the --max-archive-mb cap of 1 MiB" in error.message
    assert _load(big)[0].name == "lstm_tagger"


def test_member_bomb_is_refused_though_a_stored_member_dilutes_the_archive(tmp_path: Path) -> None:
    """64 MiB of weights from ~64 KB: the archive as a whole inflates far less than 100x
    because of 2 MiB of stored assets, but the member's own ratio gives it away."""
    blob = np.random.default_rng(0).bytes(2 * MIB)
    bomb = _bomb(tmp_path / "weights_bomb.keras", "model.weights.h5", 64 * MIB, fill=b"\0",
                 extra={"assets/blob.bin": blob})
    with zipfile.ZipFile(bomb) as archive:
        infos = archive.infolist()
    assert sum(i.file_size for i in infos) / sum(i.compress_size for i in infos) < 100
    error = _refused(bomb)
    assert "archive member 'model.weights.h5' inflates" in error.message
    assert "--max-compression-ratio cap of 100" in error.message


def test_many_small_bombs_are_refused_by_the_whole_archive_ratio(tmp_path: Path) -> None:
    """40 members each just under the per-member floor: only the total ratio sees them."""
    path = tmp_path / "small_bombs.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in _members().items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)
        for index in range(40):
            _write_repeated(archive, f"assets/part{index}.bin", MIB - 1, fill=b"\0")
    error = _refused(path)
    assert error.message.startswith("archive inflates ") and "--max-compression-ratio" in error.message


def test_compressed_model_loads_and_ratio_cap_is_a_setting(tmp_path: Path) -> None:
    """A real model whose members are deflated (some zip tools recompress), with a 2 MiB
    vocabulary-like asset that deflates about 2x: loads by default, refused at ratio 1."""
    members = _members()
    members["assets/notes.txt"] = np.random.default_rng(0).bytes(MIB).hex().encode()
    packed = _write(tmp_path / "packed.keras", members, deflated=frozenset(members))
    assert _load(packed)[0].name == "lstm_tagger"
    error = _refused(packed, compression_ratio=1)
    assert "archive member 'assets/notes.txt' inflates" in error.message


# --- the command line -----------------------------------------------------------------------


def test_cli_refuses_a_bomb_with_exit_2_and_one_line(tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "config_bomb.keras", "config.json", 17 * MIB)
    result = subprocess.run([sys.executable, "-m", "maskcheck", str(bomb), str(CLEAN), "--mode", "static"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "config_bomb.keras" in line]
    assert len(lines) == 1 and "[ArchiveTooLarge]" in lines[0] and "--max-config-mb" in lines[0]
    assert "Checked 2 models" in result.stdout  # the clean model was still checked


def test_cli_option_raises_the_cap(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from maskcheck.cli import main

    refused = CliRunner().invoke(main, [str(CLEAN), "--mode", "static", "--max-config-depth", "5"])
    assert refused.exit_code == 2 and "[ArchiveTooLarge]" in refused.output
    passed = CliRunner().invoke(main, [str(CLEAN), "--mode", "static", "--max-config-depth", "10"])
    assert passed.exit_code == 0, passed.output


@pytest.mark.parametrize("option", ["--max-config-mb", "--max-config-depth", "--max-archive-mb",
                                    "--max-compression-ratio"])
def test_caps_must_be_positive_integers(option: str) -> None:
    from click.testing import CliRunner

    from maskcheck.cli import main

    for bad in ("0", "-3", "1.5", "lots"):
        result = CliRunner().invoke(main, [str(CLEAN), option, bad])
        assert result.exit_code == 2 and f"{option} must be an integer >= 1" in result.output


def test_caps_are_pyproject_keys(tmp_path: Path) -> None:
    assert {"max-config-mb", "max-config-depth", "max-archive-mb", "max-compression-ratio"} <= set(PYPROJECT_KEYS)
    (tmp_path / "pyproject.toml").write_text("[tool.maskcheck]\nmax-config-depth = 5\nmax-archive-mb = 2\n")
    config = build_config({}, tmp_path)
    limits = ArchiveLimits.from_config(config)
    assert (limits.config_depth, limits.archive_mb, limits.config_mb) == (5, 2, 8)
    assert ArchiveLimits.from_config(Config()) == ArchiveLimits()
    with pytest.raises(ConfigError, match="--max-compression-ratio must be an integer >= 1"):
        Config.from_values(max_compression_ratio=0)


# --- path traversal and symlinks -------------------------------------------------------------


def _symlink(name: str, target: bytes) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


@pytest.mark.parametrize("name, words", [
    ("../../escaped.txt", "climbs out of the archive"),
    ("assets/../../../etc/cron.d/job", "climbs out of the archive"),
    ("assets\\..\\..\\escaped.txt", "climbs out of the archive"),
    ("/etc/passwd", "absolute path"),
    ("C:/Windows/evil.dll", "absolute path"),
    ("assets/link", "symbolic link"),
])
def test_unsafe_member_names_and_symlinks_are_refused(tmp_path: Path, name: str, words: str) -> None:
    path = tmp_path / "unsafe.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in _members().items():
            archive.writestr(member, data)
        if words == "symbolic link":
            archive.writestr(*_symlink(name, b"/etc/passwd"))
        else:
            archive.writestr(name, b"owned")
    error = _refused(path, "UnsafeArchive")
    assert repr(name) in error.message and words in error.message


def test_plain_member_with_dots_in_its_name_is_fine(tmp_path: Path) -> None:
    path = _write(tmp_path / "dots.keras", {**_members(), "assets/v1..2/notes..txt": b"fine"})
    assert _load(path)[0].name == "lstm_tagger"


# --- checksums: no longer verified up front, still reported ---------------------------------


def test_a_damaged_member_is_a_corrupt_file(tmp_path: Path) -> None:
    raw = bytearray(CLEAN.read_bytes())
    with zipfile.ZipFile(CLEAN) as archive:
        info = archive.getinfo("model.weights.h5")
    name_and_extra = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little") + \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    raw[info.header_offset + 30 + name_and_extra + info.file_size - 64] ^= 0xFF  # inside the data
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(LoadError) as caught:
        _load(damaged)
    assert caught.value.type == "CorruptFile"
    assert "member 'model.weights.h5' fails its checksum" in caught.value.message


def test_a_garbled_compressed_config_is_a_corrupt_file(tmp_path: Path) -> None:
    """config.json is the one member read up front: a broken deflate stream is one line."""
    members = _members()
    path = _write(tmp_path / "garbled.keras", members, deflated=frozenset({"config.json"}))
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("config.json")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start:start + info.compress_size] = bytes(range(256)) * (info.compress_size // 256) + \
        bytes(info.compress_size % 256)
    path.write_bytes(bytes(raw))
    error = _refused(path, "CorruptFile")
    assert error.message.startswith("damaged .keras archive: "), error.message


# --- legacy .h5: the model_config attribute ---------------------------------------------------


@pytest.fixture(scope="module")
def legacy_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(4)(inputs)), name="legacy_mlp")
    path = tmp_path_factory.mktemp("h5") / "legacy.h5"
    model.save(path)
    return path


def _rewrite_config(source: Path, target: Path, config: object) -> Path:
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "r+") as handle:
        handle.attrs["model_config"] = config
    return target


def test_h5_depth_and_size_caps(legacy_h5: Path, tmp_path: Path) -> None:
    assert _load(legacy_h5)[0].name == "legacy_mlp"
    error = _refused(legacy_h5, config_depth=3)
    assert "model_config nests" in error.message and "--max-config-depth cap of 3" in error.message
    config = json.loads(h5py.File(legacy_h5, "r").attrs["model_config"])
    wide = _rewrite_config(legacy_h5, tmp_path / "wide.h5", json.dumps(config, indent=3000))
    error = _refused(wide, config_mb=1)
    assert "model_config is " in error.message and "--max-config-mb cap of 1 MiB" in error.message
    assert _load(wide)[0].name == "legacy_mlp"


def test_h5_training_config_is_capped_too(legacy_h5: Path, tmp_path: Path) -> None:
    """Keras parses training_config as well when it compiles a legacy model."""
    deep = tmp_path / "deep_training.h5"
    deep.write_bytes(legacy_h5.read_bytes())
    with h5py.File(deep, "r+") as handle:
        handle.attrs["training_config"] = "[" * 500 + "]" * 500
    error = _refused(deep)
    assert "training_config nests 500 levels deep" in error.message


def test_h5_fixed_length_config_is_refused_by_its_storage_size(tmp_path: Path) -> None:
    """A fixed-length string's size is known before its value is read (a large attribute
    needs HDF5's dense attribute storage, hence libver="latest")."""
    huge = tmp_path / "fixed.h5"
    with h5py.File(huge, "w", libver="latest") as handle:
        handle.attrs["model_config"] = np.bytes_(b" " * (2 * MIB))
    error = _refused(huge, config_mb=1)
    assert "model_config is 2.0 MiB" in error.message


# --- nothing written beside the model --------------------------------------------------------


@pytest.fixture
def forced_extraction(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, list]:
    """A copy of a real model alone in a folder, with Keras taking its large-weights path
    (extract model.weights.h5 to disk) for it; returns the model's path and, for every
    extraction, where it went and what the model's folder held at that moment.

    The system temporary directory is a fresh folder, so whatever is left there shows.
    """
    from keras.src.saving import saving_lib

    monkeypatch.setattr(saving_lib, "_MEMORY_UPPER_BOUND", 0)  # "not enough memory": extract
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system_tmp"))
    (tmp_path / "system_tmp").mkdir()
    model = tmp_path / "models" / "model.keras"
    model.parent.mkdir()
    model.write_bytes(CLEAN.read_bytes())
    seen: list[tuple[Path, list[str]]] = []
    extract = zipfile.ZipFile.extract

    def spy(self, member, path=None, pwd=None):
        seen.append((Path(path), sorted(os.listdir(model.parent))))
        return extract(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", spy)
    return model, seen


@pytest.mark.parametrize("read_only", [False, True])
def test_large_weights_are_extracted_under_the_system_temp_dir(
        forced_extraction: tuple[Path, list], tmp_path: Path, read_only: bool) -> None:
    from click.testing import CliRunner

    from maskcheck.cli import main

    model, seen = forced_extraction
    if read_only:
        model.parent.chmod(0o555)
    try:
        result = CliRunner().invoke(main, [str(model), "--mode", "static"])
    finally:
        model.parent.chmod(0o755)
    assert result.exit_code in (0, 1), result.output
    assert seen, "Keras did not take its extract-to-disk path"
    for where, listing in seen:
        assert where.is_relative_to(tmp_path / "system_tmp"), where
        assert listing == ["model.keras"]  # nothing beside the model while Keras extracted
    assert sorted(os.listdir(model.parent)) == ["model.keras"]
    assert os.listdir(tmp_path / "system_tmp") == []


@pytest.mark.parametrize("raised", [RuntimeError("weights unreadable"), KeyboardInterrupt(), Terminated()],
                         ids=["error", "ctrl-c", "sigterm"])
def test_temporary_folder_is_removed_when_the_load_raises(
        forced_extraction: tuple[Path, list], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        raised: BaseException) -> None:
    """A failure, Ctrl-C or SIGTERM (the CLI's handler raises Terminated) once the weights
    are extracted: the error goes on its way and the extracted copy is gone."""
    from keras.src.saving import saving_lib

    def interrupted(*args, **kwargs):
        raise raised

    monkeypatch.setattr(saving_lib, "_load_state", interrupted)
    model, seen = forced_extraction
    with pytest.raises(LoadError if isinstance(raised, Exception) else type(raised)):
        _load(model)
    assert seen
    assert os.listdir(tmp_path / "system_tmp") == []
    assert sorted(os.listdir(model.parent)) == ["model.keras"]


def test_an_unusable_temp_dir_is_one_line_not_a_write_beside_the_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    model = tmp_path / "models" / "model.keras"
    model.parent.mkdir()
    model.write_bytes(CLEAN.read_bytes())
    with pytest.raises(LoadError) as caught:
        _load(model)
    assert caught.value.type == "TempDirUnavailable" and "TMPDIR" in caught.value.message
    assert sorted(os.listdir(model.parent)) == ["model.keras"]
