"""Hostile model files: none runs code, each is refused in one line, quickly and cheaply.

The files are built at test time by tests/hostile_files.py (the known Keras attack
classes: Lambda bytecode, arbitrary module/class_name, non-modeling APIs as layers,
TFSMLayer, path traversal and symlinks, archive and JSON bombs). Every payload aims
at a file under the test's own tmp folder, so "no code ran" is checked by looking
for it. One CLI run covers every file at once (exit code, error types, stderr,
peak memory, wall time); in-process loads pin each case's reason and time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from maskcheck.loading import LoadError, Target, load_target
from tests.hostile_files import CASES, CLEAN, Case, build, escape_name, marker, write_clean, write_code_payloads

ROOT = Path(__file__).resolve().parent.parent
# A clean small check peaks near 0.72 GiB (TensorFlow and Keras loaded, measured); about
# twice that is generous, and far below what a bomb costs when inflated (2.7 GB for a 1 GiB
# config.json). The bombs here are sized just past the caps so the suite stays fast.
MAX_RSS_KIB = 1536 * 1024
MAX_CLI_SECONDS = 90  # one process for all files, TensorFlow import included
MAX_LOAD_SECONDS = 5  # one refusal in-process, TensorFlow already imported


@dataclass(frozen=True)
class Hostile:
    base: Path  # the tmp folder that holds everything; nothing may appear outside it
    models: Path  # the hostile files, the clean twin and the payload targets
    before: dict[str, tuple[int, int]]  # every file under `base` after building

    def escaped(self) -> list[Path]:
        """Files that archive members aimed outside `models` would have created."""
        name = escape_name(self.models)
        places = [self.base, self.models.parent, Path(tempfile.gettempdir()), Path.cwd(), Path.cwd().parent]
        return [place / name for place in places if (place / name).exists()]

    def ran(self) -> list[str]:
        """Traces of a payload: markers, a fetched file, escaped members."""
        markers = sorted(p.name for p in (self.models / "markers").iterdir())
        fetched = sorted(p.name for p in (self.models / "fetched").rglob("*"))  # empty if never made
        return markers + fetched + [str(p) for p in self.escaped()]


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    base = tmp_path_factory.mktemp("hostile")
    models = base / "models"
    models.mkdir()
    (base / "cwd").mkdir()
    build(models)
    return Hostile(base, models, files_under(base))


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_kib: int


def _peak_kib(pid: int) -> int | None:
    """The process's own peak resident memory (VmHWM of its current address space)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def run_measured(args: list[str], cwd: Path, timeout: float) -> CliRun:
    """Run a child and read its own peak memory.

    Not from wait4's ru_maxrss alone: Linux carries the parent's high-water mark into a
    forked child across exec, so a pytest worker that grew past the bound would fail the
    child. VmHWM of the child's own address space is polled instead (it only grows, so
    the last reading before exit is the peak to within one poll); wait4 is the fallback
    where /proc does not exist."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=err)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        peak = [0]
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.02):
                kib = _peak_kib(proc.pid)
                if kib is not None:
                    peak[0] = max(peak[0], kib)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            done.set()
            killer.cancel()
        poller.join()
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return CliRun(proc.returncode, out.read().decode(), err.read().decode(), seconds,
                      peak[0] or usage.ru_maxrss)


@pytest.fixture(scope="module")
def cli(hostile: Hostile) -> CliRun:
    """`maskcheck --format json` over every hostile file and the clean twin, in one process."""
    targets = [str(hostile.models / case.name) for case in CASES] + [str(hostile.models / CLEAN)]
    return run_measured([sys.executable, "-m", "maskcheck", *targets, "--format", "json"],
                        cwd=hostile.base / "cwd", timeout=3 * MAX_CLI_SECONDS)


def by_name(run: CliRun) -> dict[str, dict]:
    assert run.stdout, run.stderr[-2000:]
    return {Path(m["target"]).name: m for m in json.loads(run.stdout)["models"]}


def test_cli_refuses_every_hostile_file_and_checks_the_clean_twin(cli: CliRun) -> None:
    """Exit 2, every hostile file an error of its type, the clean twin checked as usual."""
    models = by_name(cli)
    assert cli.returncode == 2, cli.stderr[-2000:]
    wrong = {case.name: models[case.name].get("error") or models[case.name]["status"]
             for case in CASES
             if models[case.name]["status"] != "error" or models[case.name]["error"]["type"] != case.error_type}
    assert not wrong, f"not refused as expected: {wrong}"
    assert models[CLEAN]["status"] != "error", models[CLEAN]
    assert models[CLEAN]["model"] == "clean"


def test_cli_says_one_line_per_refused_file_and_no_traceback(cli: CliRun) -> None:
    """Each refusal is one line on stderr naming its reason; nothing for the clean twin."""
    models = by_name(cli)
    assert "Traceback" not in cli.stderr + cli.stdout
    refused = [case for case in CASES if models[case.name]["status"] == "error"]
    assert refused  # which ones must be refused is the test above
    for case in refused:
        target, error = models[case.name]["target"], models[case.name]["error"]
        assert "\n" not in error["message"] and case.words in error["message"], (case.name, error)
        lines = [line for line in cli.stderr.splitlines() if line.startswith(f"maskcheck: {target}: ")]
        assert lines == [f"maskcheck: {target}: {error['message']}"], case.name
    assert f"maskcheck: {models[CLEAN]['target']}: " not in cli.stderr


def test_cli_run_is_bounded_in_time_and_memory(cli: CliRun) -> None:
    """No file costs the memory or time of inflating it (the bombs are small on disk)."""
    assert cli.seconds < MAX_CLI_SECONDS, cli.seconds
    assert cli.max_rss_kib < MAX_RSS_KIB, f"peak {cli.max_rss_kib // 1024} MiB"


def test_cli_ran_no_payload_and_wrote_nothing(hostile: Hostile, cli: CliRun) -> None:
    """No marker, no fetched file, no escaped member, nothing new under the tmp folder or in the cwd."""
    assert cli.stdout  # the run happened
    assert hostile.ran() == []
    assert files_under(hostile.base) == hostile.before
    assert not any((hostile.base / "cwd").iterdir())


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_load_refuses_in_one_line_without_running_the_payload(hostile: Hostile, case: Case) -> None:
    import keras

    start = time.monotonic()
    with pytest.raises(LoadError) as caught:
        load_target(Target(case.name, "file", str(hostile.models / case.name)), unsafe=False)
    seconds = time.monotonic() - start
    error = caught.value
    assert (error.type, case.words in error.message) == (case.error_type, True), (case.attack, error.message)
    assert "\n" not in error.message
    assert seconds < MAX_LOAD_SECONDS, (case.attack, seconds)
    assert hostile.ran() == [], case.attack
    assert keras.src.saving.serialization_lib.in_safe_mode() is not False  # nothing switched safe mode off
    assert files_under(hostile.base) == hostile.before


def test_the_clean_twin_loads(hostile: Hostile) -> None:
    """The same base, untouched, is not refused: the refusals come from the payloads."""
    model, data = load_target(Target(CLEAN, "file", str(hostile.models / CLEAN)), unsafe=False)
    assert model.name == "clean" and data is None


def test_the_code_payloads_are_live(tmp_path: Path) -> None:
    """Loaded with --unsafe, the code payloads do run: safe mode is what stops them above."""
    import numpy as np

    names = write_code_payloads(tmp_path, write_clean(tmp_path))
    assert not any((tmp_path / "markers").iterdir())
    for name in names:
        model, _ = load_target(Target(name, "file", str(tmp_path / name)), unsafe=True)
        model(np.zeros((1, 3, 4), "float32"))  # as a probe would: the SavedModel graph writes then
        assert marker(tmp_path, name).exists(), name
