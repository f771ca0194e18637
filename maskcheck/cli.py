"""The `maskcheck` command: parse options, run the engine, render, exit.

Only this module wires pieces together. Keras and TensorFlow are imported
lazily inside `main` once there is a model to check, so --help, --version,
--list-rules and --explain stay instant.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator

import click

from maskcheck.version import __version__
from maskcheck.config import COLORS, DEVICES, FAIL_ON, FORMATS, MODES, PADDINGS, ConfigError, build_config


class MaskcheckError(click.ClickException):
    """A usage or configuration error: one line on stderr, exit status 2."""

    exit_code = 2


def _list_rules(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from maskcheck.rules import ALL_RULES  # the registry imports every rule module

    for rule in ALL_RULES:
        status = "" if rule.implemented() else "  (not checked yet)"
        click.echo(f"{rule.code}  {rule.name:<26} {rule.severity.value:<8} {rule.engine:<8} "
                   f"{rule.summary()}{status}")
    ctx.exit(0)


def _explain(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if not value or ctx.resilient_parsing:
        return
    from maskcheck.rules import RULES_BY_CODE, RULES_BY_NAME
    from maskcheck.topics import TOPICS

    if value.lower() in TOPICS:
        click.echo(TOPICS[value.lower()], nl=False)
        ctx.exit(0)
    rule = RULES_BY_CODE.get(value.upper()) or RULES_BY_NAME.get(value)
    if rule is None:
        raise MaskcheckError(f"--explain: unknown rule or topic {value!r} (see --list-rules; "
                             f"topics: {', '.join(TOPICS)})")
    click.echo(rule.explain(), nl=False)
    ctx.exit(0)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Keep stdout for the report: library prints (Python or C++) go to stderr."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real file descriptor (an embedding host)
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _quiet_libraries(verbose: bool) -> None:
    """Hide TensorFlow/absl log lines and Keras UserWarnings unless --verbose.

    TensorFlow 2.21 writes its oneDNN and CUDA notices from C++ while it is
    imported, before any log level applies, so stderr's file descriptor is
    pointed at /dev/null for the import alone. An import that fails still
    raises, and is reported after stderr is back.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")
    # Python-side loggers (absl's "No training configuration found", tf.get_logger()).
    for name in ("absl", "tensorflow", "keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        try:
            import keras  # noqa: F401  (imports tensorflow as its backend)
        except Exception:  # reported when the first model loads, with stderr back
            pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _use_tensorflow() -> None:
    """Check model files under TensorFlow whatever KERAS_BACKEND or keras.json say.

    A `.keras` file is backend-portable and maskcheck's probes are TensorFlow programs,
    so the command sets KERAS_BACKEND=tensorflow before Keras is imported (the variable
    wins over keras.json's "backend", which is overridden too) and says so once on stderr
    when that overrode another setting.
    """
    from maskcheck.backends import UnsupportedBackendError, force_tensorflow

    try:
        notice = force_tensorflow(os.environ)
    except UnsupportedBackendError as exc:  # Keras already imported on another backend (embedded)
        raise MaskcheckError(str(exc)) from None
    if notice:
        click.echo(notice, err=True)


def _import_keras() -> None:
    """Import Keras on TensorFlow now, so a missing or broken install is one line, not a
    traceback per target."""
    try:
        import keras  # noqa: F401
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise MaskcheckError(f"cannot import Keras with the TensorFlow backend ({type(exc).__name__}: "
                             f"{first}); maskcheck checks models under TensorFlow: install it "
                             "(pip install tensorflow)") from None


def _prepare_device(device: str, mode: str) -> None:
    """GPU memory taken as the probes need it (see `grow_device_memory`), and `--device gpu`
    on a machine where TensorFlow sees none is an error before any model loads."""
    if mode == "static":
        return
    from maskcheck.dynamic.program import grow_device_memory

    gpus = grow_device_memory()
    if device == "gpu" and not gpus:
        raise MaskcheckError("--device gpu: TensorFlow sees no GPU (check the CUDA install with "
                             "`python -c \"import tensorflow as tf; "
                             "print(tf.config.list_physical_devices('GPU'))\"`), or use --device auto")


class _Progress:
    """One self-overwriting status line on stderr, only when a person watches.

    Shown for the text format on a terminal alone: machine formats and logs
    (stderr not a TTY) never get it, so redirected output stays clean.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False

    def __call__(self, number: int, total: int, label: str, stage: str = "checking") -> None:
        if self.enabled:
            click.echo(f"\r\033[K[{number}/{total}] {stage} {label}", err=True, nl=False)
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            click.echo("\r\033[K", err=True, nl=False)
            self.shown = False


def _render_statistics(report) -> str:
    """`--statistics`: findings per rule, most frequent first, like ruff's; related
    findings count under their own rule (the table is about rules, not causes)."""
    from collections import Counter

    counts = Counter((f.rule, f.name, f.severity.value) for f in report.all_findings)
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    lines = [f"{count:>5}  {code}  {name:<26} {severity}" for (code, name, severity), count in rows]
    return "\n".join(lines or ["    0  (no findings)"]) + "\n"


#: Command-line parameter -> Config key, for the options that are plain settings.
_SETTINGS = ("mode", "fmt", "output", "select", "ignore", "fail_on", "imports", "unsafe", "verbose",
             "statistics", "padding", "data", "mask_inputs", "padded", "seed", "batch_size",
             "seq_len", "atol", "rtol", "device", "data_batches", "generate_steps", "baseline",
             "write_baseline", "warn_unused_ignores", "color", "max_config_mb", "max_config_depth",
             "max_archive_mb", "max_compression_ratio")


def use_color(setting: str, fmt: str, output: str | None, stream, environ=os.environ) -> bool:
    """Whether the report gets ANSI colour.

    Only the text format written to the stream gets any (machine formats and
    files never do). `--color always` / `never` (or `color` in [tool.maskcheck])
    decide outright, as no-color.org asks of explicit settings. Under `auto`,
    `NO_COLOR` (any non-empty value) turns colour off, else `FORCE_COLOR`
    (non-empty) turns it on, else colour follows whether `stream` is a
    terminal. NO_COLOR winning over FORCE_COLOR is the order CPython's own
    colour choice uses: a user's opt-out beats a tool's opt-in.
    """
    if fmt != "text" or output:
        return False
    if setting != "auto":
        return setting == "always"
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("targets", nargs=-1)
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="Engines to run: static, dynamic or all (default all).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Report format (default text).")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write the report to FILE instead of stdout.")
@click.option("--select", default=None, metavar="CODES",
              help="Comma list of rule codes, prefixes (MC1) or names to run.")
@click.option("--ignore", default=None, metavar="CODES", help="Comma list of rules to skip.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default=None,
              help="Lowest severity that makes the exit status 1 (default warning).")
@click.option("--color", type=click.Choice(COLORS), default=None,
              help="Colour the text report: auto (on a terminal, unless NO_COLOR is set; "
                   "FORCE_COLOR forces it), always or never.")
@click.option("--statistics", is_flag=True, default=None, help="Also print the number of findings per rule.")
@click.option("--padding", type=click.Choice(PADDINGS), default=None,
              help="Padding sides to probe (default both).")
@click.option("--data", default=None, metavar="FILE.npz|MODULE:FUNCTION",
              help="Real probe data: an .npz (inputs, y, mask, lengths, sample_weight) or a "
                   "function returning arrays, (x, y[, sample_weight]), a tf.data.Dataset, a "
                   "PyDataset or a generator.")
@click.option("--data-batches", default=None, metavar="N",
              help="How many batches of --data to probe (default 1).")
@click.option("--baseline", default=None, metavar="FILE",
              help="Report and fail only on findings not recorded in FILE.")
@click.option("--write-baseline", default=None, metavar="FILE",
              help="Record the current findings in FILE (then they no longer fail).")
@click.option("--warn-unused-ignores", is_flag=True, default=None,
              help="Report '# maskcheck: ignore' comments and per-layer-ignores that matched nothing.")
@click.option("--mask-input", "mask_inputs", multiple=True, metavar="IN=MASK",
              help="Declare MASK as the padding mask input of input IN; repeatable.")
@click.option("--padded", multiple=True, metavar="IN:AXIS|none",
              help="Declare AXIS of input IN as padded; repeatable. 'none': no input is ever "
                   "padded (turns off the None-length and token-0 assumptions).")
@click.option("--seed", default=None, metavar="N", help="Probe seed (default 0).")
@click.option("--batch-size", default=None, metavar="N", help="Probe batch size.")
@click.option("--seq-len", default=None, metavar="N", help="Probe length of None-length axes.")
@click.option("--atol", default=None, metavar="X", help="Absolute tolerance of probe comparisons.")
@click.option("--rtol", default=None, metavar="X", help="Relative tolerance of probe comparisons.")
@click.option("--device", type=click.Choice(DEVICES), default=None,
              help="Where probes run (auto: GPU if TensorFlow sees one).")
@click.option("--generate-steps", default=None, metavar="N",
              help="Tokens generated per prompt by the generation checks MC306 and MC307 "
                   "(default 4).")
@click.option("--max-config-mb", default=None, metavar="N",
              help="Refuse a model whose config.json (or .h5 model_config) exceeds N MiB "
                   "(default 8).")
@click.option("--max-config-depth", default=None, metavar="N",
              help="Refuse a model whose config nests deeper than N levels (default 128).")
@click.option("--max-archive-mb", default=None, metavar="N",
              help="Refuse a .keras archive over N MiB uncompressed (default 65536).")
@click.option("--max-compression-ratio", default=None, metavar="N",
              help="Refuse a .keras archive, or a member over 1 MiB, that inflates more than "
                   "N times (default 100; Keras stores members uncompressed).")
@click.option("--import", "imports", multiple=True, metavar="MODULE",
              help="Import MODULE first (registers custom layers); repeatable.")
@click.option("--unsafe", is_flag=True, default=None,
              help="Load with safe_mode=False, letting Lambda layers run their code.")
@click.option("--verbose", is_flag=True, default=None,
              help="Show library logs and tracebacks.")
@click.option("--isolated", is_flag=True, default=False,
              help="Ignore every configuration file ([tool.maskcheck] in pyproject.toml).")
@click.option("--list-rules", is_flag=True, expose_value=False, is_eager=True,
              callback=_list_rules, help="List every rule and exit.")
@click.option("--explain", metavar="CODE", expose_value=False, is_eager=True,
              callback=_explain, help="Show a rule's documentation (or the topic 'padding') and exit.")
@click.version_option(__version__, "--version", prog_name="maskcheck")
def main(targets: tuple[str, ...], **options: object) -> None:
    """Check Keras models for padding and masking bugs.

    TARGETS are .keras or .h5 files, directories (searched recursively) or
    package.module:factory callables returning a model or (model, data).
    Models are checked under Keras' TensorFlow backend whatever KERAS_BACKEND
    or keras.json say (a .keras file is backend-portable).

    Exit status: 0 nothing at or above --fail-on, 1 findings at or above it,
    2 usage error or a target that could not be loaded or checked, 130 Ctrl-C.
    """
    from maskcheck.interrupts import RUN_STOPS, stop_exit, stops_unwind

    try:
        with stops_unwind():  # Ctrl-C and SIGTERM unwind, so temporary files are removed
            _run(targets, options)
    except RUN_STOPS as exc:  # caught here: click would print "Aborted!" and exit 1
        code, reason = stop_exit(exc)
        click.echo(f"\nmaskcheck: {reason}", err=True)
        sys.exit(code)


def _run(targets: tuple[str, ...], options: dict[str, object]) -> None:
    values = {("format" if key == "fmt" else key): (value or None if isinstance(value, tuple) else value)
              for key, value in options.items() if key in _SETTINGS}
    try:
        config = build_config(values, Path.cwd(), isolated=bool(options.get("isolated")))
    except ConfigError as exc:
        raise MaskcheckError(str(exc)) from None
    if not targets:
        raise click.UsageError("no TARGETS given: name .keras/.h5 files, directories or module:factory")
    if config.baseline and config.write_baseline:
        raise MaskcheckError("--baseline and --write-baseline exclude each other: --write-baseline "
                             "records every current finding, replacing the old baseline")
    if config.baseline:  # a bad baseline fails at once, before TensorFlow loads
        from maskcheck.adoption.baseline import BaselineError, read_baseline

        try:
            read_baseline(config.baseline)
        except BaselineError as exc:
            raise MaskcheckError(str(exc)) from None
    if config.verbose:  # tracebacks behind target errors (the engine logs them)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("maskcheck: %(message)s"))
        logging.getLogger("maskcheck").addHandler(handler)
    sys.dont_write_bytecode = True  # importing a user's factory module leaves no __pycache__ beside it
    _use_tensorflow()
    _quiet_libraries(config.verbose)
    _import_keras()
    _prepare_device(config.device, config.mode)
    from maskcheck.adoption.baseline import BaselineError, apply_baseline, read_baseline, write_baseline
    from maskcheck.engine import check_targets
    from maskcheck.reporters import get_reporter

    progress = _Progress(config.format == "text" and sys.stderr.isatty())
    with _stdout_to_stderr():
        try:
            report = check_targets(targets, config, progress=progress)
        except BaselineError as exc:
            raise MaskcheckError(str(exc)) from None
        finally:
            progress.clear()
    if config.write_baseline:  # from now on these findings are baselined, in this run too
        try:
            write_baseline(config.write_baseline, report)
            report = apply_baseline(report, read_baseline(config.write_baseline))
        except BaselineError as exc:
            raise MaskcheckError(str(exc)) from None
    color = use_color(config.color, config.format, config.output, sys.stdout)
    reporter = get_reporter(config.format)
    rendered = reporter(report, color=True) if color else reporter(report)
    if config.statistics:
        if config.format == "text":
            rendered += _render_statistics(report)
        else:  # machine formats keep their schema; the table goes to stderr
            click.echo(_render_statistics(report), err=True, nl=False)
    for model in report.errors:  # one line per failed target on stderr, whatever the format
        if config.format != "text" or config.output:
            click.echo(f"maskcheck: {model.target}: {model.error.message}", err=True)
    if config.output:
        try:
            Path(config.output).write_text(rendered, encoding="utf-8")
        except OSError as exc:
            raise MaskcheckError(f"--output {config.output}: cannot write: {exc.strerror or exc}") from None
        from maskcheck.reporters.text import counts_phrase

        click.echo(f"maskcheck: wrote {config.format} report to {config.output}: "
                   f"{counts_phrase(report)}.", err=True)
    else:
        click.echo(rendered, nl=False, color=color)
    sys.exit(report.exit_code(config.fail_on))
