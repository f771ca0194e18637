"""Run settings: one frozen Config built by the CLI (or API) and passed down.

Values come from `[tool.maskcheck]` in the nearest pyproject.toml and from
the command line, which wins. Nothing below this module reads the
environment or the file system for settings.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODES = ("static", "dynamic", "all")
FORMATS = ("text", "json", "sarif", "github", "junit", "html")
FAIL_ON = ("error", "warning", "info", "never")
PADDINGS = ("post", "pre", "both")
DEVICES = ("auto", "cpu", "gpu")
#: the largest --seed: numpy's and TensorFlow's seeds are unsigned 32-bit integers
SEED_MAX = 2**32 - 1
#: `--color`: auto colours text on a terminal (NO_COLOR / FORCE_COLOR decide there)
COLORS = ("auto", "always", "never")


class ConfigError(ValueError):
    """A setting is unknown or has a bad value; the message names it."""


@dataclass(frozen=True)
class Config:
    mode: str = "all"
    format: str = "text"
    output: str | None = None
    select: frozenset[str] | None = None  # None: every rule
    ignore: frozenset[str] = frozenset()
    fail_on: str = "warning"
    imports: tuple[str, ...] = ()
    unsafe: bool = False
    verbose: bool = False
    statistics: bool = False
    color: str = "auto"  # the CLI resolves "auto" against the terminal and environment
    # Probe settings of the dynamic engine (SPEC 5); results are deterministic for a seed.
    padding: str = "both"
    data: str | None = None
    mask_inputs: tuple[tuple[str, str], ...] = ()  # (input name, mask input name)
    padded: tuple[tuple[str, int], ...] = ()  # (input name, axis) declared by hand
    #: SPEC 4 items 4 and 6 (None-length axes and token inputs are padded); False after
    #: `--padded none` / `padded = []`: inputs are padded only where the model or user says
    assume_padding: bool = True
    data_batches: int = 1  # how many batches of --data / data= the probes read
    seed: int = 0
    batch_size: int = 4
    seq_len: int = 12
    atol: float = 1e-5
    rtol: float = 1e-4
    device: str = "auto"
    #: tokens generated per prompt by the generation checks (MC306, MC307)
    generate_steps: int = 4
    # CI adoption (SPEC 5, 6): suppressions by layer path, baselines, unused-suppression report
    per_layer_ignores: tuple[tuple[str, frozenset[str]], ...] = ()  # (layer-path glob, codes)
    baseline: str | None = None
    write_baseline: str | None = None
    warn_unused_ignores: bool = False
    #: directory search (SPEC 5): `exclude` replaces the default excludes (None keeps them),
    #: `extend-exclude` adds to them; globs relative to the pyproject's folder
    exclude: tuple[str, ...] | None = None
    extend_exclude: tuple[str, ...] = ()
    #: caps a model file must meet before it is decompressed or parsed (SPEC 9; defaults as
    #: `maskcheck.loading.ArchiveLimits`): config.json MiB and nesting depth, archive MiB
    #: uncompressed, compression ratio
    max_config_mb: int = 8
    max_config_depth: int = 128
    max_archive_mb: int = 64 * 1024
    max_compression_ratio: int = 100
    source: str | None = field(default=None, compare=False)  # pyproject path, if any

    @classmethod
    def from_values(cls, source: str | None = None, **values: Any) -> "Config":
        """Validate raw values (from TOML or the command line) into a Config."""
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            if key in ("select", "ignore"):
                from maskcheck.rules import resolve_selection  # only when codes are named

                items = _as_list(key, value)
                codes = resolve_selection(items) if items or key == "ignore" else None
                if key == "select" and not items:
                    codes = None
                kwargs[key] = codes
            elif key == "imports":
                kwargs[key] = tuple(_as_list(key, value))
            elif key in ("mode", "format", "fail_on", "padding", "device", "color"):
                allowed = {"mode": MODES, "format": FORMATS, "fail_on": FAIL_ON,
                           "padding": PADDINGS, "device": DEVICES, "color": COLORS}[key]
                if value not in allowed:
                    raise ConfigError(f"{_option(key)} must be one of {', '.join(allowed)}, not {value!r}")
                kwargs[key] = value
            elif key in ("unsafe", "verbose", "statistics", "warn_unused_ignores"):
                if not isinstance(value, bool):
                    raise ConfigError(f"{_option(key)} must be true or false, not {value!r}")
                kwargs[key] = value
            elif key in ("output", "data", "baseline", "write_baseline"):
                kwargs[key] = str(value)
            elif key == "seed":  # numpy and TensorFlow seeds are 32-bit; wider ones wrap
                kwargs[key] = _as_int(key, value, minimum=0, maximum=SEED_MAX)
            elif key in ("batch_size", "seq_len"):
                kwargs[key] = _as_int(key, value, minimum=1)
            elif key in ("atol", "rtol"):
                kwargs[key] = _as_float(key, value)
            elif key == "mask_inputs":
                kwargs[key] = tuple(_split_pair(key, item, "=") for item in _as_list(key, value))
            elif key == "padded":
                items = [v.strip() for v in _as_list(key, value)]
                if not items or items == ["none"]:  # `padded = []` / `--padded none` (SPEC 4.5)
                    kwargs["assume_padding"] = False
                    kwargs[key] = ()
                    continue
                if "none" in items:
                    raise ConfigError("--padded none declares that no input is padded; it cannot "
                                      "be combined with --padded INPUT:AXIS")
                kwargs[key] = tuple((name, _padded_axis(name, axis))
                                    for name, axis in (_split_pair(key, item, ":")
                                                       for item in items))
            elif key == "assume_padding":
                if not isinstance(value, bool):
                    raise ConfigError(f"assume_padding must be true or false, not {value!r}")
                kwargs[key] = value
            elif key == "per_layer_ignores":
                kwargs[key] = _per_layer_ignores(value)
            elif key in ("exclude", "extend_exclude"):
                kwargs[key] = _globs(key, value)
            elif key in ("data_batches", "generate_steps", "max_config_mb", "max_config_depth",
                         "max_archive_mb", "max_compression_ratio"):
                kwargs[key] = _as_int(key, value, minimum=1)
            else:
                raise ConfigError(f"unknown setting {key!r}")
        return cls(source=source, **kwargs)


#: Why `unsafe` is never read from a file: a checkout (its pyproject, its pytest.ini) is
#: what an attacker controls, and safe_mode=False lets a model file run code on load.
UNSAFE_FROM_FILE = ("loading with safe_mode off lets a model file run code, so only the "
                    "person running the check can allow it: pass --unsafe on the command line "
                    "(or unsafe=True to the Python API)")

#: pyproject keys (kebab-case, as on the command line) -> Config fields; never `unsafe`.
PYPROJECT_KEYS = {
    "mode": "mode", "format": "format", "output": "output", "select": "select",
    "ignore": "ignore", "fail-on": "fail_on", "import": "imports",
    "verbose": "verbose", "statistics": "statistics", "padding": "padding", "data": "data",
    "mask-input": "mask_inputs", "padded": "padded", "seed": "seed", "batch-size": "batch_size",
    "seq-len": "seq_len", "atol": "atol", "rtol": "rtol", "device": "device",
    "data-batches": "data_batches", "generate-steps": "generate_steps",
    "per-layer-ignores": "per_layer_ignores", "color": "color",
    "baseline": "baseline", "warn-unused-ignores": "warn_unused_ignores",
    "exclude": "exclude", "extend-exclude": "extend_exclude",
    "max-config-mb": "max_config_mb", "max-config-depth": "max_config_depth",
    "max-archive-mb": "max_archive_mb", "max-compression-ratio": "max_compression_ratio",
}


def _per_layer_ignores(value: Any) -> tuple[tuple[str, frozenset[str]], ...]:
    """`{"encoder/*": ["MC102"], ...}` (codes as a list or a comma string) -> sorted pairs."""
    if not isinstance(value, dict):
        raise ConfigError("per-layer-ignores must be a table of layer-path globs to rule codes, "
                          f"not {value!r}")
    pairs = []
    for glob, codes in value.items():
        if not isinstance(glob, str) or not glob.strip():
            raise ConfigError(f"per-layer-ignores: a key must be a layer-path glob, not {glob!r}")
        from maskcheck.rules import UnknownRuleError, resolve_selection

        entries = _as_list("per_layer_ignores", codes)
        if not entries:
            raise ConfigError(f"per-layer-ignores: {glob!r} lists no rule codes")
        try:
            pairs.append((glob.strip(), resolve_selection(entries)))
        except UnknownRuleError as exc:
            raise ConfigError(f"per-layer-ignores {glob!r}: {exc}") from None
    return tuple(sorted(pairs, key=lambda pair: pair[0]))


def _globs(key: str, value: Any) -> tuple[str, ...]:
    """`exclude = ["legacy", "models/old/**"]`: a list of path globs (a single string is one glob;
    not split on commas, which a glob may hold)."""
    name = key.replace("_", "-")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in items):
        raise ConfigError(f"{name} must be a list of path globs (strings), not {value!r}")
    return tuple(v.strip() for v in items)


def _option(key: str) -> str:
    names = {"imports": "import", "mask_inputs": "mask-input", "per_layer_ignores": "per-layer-ignores"}
    return "--" + names.get(key, key).replace("_", "-")


def _as_int(key: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if (isinstance(value, bool) or number is None or str(number) != str(value).strip()
            or number < minimum or (maximum is not None and number > maximum)):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{_option(key)} must be an integer {bound}, not {value!r}")
    return number


def _as_float(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(value, bool) or not number >= 0 or number == float("inf"):
        raise ConfigError(f"{_option(key)} must be a non-negative number, not {value!r}")
    return number


def _split_pair(key: str, item: str, sep: str) -> tuple[str, str]:
    left, found, right = item.strip().partition(sep)
    if not found or not left or not right:
        shape = "INPUT=MASK" if sep == "=" else "INPUT:AXIS"
        raise ConfigError(f"{_option(key)} expects {shape}, not {item!r}")
    return left.strip(), right.strip()


def _padded_axis(name: str, axis: str) -> int:
    """The AXIS of `--padded NAME:AXIS`: 1 or more (0 is the batch axis; no negative axes)."""
    try:
        number = int(axis)
    except ValueError:
        number = None
    if number == 0:
        raise ConfigError(f"--padded {name}:{axis}: axis 0 is the batch axis; padded axes count "
                          "from 1 (1 is the time axis of a sequence)")
    if number is None or number < 0 or str(number) != axis.strip():
        raise ConfigError(f"--padded {name}:{axis}: AXIS must be an integer >= 1 (axis 0 is the "
                          "batch axis; negative axes are not accepted)")
    return number


def check_declarations(config: Config, inputs: tuple[tuple[str, int], ...], model: str) -> None:
    """Check `--padded` and `--mask-input` against one model's inputs, once its inputs are known.

    A declaration that names an input the model lacks, or an axis its input does not have,
    would otherwise be ignored silently and the check run on a guess (SPEC 9: bad input is
    that target's one-line error).

    Args:
        inputs: the model's inputs as (name, rank) pairs, the rank counting the batch axis.
        model: the model's name, for the message.

    Raises:
        ConfigError: one line naming the declaration and listing the model's inputs.
    """
    ranks = dict(inputs)
    listed = ", ".join(f"{name!r} (rank {rank})" for name, rank in inputs) or "none"
    where = f"model {model!r} has inputs {listed}"
    for name, axis in config.padded:
        if name not in ranks:
            raise ConfigError(f"--padded {name}:{axis}: no input {name!r}; {where}")
        if axis >= ranks[name]:
            raise ConfigError(f"--padded {name}:{axis}: input {name!r} has no axis {axis} (rank "
                              f"{ranks[name]}: axis 0 is the batch axis, the last is "
                              f"{ranks[name] - 1}); {where}")
    for name, mask in config.mask_inputs:
        for named in (name, mask):
            if named not in ranks:
                raise ConfigError(f"--mask-input {name}={mask}: no input {named!r}; {where}")
        if name == mask:
            raise ConfigError(f"--mask-input {name}={mask}: an input cannot be its own mask; "
                              f"{where}")


def api_values(values: dict[str, Any]) -> dict[str, Any]:
    """Python spellings of list settings, as `check()`, the fixture and the marker take them,
    in the command line's: ``mask_inputs={"tokens": "mask"}`` -> ``["tokens=mask"]``,
    ``padded=[("tokens", 1)]`` -> ``["tokens:1"]``, ``import=`` -> ``imports``."""
    values = dict(values)
    if isinstance(values.get("mask_inputs"), dict):
        values["mask_inputs"] = [f"{k}={v}" for k, v in values["mask_inputs"].items()]
    if isinstance(values.get("padded"), (list, tuple)):
        values["padded"] = [item if isinstance(item, str)
                            else f"{item[0]}:{item[1]}" if isinstance(item, (list, tuple)) and len(item) == 2
                            else item for item in values["padded"]]
    if "import" in values:
        values["imports"] = values.pop("import")
    return values


def _as_list(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [v for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple, frozenset, set)) and all(isinstance(v, str) for v in value):
        return [v for item in value for v in item.split(",") if v.strip()]
    raise ConfigError(f"{_option(key)} must be a comma list or a list of strings, not {value!r}")


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above `start` (like ruff and black)."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def read_pyproject(path: Path) -> dict[str, Any]:
    """The [tool.maskcheck] table, with keys mapped to Config fields.

    Raises:
        ConfigError: the file is not valid TOML or a key is unknown.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read [tool.maskcheck]: {exc}") from None
    table = data.get("tool", {}).get("maskcheck", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.maskcheck] must be a table")
    values = {}
    for key, value in table.items():
        if key == "unsafe":
            raise ConfigError(f"{path}: [tool.maskcheck] may not set 'unsafe': {UNSAFE_FROM_FILE}")
        if key not in PYPROJECT_KEYS:
            known = ", ".join(sorted(PYPROJECT_KEYS))
            raise ConfigError(f"{path}: unknown key {key!r} in [tool.maskcheck] (known keys: {known})")
        values[PYPROJECT_KEYS[key]] = value
    return values


def _output_inside(output: str, start: Path, pyproject: Path) -> None:
    """A report path from a file stays inside that file's project: a checkout must not make
    `maskcheck` overwrite files elsewhere (`--output` on the command line may write anywhere)."""
    project = pyproject.parent.resolve()
    written = (start / output).resolve()
    if written != project and project not in written.parents:
        raise ConfigError(f"{pyproject}: [tool.maskcheck] output = {output!r} writes outside the "
                          f"project folder {project}; a configuration file may only write inside "
                          "it (pass --output on the command line to write elsewhere)")


def build_config(cli_values: dict[str, Any], start: Path, *, isolated: bool = False) -> Config:
    """Merge pyproject settings under command-line values (which win); `isolated`
    (`--isolated`) reads no configuration file at all."""
    pyproject = None if isolated else find_pyproject(start)
    merged: dict[str, Any] = {}
    if pyproject is not None:
        merged = read_pyproject(pyproject)
        try:
            Config.from_values(**merged)  # report bad file values against the file
        except ValueError as exc:
            raise ConfigError(f"{pyproject}: [tool.maskcheck]: {exc}") from None
    if "output" in merged and cli_values.get("output") is None:
        _output_inside(str(merged["output"]), start, pyproject)
    merged.update({k: v for k, v in cli_values.items() if v is not None})
    try:
        return Config.from_values(source=str(pyproject) if pyproject else None, **merged)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
