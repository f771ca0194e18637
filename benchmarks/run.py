"""maskcheck's speed, as ratios against the least the same job could cost.

Not a test: run it by hand (`python benchmarks/run.py`, add `--quick` for
fewer repeats) and read the ratios. Each line sets a command of ours beside
its baseline, timed in the same run on the same machine:

* `maskcheck --version` against `python -c pass`: the CLI must not pay for
  TensorFlow when it has no model to check;
* `maskcheck FIXTURE --mode static` against a script that only imports
  TensorFlow and loads the same model: what the static check adds on top;
* then the static engine's scaling (benchmarks/static_bench.py) and the
  dynamic engine's overhead (benchmarks/dynamic_bench.py), when present;
* "dynamic engine v2: whole check vs. load + two predict calls": for a
  BiLSTM tagger, a two-block Transformer encoder classifier and a Conv1D
  tagger, saved as `.keras` in a temporary folder, `maskcheck M.keras
  --format json` against a script that imports TensorFlow, loads the same
  file and calls `model.predict` twice on a (4, 12) batch: two forward
  passes are what a padding probe cannot do without. Target: ratio at most
  1.3 for each model. Each row also shows the traces and `dynamic_ms` the
  report's stats give, and the rules found.

* "source locations": building a model under `maskcheck.record_locations()`
  against building it plainly (benchmarks/locations_bench.py).

* "html": the HTML report of a 1,000-layer model and a 12-block keras-hub
  encoder: render time, page size and the time a headless Chromium takes to
  draw it, against the 2 s bound (benchmarks/html_bench.py).

* "generation": the generation checks (MC306, MC307, MC110) and the whole
  check of a tiny and a GPT-2-small-sized causal LM against load + one
  batched `generate` (benchmarks/generation_bench.py; needs keras-hub).

* "real-size": a 50k-vocabulary BiLSTM tagger, a bert-base classifier and a
  gpt2-base causal LM (random weights, built at run time): wall time and peak
  memory of the whole check against import + load + two predicts on a padded
  (8, 128) batch (benchmarks/realsize_bench.py; needs keras-hub; about 3
  minutes, 2.5 GB of disk in a temporary folder).

`--only {cli,static,dynamic,v2,locations,html,generation,realsize}` runs one section; `--only v2 --quick`
takes about 2.5 minutes on two cores, most of it the BiLSTM check.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIXTURE = ROOT / "fixtures" / "models" / "conv_tagger.keras"

LOAD_ONLY = """
import os, warnings
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
import keras
keras.saving.load_model({path!r})
"""

LOAD_AND_PREDICT_TWICE = """
import os, warnings
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
import numpy as np
import keras
model = keras.saving.load_model({path!r})
x = np.random.default_rng(0).integers(1, 5000, (4, 12), dtype="int32")
model.predict(x, verbose=0)
model.predict(x, verbose=0)
"""


def console_script() -> str:
    beside = Path(sys.executable).with_name("maskcheck")
    return str(beside) if beside.exists() else (shutil.which("maskcheck") or "maskcheck")


def timed(command: list[str], repeats: int) -> tuple[float, subprocess.CompletedProcess]:
    """Median wall time of `command` in seconds (one warm-up run first), and the last run."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(command, capture_output=True, env=env, cwd=ROOT)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times), done


def wall(command: list[str], repeats: int) -> float:
    return timed(command, repeats)[0]


def row(label: str, ours: float, baseline_label: str, baseline: float) -> None:
    print(f"  {label:<58} {ours:8.3f} s   {baseline_label:<32} {baseline:8.3f} s   "
          f"ratio {ours / baseline:5.2f}")


def cli_section(repeats: int) -> None:
    print("CLI start-up and static check (median wall time)")
    row("maskcheck --version", wall([console_script(), "--version"], repeats * 3),
        "python -c pass", wall([sys.executable, "-c", "pass"], repeats * 3))
    rel = FIXTURE.relative_to(ROOT).as_posix()
    row(f"maskcheck {rel} --mode static",
        wall([console_script(), str(FIXTURE), "--mode", "static"], repeats),
        "import tensorflow + load_model", wall([sys.executable, "-c", LOAD_ONLY.format(path=str(FIXTURE))], repeats))


def bilstm_tagger():
    import keras

    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(5000, 128, mask_zero=True)(x)
    h = keras.layers.Bidirectional(keras.layers.LSTM(128, return_sequences=True))(h)
    h = keras.layers.Bidirectional(keras.layers.LSTM(128, return_sequences=True))(h)
    return keras.Model(x, keras.layers.Dense(20, activation="softmax")(h), name="bilstm_tagger")


