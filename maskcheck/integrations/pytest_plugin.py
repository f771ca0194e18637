"""pytest plugin: the `maskcheck` fixture and marker, and `pytest --maskcheck`.

Registered through the ``pytest11`` entry point, so it is active in every
pytest session once maskcheck is installed. At import time it loads only
pytest and the standard library: Keras, TensorFlow and the maskcheck engines
load inside a test that asks for them (the fixture, a collected model file),
so a session that never checks a model never pays for TensorFlow.

Settings, most specific first:

1. ``@pytest.mark.maskcheck(select=..., ignore=..., padding=...)`` on a test,
   class or module (closest wins), for the `maskcheck` fixture and for
   collected model files;
2. ``--maskcheck-*`` command-line options (``--maskcheck-select MC1``);
3. ``maskcheck_*`` ini options (``pytest.ini``, ``[tool.pytest.ini_options]``);
4. ``[tool.maskcheck]`` in the nearest ``pyproject.toml`` at or above the
   rootdir, exactly as the ``maskcheck`` command reads it;
5. maskcheck's defaults (``mode = "all"``, ``fail_on = "warning"``,
   ``padding = "both"``, ``seed = 0``).

``pytest --maskcheck [PATHS]`` also collects every ``*.keras`` file under
PATHS as one test item named ``maskcheck``; it runs the same check as the
``maskcheck`` command (default mode ``all``: static and dynamic engines) and
fails with the text report. The items carry the ``maskcheck`` marker, so
``pytest --maskcheck -m maskcheck`` runs only them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator

import pytest

# One description per setting, shared by the command-line flag and the ini key.
MASKCHECK_DESC = "collect *.keras files as maskcheck test items (one per model file)."
SELECT_DESC = "maskcheck: rule codes, prefixes (MC1) or names to run; comma list (default: all rules)."
IGNORE_DESC = "maskcheck: rule codes, prefixes or names to skip; comma list."
FAIL_ON_DESC = "maskcheck: lowest severity that fails a check: error, warning, info or never (default warning)."
MODE_DESC = "maskcheck: engines to run: static, dynamic or all (default all)."
PADDING_DESC = "maskcheck: padding sides to probe: post, pre or both (default both)."
SEED_DESC = "maskcheck: probe seed; results are deterministic for a seed (default 0)."
BATCH_SIZE_DESC = "maskcheck: probe batch size (default 4)."
SEQ_LEN_DESC = "maskcheck: probe length of None-length axes (default 12)."
ATOL_DESC = "maskcheck: absolute tolerance of probe comparisons (default 1e-5)."
RTOL_DESC = "maskcheck: relative tolerance of probe comparisons (default 1e-4)."
DEVICE_DESC = "maskcheck: where probes run: auto, cpu or gpu (default auto)."
IMPORT_DESC = "maskcheck: modules to import before loading model files (they register custom layers)."
UNSAFE_DESC = ("maskcheck: load model files with safe_mode=False (lets Lambda layers run their code); "
               "command line only: an ini file may not set it.")

#: (Config field, description, ini type, command-line choices) for every setting.
SETTINGS: tuple[tuple[str, str, str, tuple[str, ...] | None], ...] = (
    ("select", SELECT_DESC, "args", None),
    ("ignore", IGNORE_DESC, "args", None),
    ("fail_on", FAIL_ON_DESC, "string", ("error", "warning", "info", "never")),
    ("mode", MODE_DESC, "string", ("static", "dynamic", "all")),
    ("padding", PADDING_DESC, "string", ("post", "pre", "both")),
    ("seed", SEED_DESC, "string", None),
    ("batch_size", BATCH_SIZE_DESC, "string", None),
    ("seq_len", SEQ_LEN_DESC, "string", None),
    ("atol", ATOL_DESC, "string", None),
    ("rtol", RTOL_DESC, "string", None),
    ("device", DEVICE_DESC, "string", ("auto", "cpu", "gpu")),
    ("imports", IMPORT_DESC, "args", None),
    ("unsafe", UNSAFE_DESC, "bool", None),
)

#: The keyword arguments `@pytest.mark.maskcheck` accepts (all Config fields).
MARKER_KWARGS = ("select", "ignore", "padding", "fail_on", "mode", "seed", "atol", "rtol",
                 "padded", "mask_inputs")
MARKER_LINE = ("maskcheck(select=None, ignore=None, padding=None, fail_on=None, mode=None, seed=None, "
               "atol=None, rtol=None, padded=None, mask_inputs=None): settings for the maskcheck "
               "fixture and maskcheck items in this test (codes or prefixes such as 'MC1' for "
               "select/ignore; padding post, pre or both; padded ('tokens:1',) or 'none'; "
               "mask_inputs {'tokens': 'padding_mask'}).")

_BASE_CONFIG = pytest.StashKey[Any]()


def _flag(key: str) -> str:
    return "--maskcheck-" + ("import" if key == "imports" else key.replace("_", "-"))


def _ini(key: str) -> str:
    return "maskcheck_" + ("import" if key == "imports" else key)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("maskcheck", "padding and masking checks of Keras models")
    group.addoption("--maskcheck", action="store_true", default=False, help=MASKCHECK_DESC)
    for key, desc, ini_type, choices in SETTINGS:
        if ini_type == "bool":
            group.addoption(_flag(key), dest=_ini(key), action="store_true", default=None, help=desc)
        elif key == "imports":
            group.addoption(_flag(key), dest=_ini(key), action="append", default=None,
                            metavar="MODULE", help=desc + " Repeatable.")
        else:
            group.addoption(_flag(key), dest=_ini(key), default=None, choices=choices,
                            metavar="|".join(choices) if choices else key.upper(), help=desc)
        parser.addini(_ini(key), help=desc, type=ini_type, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_LINE)
    if config.getoption("maskcheck"):
        base_config(config)  # a bad setting is a usage error before anything runs


def pytest_report_header(config: pytest.Config) -> str | None:
    if not config.getoption("maskcheck"):
        return None
    c = base_config(config)
    select = ",".join(sorted(c.select)) if c.select is not None else "all"
    ignore = ",".join(sorted(c.ignore)) or "none"
    source = f", pyproject {c.source}" if c.source else ""
    return (f"maskcheck: collecting *.keras files; mode={c.mode} fail_on={c.fail_on} padding={c.padding} "
            f"select={select} ignore={ignore}{source}")


def _raw_settings(config: pytest.Config) -> dict[str, Any]:
    """ini values under command-line values; unset ones left out."""
    values: dict[str, Any] = {}
    if config.getini(_ini("unsafe")) not in (None, ""):
        from maskcheck.config import UNSAFE_FROM_FILE

        raise pytest.UsageError(f"maskcheck: the ini option maskcheck_unsafe is not allowed: "
                                f"{UNSAFE_FROM_FILE.replace('--unsafe', '--maskcheck-unsafe')}")
    for key, _desc, _type, _choices in SETTINGS:
        for value in (config.getini(_ini(key)), config.getoption(_ini(key))):
            if value is not None and value != "" and value != []:
                values[key] = value
    return values


def base_config(config: pytest.Config) -> Any:
    """The session's maskcheck Config (pyproject, ini, command line), built once.

    Raises:
        pytest.UsageError: a setting has a bad value; the message names it.
    """
    if _BASE_CONFIG not in config.stash:
        from maskcheck.config import ConfigError, build_config

        try:
            config.stash[_BASE_CONFIG] = build_config(_raw_settings(config), config.rootpath)
        except (ConfigError, ValueError) as exc:
            raise pytest.UsageError(f"maskcheck: {exc}") from None
    return config.stash[_BASE_CONFIG]


def _marker_values(node: pytest.Item) -> dict[str, Any]:
    """Marker keyword arguments, farthest first so the closest marker wins (None: unset)."""
    values: dict[str, Any] = {}
    for mark in reversed(list(node.iter_markers("maskcheck"))):
        values.update({key: value for key, value in mark.kwargs.items() if value is not None})
    return values


def _validate_markers(node: pytest.Item) -> dict[str, Any]:
    for mark in node.iter_markers("maskcheck"):
        if mark.args:
            pytest.fail(f"@pytest.mark.maskcheck takes keyword arguments only ({', '.join(MARKER_KWARGS)}), "
                        f"got positional {mark.args!r}", pytrace=False)
        unknown = sorted(set(mark.kwargs) - set(MARKER_KWARGS))
        if unknown:
            pytest.fail(f"@pytest.mark.maskcheck got unknown keyword argument(s) {', '.join(map(repr, unknown))}; "
                        f"it accepts {', '.join(MARKER_KWARGS)}", pytrace=False)
    return _marker_values(node)


def item_config(node: pytest.Item) -> Any:
    """The Config for one test: the session's, with its maskcheck markers applied."""
    base = base_config(node.config)
    values = _marker_values(node)
    if not values:
        return base
    from maskcheck.config import Config, api_values

    try:
        validated = Config.from_values(**api_values(values))
    except ValueError as exc:
        pytest.fail(f"@pytest.mark.maskcheck: {exc}", pytrace=False)
    keys = list(values) + (["assume_padding"] if "padded" in values else [])
    return dataclasses.replace(base, **{key: getattr(validated, key) for key in keys})


