"""The fit callback: check a model for padding leaks on the batches it really trains on.

    from maskcheck.keras import MaskCheck
    model.fit(ds, callbacks=[MaskCheck(on_leak="raise")])

Synthetic probes guess what the data looks like; the first training batch is
the data. Keras hands a callback no batch, so `MaskCheck` wraps
`model.train_function` for the length of `fit`: when a check is due, the
wrapper pulls the next batches from the real iterator itself, checks the
first, and trains on exactly those batches, in the same order. Everything a
probe pass may move (weights, optimizer slots, metric trackers, random seed
states, global RNGs) is put back before the step, so training with the
callback is bit-for-bit training without it.

TensorFlow backend only: on another backend the callback warns once, saying what to
do, and the fit runs unchecked. Importing this module loads Keras (its users have
it already) but not maskcheck's engines; they load at the first check.
"""

from __future__ import annotations

import warnings
from numbers import Integral
from typing import Any, Callable, Iterator

import keras

import maskcheck
from maskcheck import backends
from maskcheck.integrations.assertions import PaddingLeakError
from maskcheck.finding import FAIL_ON_RANKS, Finding, Report

__all__ = ["MaskCheck", "MaskCheckWarning"]

ON_LEAK = ("warn", "raise")
#: check() arguments the callback fills in itself.
_RESERVED = ("model", "data")


class MaskCheckWarning(UserWarning):
    """A padding leak the callback found, or a check it could not run; training goes on."""