def transformer_classifier():
    import keras

    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(5000, 64, mask_zero=True)(x)
    for _ in range(2):  # self-attention: Keras passes the embedding's mask on to query and value
        a = keras.layers.MultiHeadAttention(num_heads=2, key_dim=32)(h, h)
        h = keras.layers.LayerNormalization()(keras.layers.Add()([h, a]))
        f = keras.layers.Dense(64)(keras.layers.Dense(128, activation="relu")(h))
        h = keras.layers.LayerNormalization()(keras.layers.Add()([h, f]))
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(x, keras.layers.Dense(2, activation="softmax")(h), name="transformer_classifier")


def conv_tagger():
    import keras

    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(5000, 64, mask_zero=True)(x)
    h = keras.layers.Conv1D(64, 3, padding="same", activation="relu")(h)
    h = keras.layers.Conv1D(64, 3, padding="same", activation="relu")(h)
    return keras.Model(x, keras.layers.Dense(10, activation="softmax")(h), name="conv_tagger")


V2_MODELS = (bilstm_tagger, transformer_classifier, conv_tagger)

SAVE_V2_MODELS = """
import os, sys, warnings
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
sys.dont_write_bytecode = True  # no __pycache__ left in benchmarks/
sys.path.insert(0, {here!r})
import run
run.save_v2_models({folder!r})
"""


def save_v2_models(folder: str) -> None:
    for factory in V2_MODELS:
        model = factory()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.save(Path(folder) / f"{factory.__name__}.keras")


def v2_section(quick: bool) -> None:
    """Whole `maskcheck M.keras` runs against load + two predicts, per model, in one run.

    The models are built in a child process, so this one never holds TensorFlow
    (its threads and memory) while it times the others.
    """
    repeats = 1 if quick else 3
    folder = Path(tempfile.mkdtemp(prefix="maskcheck-bench-v2-"))
    try:
        print("\ndynamic engine v2: whole check vs. load + two predict calls "
              f"(median of {repeats} after a warm-up; target ratio <= 1.3)")
        built = subprocess.run([sys.executable, "-c", SAVE_V2_MODELS.format(here=str(HERE), folder=str(folder))],
                               capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if built.returncode != 0:
            raise SystemExit(f"building the v2 models failed: {built.stderr.strip()}")
        print(f"  {'model':<24}{'maskcheck s':>12}{'load+2 predict s':>18}{'ratio':>8}"
              f"{'traces':>8}{'dynamic_ms':>12}  rules")
        for factory in V2_MODELS:
            path = folder / f"{factory.__name__}.keras"
            ours, done = timed([console_script(), str(path), "--format", "json"], repeats)
            if done.returncode not in (0, 1):  # 0: clean, 1: findings; anything else is no verdict
                raise SystemExit(f"maskcheck {path.name} exited {done.returncode}: {done.stderr.strip()}")
            base, loaded = timed([sys.executable, "-c", LOAD_AND_PREDICT_TWICE.format(path=str(path))], repeats)
            if loaded.returncode != 0:
                raise SystemExit(f"baseline for {path.name} failed: {loaded.stderr.strip()}")
            report = json.loads(done.stdout)["models"][0]
            stats = report["stats"]
            rules = sorted({f["rule"] for f in report["findings"]})
            print(f"  {factory.__name__:<24}{ours:>12.3f}{base:>18.3f}{ours / base:>8.2f}"
                  f"{stats.get('traces', '?')!s:>8}{stats.get('dynamic_ms')!s:>12}  {', '.join(rules) or 'none'}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def optional_section(name: str, quick: bool) -> None:
    path = HERE / f"{name}.py"
    if not path.exists():
        print(f"\n({name}.py not present: skipped)")
        return
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    print()
    if "quick" in inspect.signature(module.main).parameters:
        module.main(quick=quick)
    else:  # a section without a quick mode
        module.main()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    parser.add_argument("--only", choices=("cli", "static", "dynamic", "v2", "locations", "html",
                                           "generation", "realsize"),
                        help="run one section")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    repeats = 3 if args.quick else 5
    print(f"maskcheck benchmarks on {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}\n")
    if args.only in (None, "cli"):
        cli_section(repeats)
    if args.only in (None, "static"):
        optional_section("static_bench", args.quick)
    if args.only in (None, "dynamic"):
        optional_section("dynamic_bench", args.quick)
    if args.only in (None, "v2"):
        v2_section(args.quick)
    if args.only in (None, "locations"):
        optional_section("locations_bench", args.quick)
    if args.only in (None, "html"):
        optional_section("html_bench", args.quick)
    if args.only in (None, "generation"):
        if importlib.util.find_spec("keras_hub") is None:
            print("\n(generation: keras-hub is not installed: skipped)")
        else:
            optional_section("generation_bench", args.quick)
    if args.only in (None, "realsize"):
        if importlib.util.find_spec("keras_hub") is None:
            print("\n(real-size: keras-hub is not installed: skipped)")
        else:
            optional_section("realsize_bench", args.quick)


if __name__ == "__main__":
    main()