_RECORDING = pytest.StashKey[Any]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("maskcheck") is not None:
        _validate_markers(item)
        item_config(item)  # bad values fail here, naming the marker
    if "maskcheck" in getattr(item, "fixturenames", ()):
        # Tests that use the fixture record where their layers are built (before any
        # fixture runs), so findings point at the test's source line (SPEC 6 `location`).
        from maskcheck.adoption.locations import record_locations

        recording = record_locations()
        try:
            recording.__enter__()
        except ImportError:  # no Keras here: the fixture reports that when it is used
            return
        item.stash[_RECORDING] = recording


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    recording = item.stash.get(_RECORDING, None)
    if recording is not None:
        del item.stash[_RECORDING]
        recording.__exit__(None, None, None)


def _skip_off_tensorflow(what: str = "the maskcheck fixture") -> None:
    """Skip the test, in one line saying what to do, when Keras runs on another backend here.

    Decision: a skip, not a failure and not a pass. The probes are TensorFlow programs, so
    under KERAS_BACKEND=jax nothing about the model is known: failing would turn every
    non-TensorFlow job of a multi-backend CI matrix red for no fault of the model, and
    passing would claim a check that never ran. A skip shows the reason under `pytest -rs`
    and in the summary counts, like `pytest.importorskip`.
    """
    from maskcheck.backends import UnsupportedBackendError, require_tensorflow

    try:
        require_tensorflow(what=what)
    except UnsupportedBackendError as exc:
        pytest.skip(f"maskcheck: {exc}")


