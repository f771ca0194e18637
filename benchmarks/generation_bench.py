"""The generation checks' cost against using the model once (issue 24).

For a tiny GPT-2 and a GPT-2-small-sized one (124M parameters: 12 layers, 768
wide, 50,257 tokens; random weights, built and saved as `.keras` in a temporary
folder, never stored), side by side in one run:

* `maskcheck M.keras --select MC306,MC307,MC110 --format json`: the generation
  checks alone (load, static MC110, prompts alone and in batches, the cache
  against a full pass);
* `maskcheck M.keras --format json`: the whole check;
* the baseline: a script that imports TensorFlow, loads the same file and
  calls `generate` once on a batch of four prompts of different lengths
  (greedy, 4 new tokens), which is the least a user does with the model.

Prints the seconds of each and the ratios to the baseline. The models are
built in a child process, so this one never holds TensorFlow while timing.
"""

from __future__ import annotations

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

BUILD = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, keras_hub
folder, name, layers, heads, hidden, vocabulary = sys.argv[1:7]
layers, heads, hidden, vocabulary = int(layers), int(heads), int(hidden), int(vocabulary)
keras.utils.set_random_seed(0)
letters = "abcdefghijklmnopqrstuvwxyz"
vocab = {"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate(letters)}}
vocab["ab"] = len(vocab)
vocab.update({f"t{i}": i for i in range(len(vocab), vocabulary)})
tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=["a b"])
preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer=tokenizer, sequence_length=16)
backbone = keras_hub.models.GPT2Backbone(vocabulary_size=vocabulary, num_layers=layers,
    num_heads=heads, hidden_dim=hidden, intermediate_dim=4 * hidden, max_sequence_length=1024)
model = keras_hub.models.GPT2CausalLM(backbone, preprocessor=preprocessor)
model.compile(sampler="greedy")
print(model.count_params())
model.save(os.path.join(folder, name + ".keras"))
"""

GENERATE_ONCE = """
import os, warnings
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
import keras, keras_hub
model = keras.saving.load_model({path!r})
model.compile(sampler="greedy")
model.generate(["abcdefg", "ab", "abcd", "abcdef"], max_length=12)
"""

MODELS = (("gpt2_tiny", 2, 2, 16, 64), ("gpt2_small_size", 12, 12, 768, 50257))


def _console_script() -> str:
    found = shutil.which("maskcheck", path=str(Path(sys.executable).parent))
    return found or "maskcheck"


def _timed(command: list[str], repeats: int) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    times, done = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - started)
    assert done is not None
    return statistics.median(times), done


def main(quick: bool = False) -> None:
    repeats = 1 if quick else 3
    folder = tempfile.mkdtemp(prefix="maskcheck-bench-gen-")
    try:
        print("generation checks: maskcheck vs. load + one batched generate "
              f"(median of {repeats}; prompts of 7, 2, 4 and 6 tokens, 4 new tokens)")
        print(f"  {'model':<18}{'params':>12}{'generation s':>14}{'whole s':>10}"
              f"{'load+generate s':>17}{'ratios':>14}  generation stats")
        for name, layers, heads, hidden, vocabulary in MODELS:
            built = subprocess.run([sys.executable, "-c", BUILD, folder, name, str(layers),
                                    str(heads), str(hidden), str(vocabulary)],
                                   capture_output=True, text=True,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            if built.returncode != 0:
                raise SystemExit(f"building {name} failed: {built.stderr.strip()[-2000:]}")
            params = int(built.stdout.strip().splitlines()[-1])
            path = str(Path(folder) / f"{name}.keras")
            generation, done = _timed([_console_script(), path, "--format", "json", "--select",
                                       "MC306,MC307,MC110"], repeats)
            if done.returncode not in (0, 1):
                raise SystemExit(f"maskcheck {name} exited {done.returncode}: {done.stderr.strip()}")
            stats = json.loads(done.stdout)["models"][0]["stats"]
            whole, done = _timed([_console_script(), path, "--format", "json"], repeats)
            if done.returncode not in (0, 1):
                raise SystemExit(f"maskcheck {name} exited {done.returncode}: {done.stderr.strip()}")
            base, loaded = _timed([sys.executable, "-c", GENERATE_ONCE.format(path=path)], repeats)
            if loaded.returncode != 0:
                raise SystemExit(f"baseline for {name} failed: {loaded.stderr.strip()[-2000:]}")
            print(f"  {name:<18}{params:>12,}{generation:>14.2f}{whole:>10.2f}{base:>17.2f}"
                  f"{generation / base:>7.2f}/{whole / base:<6.2f}  "
                  f"{stats.get('generation')} dynamic_ms={stats.get('dynamic_ms')}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
