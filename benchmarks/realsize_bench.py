"""Real-size models: what a whole check costs against using the model (issue 27).

Three models of the size users train, random weights, built in a child process
and saved as `.keras` in a temporary folder (never stored):

* `bilstm_tagger_50k`: Embedding(50,000 x 300, mask_zero) -> 2 x BiLSTM(256) ->
  Dense tagger, 18M parameters;
* `bert_base_classifier`: keras-hub `BertTextClassifier` with the bert-base
  configuration (12 layers, 768 wide, 30,522 tokens; 109M) and its preprocessor
  (sequence length 128);
* `gpt2_base_causal_lm`: keras-hub `GPT2CausalLM` with the gpt2-base
  configuration (12 layers, 768 wide, 50,257 tokens; 124M) and its preprocessor
  (sequence length 128).

For each, side by side in one run (three alternated runs each, median time and
largest peak; one with `--quick`): `maskcheck M.keras --format json` against a
script that imports TensorFlow, loads the same file and calls `predict` twice on
a padded batch of 8 rows of 128 positions (token ids with zero tails for the
tagger, 8 texts of different lengths for the keras-hub models, which their
preprocessor packs to 128). Prints wall time and peak resident memory (the
child's own high-water mark, `VmHWM`, polled) of both and their ratios; the
targets are 1.2x for time and 1.5x for memory. Also the verdict (rules found)
and the probe sizes the report's stats say the plan chose.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BUILD = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
folder, name = sys.argv[1:3]
keras.utils.set_random_seed(0)
if name == "bilstm_tagger_50k":
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50000, 300, mask_zero=True)(x)
    h = keras.layers.Bidirectional(keras.layers.LSTM(256, return_sequences=True))(h)
    h = keras.layers.Bidirectional(keras.layers.LSTM(256, return_sequences=True))(h)
    model = keras.Model(x, keras.layers.Dense(20, activation="softmax")(h), name=name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
else:
    import keras_hub
    if name == "bert_base_classifier":
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        vocab += [f"w{i}" for i in range(30522 - len(vocab))]
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab)
        preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer=tokenizer,
                                                                       sequence_length=128)
        backbone = keras_hub.models.BertBackbone(vocabulary_size=30522, num_layers=12, num_heads=12,
            hidden_dim=768, intermediate_dim=3072, max_sequence_length=512)
        model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=preprocessor)
    else:
        letters = "abcdefghijklmnopqrstuvwxyz"
        vocab = {"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate(letters)}}
        vocab["ab"] = len(vocab)
        vocab.update({f"t{i}": i for i in range(len(vocab), 50257)})
        tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=["a b"])
        preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer=tokenizer, sequence_length=128)
        backbone = keras_hub.models.GPT2Backbone(vocabulary_size=50257, num_layers=12, num_heads=12,
            hidden_dim=768, intermediate_dim=3072, max_sequence_length=1024)
        model = keras_hub.models.GPT2CausalLM(backbone, preprocessor=preprocessor)
        model.compile(sampler="greedy")
print(model.count_params())
model.save(os.path.join(folder, name + ".keras"))
"""

LOAD_AND_PREDICT_TWICE = """
import os, warnings
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
import numpy as np
import keras
path, name = {path!r}, {name!r}
if name != "bilstm_tagger_50k":
    import keras_hub  # registers the task classes
model = keras.saving.load_model(path)
lengths = [128, 100, 90, 64, 50, 32, 16, 5]
if name == "bilstm_tagger_50k":
    rng = np.random.default_rng(0)
    x = np.zeros((8, 128), "int32")
    for row, n in enumerate(lengths):
        x[row, :n] = rng.integers(1, 50000, n)
elif name == "bert_base_classifier":
    x = [" ".join(f"w{{i}}" for i in range(n - 2)) for n in lengths]
else:
    x = ["".join("abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(n - 1)) for n in lengths]
model.predict(x, batch_size=8, verbose=0)
model.predict(x, batch_size=8, verbose=0)
"""

MODELS = ("bilstm_tagger_50k", "bert_base_classifier", "gpt2_base_causal_lm")


def _console_script() -> str:
    found = shutil.which("maskcheck", path=str(Path(sys.executable).parent))
    return found or "maskcheck"


def measured(command: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall seconds, the child's own peak RSS in bytes (VmHWM, polled) and the result.

    Not `wait4`'s `ru_maxrss`: Linux carries the forking process's high-water
    mark into the child, so a parent that once held a model would inflate it.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = [0]

    def poll() -> None:
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            except OSError:
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, err = child.communicate()
    seconds = time.perf_counter() - started
    watcher.join()
    return seconds, peak[0], subprocess.CompletedProcess(command, child.returncode, out, err)


def _probe_words(stats: dict) -> str:
    probe = stats.get("probe") or {}
    return (f"{probe.get('length', '?')}, {probe.get('samples', '?')}, {probe.get('passes', '?')}"
            + (f" on {probe['device']}" if probe.get("device") else ""))


def main(quick: bool = False, only: tuple[str, ...] = MODELS) -> None:
    repeats = 1 if quick else 3
    folder = tempfile.mkdtemp(prefix="maskcheck-bench-real-")
    try:
        print("real-size models: maskcheck vs. import + load + two predicts on a padded (8, 128) batch "
              f"(median time and largest peak of {repeats} alternated run(s) each; targets: "
              "time <= 1.2x, peak memory <= 1.5x)")
        print(f"  {'model':<22}{'params':>12}{'maskcheck':>18}{'load+2 predict':>18}"
              f"{'time':>7}{'memory':>8}  rules / probe (length, samples, passes)")
        for name in only:
            built = subprocess.run([sys.executable, "-c", BUILD, folder, name], capture_output=True,
                                   text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            if built.returncode != 0:
                raise SystemExit(f"building {name} failed: {built.stderr.strip()[-2000:]}")
            params = int(built.stdout.strip().splitlines()[-1])
            path = str(Path(folder) / f"{name}.keras")
            base_times, ours_times, base_rss, ours_rss = [], [], 0, 0
            for _ in range(repeats):  # alternated, so drift on the machine hits both alike
                seconds, rss, loaded = measured([sys.executable, "-c",
                                                 LOAD_AND_PREDICT_TWICE.format(path=path, name=name)])
                if loaded.returncode != 0:
                    raise SystemExit(f"baseline for {name} failed: {loaded.stderr.strip()[-2000:]}")
                base_times.append(seconds)
                base_rss = max(base_rss, rss)
                seconds, rss, done = measured([_console_script(), path, "--format", "json"])
                if done.returncode not in (0, 1):
                    raise SystemExit(f"maskcheck {name} exited {done.returncode}: "
                                     f"{done.stderr.strip()[-2000:]}")
                ours_times.append(seconds)
                ours_rss = max(ours_rss, rss)
            base_s, ours_s = statistics.median(base_times), statistics.median(ours_times)
            report = json.loads(done.stdout)["models"][0]
            stats = report["stats"]
            rules = ",".join(sorted({f["rule"] for f in report["findings"]})) or "none"
            gib = 1024 ** 3
            print(f"  {name:<22}{params:>12,}{ours_s:>9.1f} s {ours_rss / gib:>4.1f} G"
                  f"{base_s:>9.1f} s {base_rss / gib:>4.1f} G{ours_s / base_s:>6.2f}x"
                  f"{ours_rss / base_rss:>7.2f}x  {rules} / {_probe_words(stats)}")
            sys.stdout.flush()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    names = tuple(a for a in sys.argv[1:] if a != "--quick")
    main(quick="--quick" in sys.argv, only=names or MODELS)