class MaskChecker:
    """What the `maskcheck` fixture returns: maskcheck bound to this test's settings.

    Example:
        >>> def test_tagger(maskcheck):
        ...     report = maskcheck(build_tagger())       # same as maskcheck.check(...)
        ...     assert report.findings == ()
        ...     maskcheck.assert_clean(build_tagger())   # fails with the text report
    """

    def __init__(self, config: Any) -> None:
        self.config = config

    def _with(self, overrides: dict[str, Any]) -> Any:
        if not overrides:
            return self.config
        from maskcheck.config import Config, api_values

        validated = Config.from_values(**api_values(overrides))
        keys = [k for k in overrides if overrides[k] is not None]
        if "padded" in keys:  # padded="none" also turns the assumptions off
            keys.append("assume_padding")
        return dataclasses.replace(self.config, **{k: getattr(validated, k) for k in keys})

    def check(self, model: Any, data: Any = None, **overrides: Any) -> Any:
        """Check an in-memory model, like `maskcheck.check`; returns a `maskcheck.Report`.

        Args:
            model: a built Keras model.
            data: real probe data, anything `maskcheck.check` takes (arrays, an
                (x, y[, sample_weight]) tuple, a dict, a tf.data.Dataset, a PyDataset,
                a generator); None synthesizes probe batches.
            **overrides: settings for this call only (select=, ignore=, padding=, ...).

        Returns:
            A Report with one ModelReport; a model that cannot be checked gives a
            report whose `errors` name why (and which is never `ok`).

        A setting that does not fit the model (``padded`` naming an input it lacks) fails
        the test in one line; in a process whose Keras runs on another backend than
        TensorFlow the test is skipped, saying so (see `_skip_off_tensorflow`).
        """
        __tracebackhide__ = True
        from maskcheck.config import ConfigError
        from maskcheck.engine import check_in_memory

        _skip_off_tensorflow()
        try:
            return check_in_memory(model, self._with(overrides), data)
        except ConfigError as exc:
            pytest.fail(f"maskcheck: {exc}", pytrace=False)

    __call__ = check

    def assert_clean(self, model: Any, **overrides: Any) -> Any:
        """Fail with the text report when the check finds anything at or above fail_on.

        Returns:
            The Report, when it passes (it may hold findings below fail_on).

        Raises:
            AssertionError: naming every finding and its fix.
        """
        __tracebackhide__ = True
        from maskcheck.reporters.text import render

        report = self.check(model, **overrides)
        if not report.ok:
            raise AssertionError(f"maskcheck found padding problems (fail_on={report.fail_on}):\n"
                                 + render(report))
        return report

    def _probe_settings(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        c = self.config
        settings: dict[str, Any] = {"atol": c.atol, "rtol": c.rtol, "seed": c.seed, "device": c.device}
        if c.padding in ("post", "pre"):  # "both" (the default) leaves the assertion's "post"
            settings["padding"] = c.padding
        settings.update(kwargs)
        return settings

    def assert_padding_invariant(self, model: Any, x: Any, **kwargs: Any) -> None:
        """`maskcheck.assert_padding_invariant` with this test's settings.

        atol, rtol, seed and device come from the settings, and so does the
        padding side of `x` when the settings name one ("post" or "pre");
        keyword arguments win.
        """
        __tracebackhide__ = True
        from maskcheck.integrations.assertions import assert_padding_invariant

        _skip_off_tensorflow()
        assert_padding_invariant(model, x, **self._probe_settings(kwargs))

    def assert_loss_ignores_padding(self, model: Any, x: Any, y: Any, **kwargs: Any) -> None:
        """`maskcheck.assert_loss_ignores_padding` with this test's settings (as above)."""
        __tracebackhide__ = True
        from maskcheck.integrations.assertions import assert_loss_ignores_padding

        _skip_off_tensorflow()
        assert_loss_ignores_padding(model, x, y, **self._probe_settings(kwargs))

    def assert_batch_equivalent(self, fn: Any, samples: Any, **kwargs: Any) -> None:
        """`maskcheck.assert_batch_equivalent` with this test's atol and rtol, and its padding
        side when the settings name one; keyword arguments win."""
        __tracebackhide__ = True
        from maskcheck.integrations.batch_equivalence import assert_batch_equivalent

        c = self.config
        settings: dict[str, Any] = {"atol": c.atol, "rtol": c.rtol}
        if c.padding in ("post", "pre"):
            settings["side"] = c.padding
        settings.update(kwargs)
        assert_batch_equivalent(fn, samples, **settings)

    def __repr__(self) -> str:
        c = self.config
        return (f"<MaskChecker mode={c.mode} fail_on={c.fail_on} padding={c.padding} "
                f"select={sorted(c.select) if c.select is not None else 'all'} ignore={sorted(c.ignore)}>")


@pytest.fixture
def maskcheck(request: pytest.FixtureRequest) -> MaskChecker:
    """A maskcheck checker bound to the ini/pyproject settings and this test's marker."""
    return MaskChecker(item_config(request.node))


# --- pytest --maskcheck: model files as test items -------------------------------------------


class MaskcheckFailure(Exception):
    """A collected model file failed its check; carries the Report."""

    def __init__(self, report: Any) -> None:
        super().__init__("maskcheck found problems")
        self.report = report


def pytest_collect_file(file_path: Any, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".keras" and parent.config.getoption("maskcheck"):
        return MaskcheckFile.from_parent(parent, path=file_path)
    return None


class MaskcheckFile(pytest.File):
    """A `.keras` file: one `maskcheck` item for its one model."""

    def collect(self) -> Iterator[pytest.Item]:
        yield MaskcheckItem.from_parent(self, name="maskcheck")


class MaskcheckItem(pytest.Item):
    """Checks one model file like `maskcheck FILE` and fails with its text report."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker("maskcheck")

    def _label(self) -> str:
        try:
            return os.path.relpath(self.path)
        except ValueError:  # another drive on Windows
            return str(self.path)

    def runtest(self) -> None:
        import warnings

        from maskcheck.engine import check_targets
        from maskcheck.reporters.text import render

        config = item_config(self)
        _skip_off_tensorflow("pytest --maskcheck")  # model files load on this process's backend here
        with warnings.catch_warnings():
            # Keras warns once per dropped mask without a location; the report says it better.
            warnings.simplefilter("ignore", UserWarning)
            report = check_targets((self._label(),), config)
        if report.exit_code() != 0:
            raise MaskcheckFailure(report)
        if report.findings:  # below fail_on: passed, but shown with -rA
            self.add_report_section("call", "maskcheck", render(report))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, MaskcheckFailure):
            from maskcheck.reporters.text import render

            return render(excinfo.value.report).rstrip("\n")
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"maskcheck {self._label()}"


# --- assertion messages --------------------------------------------------------------------


def _is_finding(value: Any) -> bool:
    return type(value).__module__ == "maskcheck.finding" and type(value).__name__ == "Finding"


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: Any, right: Any) -> list[str] | None:
    """List the findings when `report.findings == ()` (or any findings comparison) fails."""
    if op != "==":
        return None
    sides = [side for side in (left, right)
             if isinstance(side, (tuple, list)) and side and all(_is_finding(f) for f in side)]
    if not sides:
        return None
    findings = sides[0]
    lines = [f"maskcheck findings differ: {len(findings)} finding(s):"]
    for f in findings:
        where = "/".join(f.path) or f.layer or "?"
        lines.append(f"  {f.rule} [{f.severity.value}] {f.name} at {where} ({f.layer_class}): {f.message}")
        lines.append(f"      fix: {f.fix}")
        lines.extend(f"      related: {r.rule} [{r.severity.value}] {r.name} at "
                     f"{'/'.join(r.path) or r.layer or '?'} ({r.layer_class})" for r in f.related)
    return lines