class MaskCheck(keras.callbacks.Callback):
    """Check the model for padding leaks on its first real training batch.

    The check runs before the first train step of `fit` and, with `every=N`,
    again before the first step of epochs N, 2N, ... It never changes the
    weights, the optimizer state, the metrics or the order of the batches.
    A model built under `with maskcheck.record_locations():` gets warnings that
    name the source line of each culprit layer, and its `# maskcheck: ignore`
    comments apply.

    At the end of every epoch it writes the latest check's counts of findings
    into the epoch's `logs`: `maskcheck_findings` (all of them),
    `maskcheck_errors` and `maskcheck_warnings` (the rest are infos); NaN when
    the latest check could not run. `History`, `CSVLogger` and `TensorBoard`
    record them when they come after this callback in `callbacks`.

    Args:
        on_leak: "warn" emits a `MaskCheckWarning` and trains on; "raise"
            stops `fit` with `maskcheck.PaddingLeakError`. Either message is
            short: the counts, one line per finding (at most ten), the first
            fix. A check that cannot run (the batch does not fit the probes)
            always only warns.
        every: also check at every `every`-th epoch; None checks once.
        **settings: passed to `maskcheck.check` (`mode`, `select`, `ignore`,
            `padding`, `fail_on`, `seed`, ...). `fail_on` decides what counts
            as a leak, as for `report.ok`.

    Attributes:
        report: the `maskcheck.Report` of the latest check; None before the
            first and when the latest could not run.

    Raises:
        ValueError: `on_leak` or `every` is invalid, or a setting is unknown
            (`maskcheck.config.ConfigError`). A known setting with a bad value
            raises its ConfigError from `fit`, at the first check.
        TypeError: `model` or `data` is given; the callback passes those.

    Example:
        >>> model.fit(ds, epochs=10, callbacks=[MaskCheck(on_leak="warn", every=5)])
    """

    def __init__(self, on_leak: str = "warn", every: int | None = None, **settings: Any) -> None:
        super().__init__()
        if on_leak not in ON_LEAK:
            raise ValueError(f"MaskCheck: on_leak must be 'warn' or 'raise', not {on_leak!r}")
        if every is not None and (isinstance(every, bool) or not isinstance(every, Integral)
                                  or every < 1):
            raise ValueError(f"MaskCheck: every must be None or an int >= 1, not {every!r}")
        _validate_settings(settings)
        self.on_leak = on_leak
        self.every = None if every is None else int(every)
        self.settings = settings
        self.report: Report | None = None
        self._check_due = False
        self._epoch = 0
        self._wrapper: _CheckingTrainFunction | None = None
        self._backend_warned = False

    # ------------------------------------------------------------------ fit hooks

    def on_train_begin(self, logs: Any = None) -> None:
        self._epoch = 0
        backend = backends.keras_backend()
        if backend != backends.REQUIRED:  # its probes are TensorFlow programs
            self._warn_backend_once(str(backend))
            return
        current = getattr(self.model, "train_function", None)
        # A fit that died before on_train_end (any exception) left its wrapper behind.
        while isinstance(current, _CheckingTrainFunction):
            current = current.original
        if current is None:
            self._warn("maskcheck: the model has no train_function to wrap; this fit runs "
                       "unchecked.")
            return
        self._wrapper = _CheckingTrainFunction(current, self)
        self.model.train_function = self._wrapper
        self._check_due = True

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch
        if self.every is not None and epoch % self.every == 0:
            self._check_due = True

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        """Write the latest check's counts into the epoch's logs, every epoch, so History,
        CSVLogger and TensorBoard (listed after this callback) show the same columns."""
        if logs is not None:
            logs.update(_log_counts(self.report))

    def on_train_end(self, logs: Any = None) -> None:
        self._unwrap()

    # ------------------------------------------------------------------ the check

    def _unwrap(self) -> None:
        """Give the model its own train_function back (unless someone replaced ours)."""
        wrapper, self._wrapper = self._wrapper, None
        self._check_due = False
        if wrapper is not None and getattr(self.model, "train_function", None) is wrapper:
            self.model.train_function = wrapper.original

    def _check_batch(self, batch: Any) -> None:
        """Check `batch` with the model's state saved and restored; warn or raise on a leak."""
        from maskcheck.config import ConfigError

        self._check_due = False
        self.report = None
        unchecked = (f"could not check model {self.model.name!r} on the first batch of epoch "
                     f"{self._epoch}")
        snapshot = None
        try:
            snapshot = _Snapshot(self.model)
            self.report = maskcheck.check(self.model, data=_as_check_data(batch), **self.settings)
        except ConfigError:  # a bad setting is the user's to fix, not a reason to train unchecked
            raise
        except Exception as exc:  # a check that cannot run must not stop training
            self._warn(f"maskcheck: {unchecked} ({type(exc).__name__}: {_first_line(exc)}); "
                       f"training continues unchecked.")
            return
        finally:
            if snapshot is not None:
                snapshot.restore()
        for failed in self.report.errors:
            self._warn(f"maskcheck: {unchecked} ({failed.error.type}: {failed.error.message}); "
                       f"training continues unchecked.")
        for model in self.report.models:  # SPEC 9: probes that could not measure are not clean
            if model.error is None and model.inconclusive is not None:
                self._warn(f"maskcheck: {unchecked} by the probes (dynamic checks inconclusive: "
                           f"{model.inconclusive}); training continues.")
        leaks = _leaks(self.report)
        if not leaks:
            return
        message = _leak_message(self.model.name, self._epoch, leaks)
        if self.on_leak == "raise":
            raise PaddingLeakError(message)
        self._warn(message)

    def _warn_backend_once(self, backend: str) -> None:
        """One warning per callback on another backend than TensorFlow: every fit of this
        callback then runs unchecked, which is said once, never raised (training is the
        user's; the check is an extra that cannot run here)."""
        if not self._backend_warned:
            self._backend_warned = True
            self._warn(f"maskcheck: {backends.unsupported_line(backend, 'MaskCheck')}; this fit runs "
                       "unchecked.")

    def _warn(self, message: str) -> None:
        warnings.warn(message, MaskCheckWarning, stacklevel=_caller_level())


class _CheckingTrainFunction:
    """`model.train_function` while MaskCheck is attached: checks a batch first when one is due.

    Keras's TF train function accepts a tf.data iterator or any Python
    iterator of batches (it runs up to `steps_per_execution` of them), so the
    wrapper can pull the batches, look at the first, and pass them on intact.
    """

    def __init__(self, original: Callable[[Any], Any], callback: MaskCheck) -> None:
        self.original = original
        self.callback = callback

    def __call__(self, iterator: Any) -> Any:
        if not self.callback._check_due:
            return self.original(iterator)
        steps = max(1, int(getattr(self.callback.model, "steps_per_execution", 1) or 1))
        pulled = _pull(iterator, steps)
        try:
            self.callback._check_batch(pulled[0])
        except BaseException:
            self.callback._unwrap()  # fit stops here; leave the model usable
            raise
        return self.original(_replay(pulled, iterator))


