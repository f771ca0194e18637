"""The dynamic engine's overhead against the least any padding probe must spend.

For a BiLSTM tagger, a small Transformer encoder and a Conv1D tagger, it
times `check_model(mode="dynamic")` on a fresh model beside plain forward
passes (`model.predict_on_batch`, also on a fresh model, so both pay for
tracing) over the same probe tensors: the stacked perturbation batch and
the batch with extra padding. Target ratio: at most 1.5. Then the whole
`maskcheck model.keras` run against `python -c` import + load + one predict.

Run by hand: `python benchmarks/dynamic_bench.py [--quick]`, or through
benchmarks/run.py.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PREDICT_ONLY = """
import os, warnings, numpy as np
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
import keras
m = keras.saving.load_model({path!r})
m.predict_on_batch(np.ones((4, 12), "int32"))
"""


def bilstm_tagger():
    import keras

    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(1000, 32, mask_zero=True)(x)
    h = keras.layers.Bidirectional(keras.layers.LSTM(32, return_sequences=True))(h)
    return keras.Model(x, keras.layers.Dense(9)(h), name="bilstm_tagger")


def transformer_encoder():
    import keras

    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(1000, 32, mask_zero=True)(x)
    for _ in range(2):
        a = keras.layers.MultiHeadAttention(4, 8)(h, h)
        h = keras.layers.LayerNormalization()(keras.layers.Add()([h, a]))
        f = keras.layers.Dense(32)(keras.layers.Dense(64, activation="relu")(h))
        h = keras.layers.LayerNormalization()(keras.layers.Add()([h, f]))
    return keras.Model(x, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h)),
                       name="transformer_encoder")


def conv1d_tagger():
    import keras

    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(1000, 32, mask_zero=True)(x)
    h = keras.layers.Conv1D(32, 3, padding="same", activation="relu")(h)
    h = keras.layers.Conv1D(32, 3, padding="same", activation="relu")(h)
    return keras.Model(x, keras.layers.Dense(9)(h), name="conv1d_tagger")


MODELS = (bilstm_tagger, transformer_encoder, conv1d_tagger)


def probe_tensors(model, config):
    """The tensors the dynamic check feeds the model: stacked draws and the grown batch."""
    import numpy as np

    from maskcheck.dynamic.batches import prepare, stack_draws, stacked_inputs, synthesize
    from maskcheck.dynamic.plan import build_plan
    from maskcheck.static.adapter import adapt_model
    from maskcheck.static.dataflow import analyze

    graph = adapt_model(model)
    plan = build_plan(model, config, graph, analyze(graph))
    probe = synthesize(plan, config)
    prep = prepare(model, plan, probe.x, probe.mask, None, "post")
    rows = stack_draws(prep.mask, probe.sides)
    stacked = stacked_inputs(prep, rows, config.seed)
    t = prep.mask.shape[1]
    extra = max(2, t // 2)
    grown = np.concatenate([prep.flat[0], np.zeros((prep.flat[0].shape[0], extra), prep.flat[0].dtype)], 1)
    return [stacked, grown]


def time_dynamic(factory, config) -> float:
    from maskcheck.engine import check_model

    model = factory()
    started = time.perf_counter()
    check_model(model, target=model.name, config=config)
    return time.perf_counter() - started


def time_forward(factory, config) -> float:
    model = factory()
    batches = probe_tensors(model, config)
    started = time.perf_counter()
    for batch in batches:
        model.predict_on_batch(batch)
    return time.perf_counter() - started


def time_forward_one_trace(factory, config) -> float:
    """The strictest baseline: one tf.function with open batch/time axes, traced once."""
    import tensorflow as tf

    model = factory()
    batches = probe_tensors(model, config)
    spec = tf.TensorSpec([None, None], tf.as_dtype(batches[0].dtype))
    started = time.perf_counter()
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec], autograph=False)
    for batch in batches:
        fn(batch)
    return time.perf_counter() - started


def whole_run(repeats: int) -> tuple[float, float]:
    folder = Path(tempfile.mkdtemp(prefix="maskcheck-bench-"))
    path = folder / "conv1d_tagger.keras"
    conv1d_tagger().save(path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    ours, base = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "maskcheck", str(path), "--mode", "all"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", PREDICT_ONLY.format(path=str(path))], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        base.append(time.perf_counter() - started)
    path.unlink()
    folder.rmdir()
    return statistics.median(ours), statistics.median(base)


def main(quick: bool = False) -> None:
    import warnings

    import tensorflow as tf

    warnings.filterwarnings("ignore")
    tf.get_logger().setLevel("ERROR")  # predict_on_batch's retracing notes
    from maskcheck.config import Config

    config = Config.from_values(mode="dynamic")
    repeats = 1 if quick else 3
    time_dynamic(conv1d_tagger, config)  # warm TensorFlow up once, for both sides
    time_forward(conv1d_tagger, config)
    print("dynamic engine vs plain forward passes over the same probe tensors (target ratio <= 1.5)")
    print("  forward: model.predict_on_batch per probe batch (fresh model, traces per shape);")
    print("  1-trace: one tf.function with open batch/time axes over the same batches (strictest)")
    print(f"{'model':<22}{'dynamic s':>11}{'forward s':>11}{'ratio':>8}{'1-trace s':>11}{'ratio':>8}")
    for factory in MODELS:
        dyn = statistics.median(time_dynamic(factory, config) for _ in range(repeats))
        fwd = statistics.median(time_forward(factory, config) for _ in range(repeats))
        one = statistics.median(time_forward_one_trace(factory, config) for _ in range(repeats))
        print(f"{factory.__name__:<22}{dyn:>11.3f}{fwd:>11.3f}{dyn / fwd:>8.2f}{one:>11.3f}{dyn / one:>8.2f}")
    ours, base = whole_run(1 if quick else 2)
    print(f"{'maskcheck model.keras':<22}{ours:>11.3f}{base:>11.3f}{ours / base:>8.2f}"
          "   (vs python -c import + load + one predict)")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
