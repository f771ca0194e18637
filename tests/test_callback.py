"""The fit callback on real models and real `fit` calls: it finds leaks, and training is unchanged."""

from __future__ import annotations

import ast
import csv
import math
import re
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from maskcheck import PaddingLeakError
from maskcheck.keras import MaskCheck, MaskCheckWarning

VOCAB, MAXLEN, SAMPLES, BATCH = 20, 10, 16, 8
# fit's default shuffle=True does not apply to a tf.data.Dataset, and Keras says so each time
pytestmark = pytest.mark.filterwarnings("ignore:`shuffle=True` was passed:UserWarning")


def padded_tokens(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Post-padded token ids (0 is padding) and binary labels."""
    rng = np.random.default_rng(seed)
    x = np.zeros((SAMPLES, MAXLEN), "int32")
    for row, length in enumerate(rng.integers(2, MAXLEN + 1, SAMPLES)):
        x[row, :length] = rng.integers(1, VOCAB, length)
    return x, rng.integers(0, 2, SAMPLES).astype("int32")


def dataset() -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(padded_tokens()).batch(BATCH)


def compiled(model: keras.Model, steps_per_execution: int = 1) -> keras.Model:
    model.compile(optimizer="adam", steps_per_execution=steps_per_execution,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def leaky_model(batch_norm: bool = False) -> keras.Model:
    """Conv1D mixes padded steps into valid ones: MC102 at 'conv'."""
    tokens = keras.Input((MAXLEN,), dtype="int32")
    h = keras.layers.Embedding(VOCAB, 4, mask_zero=True)(tokens)
    if batch_norm:  # moving statistics and a SeedGenerator the probes must not move
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.Dropout(0.5)(h)
    h = keras.layers.Conv1D(4, 3, padding="same", name="conv")(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(tokens, keras.layers.Dense(2)(h), name="leaky")


def clean_model() -> keras.Model:
    tokens = keras.Input((MAXLEN,), dtype="int32")
    h = keras.layers.Embedding(VOCAB, 4, mask_zero=True)(tokens)
    h = keras.layers.Dropout(0.5)(h)
    h = keras.layers.LSTM(4)(h)
    return keras.Model(tokens, keras.layers.Dense(2)(h), name="clean")


def test_a_leak_raises_naming_the_layer_and_the_rule() -> None:
    model = compiled(leaky_model())
    with pytest.raises(PaddingLeakError) as caught:
        model.fit(dataset(), epochs=1, verbose=0, callbacks=[MaskCheck(on_leak="raise")])
    message = str(caught.value)
    assert "'conv' (Conv1D)" in message and "MC102" in message and "'leaky'" in message
    assert_short_form(message)


def assert_short_form(message: str) -> list[str]:
    """A header with the counts, one line per finding, the first fix, where the rest is."""
    lines = message.splitlines()
    assert re.fullmatch(r"maskcheck: \d+ padding leaks? in model '\w+' on the first batch of "
                        r"epoch \d+: \d+ errors?(, \d+ warnings?)?", lines[0]), lines[0]
    findings = [line for line in lines[1:] if line.startswith("  MC")]
    assert findings and all(re.match(r"  MC\d{3} at '[^']+' \(\w+\): \S", f) for f in findings)
    assert lines[len(findings) + 1].startswith("fix (MC")
    assert len(lines) == len(findings) + 3 and "--explain" in lines[-1]
    return lines


def test_a_leak_warns_and_training_completes() -> None:
    model = compiled(leaky_model())
    check = MaskCheck(on_leak="warn")
    with pytest.warns(MaskCheckWarning, match=r"MC102 at 'conv'") as caught:
        history = model.fit(dataset(), epochs=2, verbose=0, callbacks=[check])
    assert len(history.history["loss"]) == 2
    ours = [w for w in caught if w.category is MaskCheckWarning]
    assert {Path(w.filename).name for w in ours} == {"test_callback.py"}  # the user's fit line
    assert not check.report.ok and "conv" in {f.layer for f in check.report.findings}
    lines = assert_short_form(str(ours[0].message))
    assert lines[1].startswith("  MC102 at 'conv' (Conv1D): mixes values")  # the layer said once
    stats = check.report.models[0].stats["data"]  # what the training batch said (part 7)
    assert (stats["samples"], stats["post_padded"] + stats["unpadded"]) == (BATCH, BATCH)
    assert list(stats["pad_value"].values()) == [0] and stats["label_pad_value"] is None


def test_every_n_epochs_checks_epochs_0_n_2n() -> None:
    model = compiled(leaky_model())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(dataset(), epochs=5, verbose=0, callbacks=[MaskCheck(every=2, select=["MC102"])])
    messages = [str(w.message) for w in caught if issubclass(w.category, MaskCheckWarning)]
    assert [m.split("first batch of epoch ")[1].split(":")[0] for m in messages] == ["0", "2", "4"]


def train(build, callbacks, *, steps_per_execution=1, numpy_data=False, epochs=2):
    """Weights, optimizer iterations and losses of one seeded training run."""
    keras.utils.set_random_seed(0)
    model = compiled(build(), steps_per_execution)
    if numpy_data:  # Keras shuffles: the order comes from the seeded RNGs
        x, y = padded_tokens()
        history = model.fit(x, y, batch_size=BATCH, shuffle=True, epochs=epochs, verbose=0,
                            callbacks=callbacks)
    else:
        history = model.fit(dataset(), epochs=epochs, verbose=0, callbacks=callbacks)
    return ([w.numpy() for w in model.variables], int(model.optimizer.iterations.numpy()),
            history.history["loss"])


@pytest.mark.parametrize("build, on_leak, every, steps_per_execution, numpy_data", [
    (clean_model, "raise", None, 1, False),
    (clean_model, "raise", 1, 1, True),
    (lambda: leaky_model(batch_norm=True), "warn", 1, 2, False),
], ids=["clean-once-tfdata", "clean-every-epoch-shuffled", "batchnorm-dropout-warn-2-steps"])
def test_training_with_the_callback_is_training_without_it(build, on_leak, every,
                                                           steps_per_execution, numpy_data) -> None:
    check = MaskCheck(on_leak=on_leak, every=every)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MaskCheckWarning)
        checked = train(build, [check], steps_per_execution=steps_per_execution,
                        numpy_data=numpy_data)
    plain = train(build, [], steps_per_execution=steps_per_execution, numpy_data=numpy_data)
    assert check.report is not None and not check.report.errors
    assert check.report.ok == (on_leak == "raise")
    weights, iterations, losses = checked
    assert len(weights) == len(plain[0])
    assert all(np.array_equal(a, b) for a, b in zip(weights, plain[0]))
    assert iterations == plain[1] == 2 * SAMPLES // BATCH
    assert losses == plain[2]


def test_the_snapshot_puts_back_everything_a_training_step_moves() -> None:
    """The callback's own safety net, apart from the engine's: weights, BatchNormalization
    statistics, optimizer slots, metric trackers, seed states and the global RNGs."""
    import random

    from maskcheck.keras import _global_seed_generator, _Snapshot

    model = compiled(leaky_model(batch_norm=True))
    x, y = padded_tokens()
    model.train_on_batch(x[:BATCH], y[:BATCH])  # builds the optimizer and the metrics

    def state() -> list[np.ndarray]:
        generator = _global_seed_generator()
        return [v.numpy() for v in model.variables + model.metrics_variables
                + model.optimizer.variables + ([generator.state] if generator else [])]

    had_generator, before = _global_seed_generator() is not None, state()
    snapshot = _Snapshot(model)
    draws = (random.random(), np.random.rand())
    model.train_on_batch(x[BATCH:], y[BATCH:])
    keras.random.uniform((2,))  # the unseeded global generator (made here if it was not yet)
    snapshot.restore()
    assert (_global_seed_generator() is not None) == had_generator
    after = state()
    assert len(after) == len(before) and all(np.array_equal(a, b) for a, b in zip(before, after))
    assert (random.random(), np.random.rand()) == draws


def test_the_train_function_is_restored_after_fit_and_after_a_raise() -> None:
    model = compiled(leaky_model())
    model.fit(dataset(), epochs=1, verbose=0)
    original = model.train_function
    with pytest.warns(MaskCheckWarning):
        model.fit(dataset(), epochs=1, verbose=0, callbacks=[MaskCheck()])
    assert model.train_function is original
    with pytest.raises(PaddingLeakError):
        model.fit(dataset(), epochs=1, verbose=0, callbacks=[MaskCheck(on_leak="raise")])
    assert model.train_function is original
    history = model.fit(dataset(), epochs=1, verbose=0)  # still trains normally
    assert np.isfinite(history.history["loss"][0])


class TrainsOnly(keras.layers.Layer):
    """Position-wise, but raises outside training: every probe pass fails while fit trains."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, training=None):
        if not training:
            raise ValueError("this layer only trains")
        return x

    def compute_output_spec(self, x, training=None):  # so building the model does not call it
        return keras.KerasTensor(x.shape, x.dtype)


def test_a_check_that_cannot_run_warns_and_training_goes_on() -> None:
    tokens = keras.Input((MAXLEN,), dtype="int32")
    h = TrainsOnly()(keras.layers.Embedding(VOCAB, 4, mask_zero=True)(tokens))
    h = keras.layers.LSTM(4)(h)
    model = compiled(keras.Model(tokens, keras.layers.Dense(2)(h), name="trains_only"))
    check = MaskCheck(on_leak="raise")  # errors only warn, whatever on_leak says
    with pytest.warns(MaskCheckWarning, match="could not check model 'trains_only'.*ForwardError"):
        history = model.fit(dataset(), epochs=2, verbose=0, callbacks=[check])
    assert len(history.history["loss"]) == 2
    assert check.report.errors
    assert all(math.isnan(n) for n in history.history["maskcheck_findings"])  # unknown, not 0


@pytest.mark.parametrize("kwargs, error, match", [
    ({"on_leak": "ignore"}, ValueError, "on_leak must be 'warn' or 'raise'"),
    ({"every": 0}, ValueError, "every must be None or an int >= 1"),
    ({"every": 1.5}, ValueError, "every must be None or an int >= 1"),
    ({"every": True}, ValueError, "every must be None or an int >= 1"),
    ({"paddding": "post"}, ValueError, "unknown setting 'paddding'"),
    ({"data": np.zeros((2, 3))}, TypeError, "data cannot be set"),
])
def test_bad_arguments_are_rejected_when_the_callback_is_made(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        MaskCheck(**kwargs)


def test_a_bad_setting_value_stops_fit_at_the_first_check() -> None:
    model = compiled(leaky_model())
    with pytest.raises(ValueError, match="padding must be one of"):
        model.fit(dataset(), epochs=1, verbose=0, callbacks=[MaskCheck(padding="sideways")])
    assert model.optimizer.iterations.numpy() == 0
    assert not isinstance(model.train_function, type(None)) and model.fit(dataset(), verbose=0)


def test_the_callback_module_imports_no_engine_at_import_time() -> None:
    """Engines (and numpy) load at the first check: module-level imports are Keras and light maskcheck."""
    import maskcheck.keras as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert imported == {"__future__", "warnings", "numbers", "typing", "keras", "maskcheck",
                        "maskcheck.integrations.assertions", "maskcheck.finding"}


def test_each_epoch_logs_the_counts_for_history_and_csv_logger(tmp_path) -> None:
    """`maskcheck_findings`, `maskcheck_errors` and `maskcheck_warnings` reach History and a
    CSVLogger listed after the callback, on every epoch (the latest check's counts), so the
    columns stay aligned."""
    log, check = tmp_path / "training.csv", MaskCheck()
    with pytest.warns(MaskCheckWarning):
        leaky = compiled(leaky_model()).fit(
            dataset(), epochs=2, verbose=0,
            callbacks=[check, keras.callbacks.CSVLogger(str(log))]).history
    summary = check.report.summary()
    assert leaky["maskcheck_findings"] == [len(check.report.findings)] * 2
    assert leaky["maskcheck_findings"][0] > 0 and "maskcheck_infos" not in leaky
    assert leaky["maskcheck_errors"] == [summary["errors"]] * 2 and summary["errors"] > 0
    assert leaky["maskcheck_warnings"] == [summary["warnings"]] * 2
    rows = list(csv.DictReader(log.open()))
    assert [int(r["maskcheck_findings"]) for r in rows] == leaky["maskcheck_findings"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaskCheckWarning)
        clean = compiled(clean_model()).fit(dataset(), epochs=2, verbose=0,
                                            callbacks=[MaskCheck()]).history
    assert clean["maskcheck_findings"] == [0, 0] and clean["maskcheck_errors"] == [0, 0]


def test_the_warning_lists_ten_findings_then_counts_the_rest() -> None:
    from maskcheck.finding import Finding, Severity
    from maskcheck.keras import MAX_LINES, _leak_message

    leaks = tuple(Finding(rule="MC102", name="unmasked-mixing", severity=Severity.ERROR,
                          kind=("static",), layer=f"conv{i}", layer_class="Conv1D",
                          path=("m", f"conv{i}"), fix=f"Mask conv{i}.", evidence={},
                          message=f"Layer 'conv{i}' (Conv1D) mixes padding. More words here.")
                  for i in range(MAX_LINES + 3))
    lines = _leak_message("m", 0, leaks).splitlines()
    assert lines[0].endswith(f"{MAX_LINES + 3} padding leaks in model 'm' on the first batch of "
                             f"epoch 0: {MAX_LINES + 3} errors")
    assert lines[1] == "  MC102 at 'conv0' (Conv1D): mixes padding"
    assert lines[MAX_LINES + 1] == "  and 3 more"
    assert lines[MAX_LINES + 2] == "fix (MC102): Mask conv0."
    assert len(lines) == MAX_LINES + 4
