"""maskcheck's speed, as ratios against the least the same job could cost.

Not a test: run it by hand (`python benchmarks/run.py`, add `--quick` for
fewer repeats) and read the ratios. Each line sets a command of ours beside
its baseline, timed in the same run on the same machine:

* `maskcheck --version` against `python -c pass`: the CLI must not pay for
  TensorFlow when it has no model to check;
* `maskcheck FIXTURE --mode static` against a script that only imports
  TensorFlow and loads the same model: what the static check adds on top;
* then the static engine's scaling (benchmarks/static_bench.py) and the
  dynamic engine's overhead (benchmarks/dynamic_bench.py), when present.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import shutil
import statistics
import subprocess
import sys
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


def console_script() -> str:
    beside = Path(sys.executable).with_name("maskcheck")
    return str(beside) if beside.exists() else (shutil.which("maskcheck") or "maskcheck")


def wall(command: list[str], repeats: int) -> float:
    """Median wall time of `command` in seconds (one warm-up run first)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(command, capture_output=True, env=env, cwd=ROOT)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


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
    parser.add_argument("--only", choices=("cli", "static", "dynamic"), help="run one section")
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


if __name__ == "__main__":
    main()