def _pull(iterator: Iterator[Any], steps: int) -> list[Any]:
    """The next `steps` batches (fewer at the end of the epoch); StopIteration when none is left."""
    import tensorflow as tf

    pulled: list[Any] = []
    for _ in range(steps):
        try:
            pulled.append(next(iterator))
        except (StopIteration, tf.errors.OutOfRangeError):
            break
    if not pulled:
        raise StopIteration
    return pulled


def _replay(pulled: list[Any], iterator: Any) -> Iterator[Any]:
    """An iterator over exactly `pulled` that the train function runs the way it runs `iterator`.

    Keras trains on a Python iterator too, but through a different trace, whose
    float results can differ in the last bit; a tf.data iterator with the real
    one's element spec reuses the real trace, so the step is bit-for-bit the same.
    """
    import tensorflow as tf

    spec = getattr(iterator, "element_spec", None)
    if isinstance(iterator, tf.data.Iterator) and spec is not None:
        try:
            return iter(tf.data.Dataset.from_generator(lambda: iter(pulled), output_signature=spec))
        except (TypeError, ValueError):  # a spec from_generator cannot carry (optionals, ...)
            pass
    return iter(pulled)


def _validate_settings(settings: dict[str, Any]) -> None:
    """Reject a setting name `maskcheck.check` does not know now, not at the first batch.

    Values are left to `check`, which normalizes them before validating (a dict
    `mask_inputs`, tuple `padded` items); a bad value raises its ConfigError
    at the first check, and that one stops `fit`.
    """
    import inspect

    from maskcheck.config import Config, ConfigError

    reserved = sorted(set(settings) & set(_RESERVED))
    if reserved:
        raise TypeError(f"MaskCheck: {', '.join(reserved)} cannot be set; the callback passes "
                        f"the model and its first training batch itself")
    parameters = inspect.signature(maskcheck.check).parameters
    known = {name for name, p in parameters.items()
             if p.kind is not p.VAR_KEYWORD and name not in _RESERVED}
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):  # the rest go to Config
        known |= (set(Config.__dataclass_fields__) - {"source"}) | {"import"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"MaskCheck: unknown setting {unknown[0]!r} (known: "
                          f"{', '.join(sorted(known))})")


def _as_check_data(batch: Any) -> Any:
    """A training batch as `maskcheck.check(data=...)` takes it: x, (x, y) or (x, y, sample_weight)."""
    import numpy as np

    def to_numpy(value: Any) -> Any:
        if value is None:
            return None
        return np.asarray(value.numpy() if hasattr(value, "numpy") else value)

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
    if isinstance(x, tuple):  # a tuple x alone would read as (x, y)
        x = list(x)
    x, y, sample_weight = (None if part is None else keras.tree.map_structure(to_numpy, part)
                           for part in (x, y, sample_weight))
    if y is None:
        return x
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def _leaks(report: Report) -> tuple[Finding, ...]:
    """The findings that make `report.ok` False, worst first."""
    threshold = FAIL_ON_RANKS[report.fail_on]
    return tuple(f for f in report.findings if f.severity.rank >= threshold)


#: Findings listed one per line in the warning; the rest are counted ("and N more").
MAX_LINES = 10
#: The keys the callback writes into each epoch's `logs` (History, CSVLogger, TensorBoard;
#: the progress bar shows them too, so three: infos are findings less errors and warnings).
LOG_KEYS = ("maskcheck_findings", "maskcheck_errors", "maskcheck_warnings")


def _leak_message(model_name: str, epoch: int, leaks: tuple[Finding, ...]) -> str:
    """A short message: a header with the counts, one line per leak (code, layer, what
    happens, in its first sentence), at most `MAX_LINES` of them, and the fix of the first."""
    counts = [(sum(1 for f in leaks if f.severity.value == severity), severity)
              for severity in ("error", "warning", "info")]
    by_severity = ", ".join(f"{n} {word}{'s' if n != 1 else ''}" for n, word in counts if n)
    noun = "padding leak" if len(leaks) == 1 else "padding leaks"
    lines = [f"maskcheck: {len(leaks)} {noun} in model {model_name!r} on the first batch of "
             f"epoch {epoch}: {by_severity}"]
    for finding in leaks[:MAX_LINES]:
        where = f" at {finding.layer!r}" if finding.layer else ""
        if finding.layer_class:
            where += f" ({finding.layer_class})"
        if finding.location is not None:  # the model was built under maskcheck.record_locations()
            where += f", built at {finding.where().rstrip(':')}"
        related = f" (+{len(finding.related)} related)" if finding.related else ""
        lines.append(f"  {finding.rule}{where}: {_what(finding)}{related}")
    if len(leaks) > MAX_LINES:
        lines.append(f"  and {len(leaks) - MAX_LINES} more")
    first = leaks[0]
    lines.append(f"fix ({first.rule}): {first.fix}")
    lines.append("The full report is the callback's `report` (report.to_text()); "
                 "`maskcheck --explain CODE` explains each rule.")
    return "\n".join(lines)


def _what(finding: Finding) -> str:
    """What happens, short: the message's first sentence, without its period and without
    the "Layer 'x' (Class)" opening that the line already says."""
    import re

    text = re.split(r"(?<=[.!?])\s+(?=[A-Z(`'\"])", finding.message.strip(), maxsplit=1)[0]
    opening = f"Layer {finding.layer!r} ({finding.layer_class}) "
    if finding.layer and finding.layer_class and text.startswith(opening):
        text = text[len(opening):]
    return text.rstrip(".")


def _log_counts(report: Report | None) -> dict[str, float]:
    """The latest check's primary findings, in all and the errors and warnings among them,
    for the epoch's logs; NaN (unknown) when no check has run or the latest could not run."""
    if report is None or report.errors:
        return dict.fromkeys(LOG_KEYS, float("nan"))
    summary = report.summary()
    return dict(zip(LOG_KEYS, (len(report.findings), summary["errors"], summary["warnings"])))


def _caller_level() -> int:
    """The stacklevel of the first frame outside maskcheck, Keras and TensorFlow: the user's fit call.

    Warnings point at the line users wrote (and filter by), not into Keras's loop.
    """
    import sys

    level, frame = 2, sys._getframe(2)  # 1 is _warn's warnings.warn call, 2 its caller
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.split(".")[0] not in ("maskcheck", "keras", "tensorflow"):
            return level
        level, frame = level + 1, frame.f_back
    return 2


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no message"


# ---------------------------------------------------------------------- state


class _Snapshot:
    """Every piece of state a probe pass may move, saved, and put back by `restore`.

    Variables (weights, BatchNormalization statistics, metric and loss
    trackers, optimizer slots and iterations, SeedGenerator states) and the
    global Python, NumPy and Keras random generators, which shuffling and
    unseeded dropout read.
    """

    def __init__(self, model: Any) -> None:
        import random

        import numpy as np

        self.python_rng = random.getstate()
        self.numpy_rng = np.random.get_state()
        self.had_global_generator = _global_seed_generator() is not None
        self.variables = [(v, v.numpy()) for v in _state_variables(model)]

    def restore(self) -> None:
        import random

        import numpy as np

        for variable, value in self.variables:
            variable.assign(value)
        random.setstate(self.python_rng)
        np.random.set_state(self.numpy_rng)
        if not self.had_global_generator:  # made during the check: training makes its own later
            _drop_global_seed_generator()


def _state_variables(model: Any) -> list[Any]:
    """The model's variables, its metrics', its built optimizer's and every seed state, once each."""
    found: dict[int, Any] = {}

    def add(variables: Any) -> None:
        for variable in variables or ():
            found.setdefault(id(variable), variable)

    add(model.variables)
    add(getattr(model, "metrics_variables", None))
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        add(optimizer.variables)
    layers = [model, *model._flatten_layers(include_self=False)] if hasattr(model, "_flatten_layers") \
        else [model]
    for layer in layers:
        add(generator.state for generator in getattr(layer, "_seed_generators", ()) or ())
    global_generator = _global_seed_generator()
    if global_generator is not None:
        add([global_generator.state])
    return list(found.values())


_GLOBAL_GENERATOR = "global_seed_generator"


def _global_seed_generator() -> Any:
    """Keras's generator behind `keras.random.*(seed=None)`, if one was made; None otherwise."""
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover - a Keras that moved it
        return None
    return global_state.get_global_attribute(_GLOBAL_GENERATOR)


def _drop_global_seed_generator() -> None:
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover
        return
    if global_state.get_global_attribute(_GLOBAL_GENERATOR) is not None:
        global_state.set_global_attribute(_GLOBAL_GENERATOR, None)
