"""The pytest plugin, run as real pytest sessions with `pytester` (in subprocesses,
so each session imports TensorFlow fresh and loads the plugin from its entry point).

Sessions are few and shared (each costs seconds for the TensorFlow import): one
covers the fixture, marker, ini settings and `--maskcheck` collection; one runs
under pytest-xdist; one runs the example file of docs/testing.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"
DOCS = ROOT / "docs" / "testing.md"
TIMEOUT = 240

MODELS_MODULE = '''
import keras
import numpy as np

X = np.array([[5, 7, 9, 0, 0], [3, 0, 0, 0, 0]], dtype="int32")
PRE = np.array([[0, 0, 5, 7, 9], [0, 0, 0, 0, 3]], dtype="int32")


def tagger(middle=None, name="clean"):
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(100, 8, mask_zero=True, name="embedding")(x)
    if middle is not None:
        h = middle(h)
    h = keras.layers.LSTM(8, return_sequences=True, name="lstm")(h)
    return keras.Model(x, keras.layers.Dense(5, name="tags")(h), name=name)


def leaky():
    return tagger(keras.layers.Conv1D(8, 3, padding="same", name="conv"), name="leaky")


def causal():
    """Safe under post-padding, leaks under pre-padding."""
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(100, 8, mask_zero=True, name="embedding")(x)
    h = keras.layers.Conv1D(8, 3, padding="causal", name="causal_conv")(h)
    return keras.Model(x, keras.layers.Dense(3, name="tags")(h), name="causal")
'''

LIGHT_CONFTEST = '''
import sys

HEAVY_AT_SESSION_START = []


def pytest_sessionstart(session):  # after every plugin's pytest_configure, before collection
    HEAVY_AT_SESSION_START.extend(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
'''

LIGHT_TEST = '''
from conftest import HEAVY_AT_SESSION_START

def test_plugin_loaded_without_tensorflow(request):
    assert request.config.pluginmanager.hasplugin("maskcheck")
    assert HEAVY_AT_SESSION_START == []
'''

SESSION_TESTS = '''
import pytest

import maskcheck as mc
from models_for_tests import PRE, X, causal, leaky, tagger

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_leaky_assertion_fails():
    mc.assert_padding_invariant(leaky(), X, lengths=[3, 1])


def test_clean_assertion_passes():
    mc.assert_padding_invariant(tagger(), X, lengths=[3, 1])


def test_fixture_report_of_clean_model(maskcheck):
    report = maskcheck(tagger())
    assert isinstance(report, mc.Report) and report.ok and report.findings == ()
    assert maskcheck.check(tagger()).findings == ()


def test_fixture_assert_clean_fails(maskcheck):
    maskcheck.assert_clean(leaky())


def test_findings_comparison_fails(maskcheck):
    assert maskcheck(leaky()).findings == ()


def test_settings_from_ini_and_pyproject(maskcheck):
    assert maskcheck.config.ignore == {"MC104"}  # pytest ini
    assert maskcheck.config.seed == 3  # [tool.maskcheck]


@pytest.mark.maskcheck(select=["MC101"], fail_on="never")
def test_marker_select_and_fail_on(maskcheck):
    report = maskcheck.assert_clean(leaky())  # passes: nothing fails under fail_on=never
    assert [f.rule for f in report.findings] == ["MC101"]


@pytest.mark.maskcheck(ignore="MC1,MC3")
def test_marker_ignore(maskcheck):
    assert maskcheck(leaky()).findings == ()


@pytest.mark.maskcheck(padding="pre")
def test_marker_padding(maskcheck):
    with pytest.raises(mc.PaddingLeakError, match="pre-padding"):
        maskcheck.assert_padding_invariant(causal(), PRE, lengths=[3, 1])


def test_without_marker_the_same_call_reads_post_padding(maskcheck):
    maskcheck.assert_padding_invariant(causal(), PRE, lengths=[3, 1])


@pytest.mark.maskcheck(ignore="MC1,MC3", fail_on="error")
class TestClosestMarkerWins:
    def test_class_marker(self, maskcheck):
        assert maskcheck.config.fail_on == "error"
        assert maskcheck(leaky()).findings == ()

    @pytest.mark.maskcheck(ignore="MC3")
    def test_method_marker_overrides_the_class_marker(self, maskcheck):
        assert maskcheck.config.fail_on == "error"  # still from the class
        assert "MC102" in {f.rule for f in maskcheck(leaky()).findings}


@pytest.mark.maskcheck(selekt="MC1")
def test_unknown_marker_argument(maskcheck):
    pass


@pytest.mark.maskcheck(padding="sideways")
def test_bad_marker_value(maskcheck):
    pass
'''

PYPROJECT = '''
[tool.pytest.ini_options]
maskcheck_ignore = "MC104"

[tool.maskcheck]
seed = 3
'''


def _copy_models(pytester: pytest.Pytester, broken: bool = False) -> None:
    target = pytester.mkdir("models")
    for name in ("conv_tagger", "lstm_tagger"):
        shutil.copy(MODELS / f"{name}.keras", target / f"{name}.keras")
    if broken:
        (target / "broken.keras").write_bytes(b"not a zip archive")


def _section(output: str, title: str) -> str:
    """The body of one `____ title ____` section of pytest's output, without captured output."""
    match = re.search(rf"_+ {re.escape(title)} _+\n(.*?)(?=\n_{{3,}} |\n={{3,}} |\n-{{3,}} Captured )", output, re.S)
    assert match, f"no section {title!r} in:\n{output}"
    return match.group(1)


def test_importing_the_plugin_and_maskcheck_does_not_import_tensorflow():
    code = ("import sys, maskcheck, maskcheck.pytest_plugin, maskcheck.assertions\n"
            "assert maskcheck.PaddingLeakError is maskcheck.assertions.PaddingLeakError\n"
            "assert issubclass(maskcheck.PaddingLeakError, AssertionError)\n"
            "assert callable(maskcheck.assert_padding_invariant) and callable(maskcheck.assert_loss_ignores_padding)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'hypothesis')\n"
            "             or m == 'maskcheck.probe' or m.startswith('maskcheck.dynamic')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_plugin_session(pytester: pytest.Pytester) -> None:
    """Fixture, marker, ini settings, assertion messages and `--maskcheck` in one session."""
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makeconftest(LIGHT_CONFTEST)
    pytester.makepyfile(models_for_tests=MODELS_MODULE, test_a_light=LIGHT_TEST, test_session=SESSION_TESTS)
    _copy_models(pytester, broken=True)
    result = pytester.runpytest_subprocess("--maskcheck", "-rA", "-p", "no:cacheprovider", timeout=TIMEOUT)
    out = result.stdout.str()
    result.assert_outcomes(passed=11, failed=5, errors=2)

    # A leaking model's test fails naming the layer, the sample and the position.
    leak = _section(out, "test_leaky_assertion_fails")
    assert "PaddingLeakError: model 'leaky'" in leak
    assert re.search(r"leak starts at: layer 'conv' \(Conv1D\)", leak), leak
    assert re.search(r"largest change: sample [01], position \d of output 'tags', post-padding", leak), leak
    assert re.search(r"max \|diff\| = [0-9.e-]+", leak), leak

    # The fixture fails with the text report; a findings comparison lists the findings.
    assert "leaky:conv (Conv1D): MC102 [error] unmasked-mixing" in _section(out, "test_fixture_assert_clean_fails")
    compare = _section(out, "test_findings_comparison_fails")
    assert re.search(r"maskcheck findings differ: [2-9] finding\(s\)", compare), compare
    assert "MC102 [error] unmasked-mixing at leaky/conv (Conv1D)" in compare

    # An unknown marker argument, and a bad marker value, are errors naming them.
    assert "unknown keyword argument(s) 'selekt'" in _section(out, "ERROR at setup of test_unknown_marker_argument")
    assert "--padding must be one of post, pre, both, not 'sideways'" in _section(
        out, "ERROR at setup of test_bad_marker_value")

    # --maskcheck: one item per .keras file, failing with the text report, not a traceback.
    report = _section(out, "maskcheck models/conv_tagger.keras")
    lines = report.splitlines()
    assert lines[0].startswith("models/conv_tagger.keras:conv (Conv1D): MC1"), report
    assert re.search(r"^models/conv_tagger.keras:conv \(Conv1D\): MC102 \[error\] unmasked-mixing", report, re.M)
    assert all(line.startswith(("models/conv_tagger.keras:", "    fix: ", "    evidence: ", "    related: ", "Checked 1 model: ")) for line in lines)
    assert "Traceback" not in report and "runtest" not in report and "MaskcheckFailure" not in report
    result.stdout.fnmatch_lines([
        "maskcheck: collecting *.keras files; mode=all fail_on=warning padding=both select=all ignore=MC104*",
        "FAILED models/conv_tagger.keras::maskcheck*",
        "FAILED test_session.py::test_leaky_assertion_fails*",
    ], consecutive=False)
    assert "PASSED models/lstm_tagger.keras::maskcheck" in out
    assert _section(out, "maskcheck models/broken.keras").startswith(
        "models/broken.keras: error: not a .keras archive")
    for name in ("test_plugin_loaded_without_tensorflow", "test_clean_assertion_passes",
                 "test_marker_select_and_fail_on", "test_marker_ignore", "test_marker_padding",
                 "test_without_marker_the_same_call_reads_post_padding", "test_settings_from_ini_and_pyproject",
                 "test_class_marker", "test_method_marker_overrides_the_class_marker"):
        assert re.search(rf"PASSED \S+::{name}\b", out), name


def test_bad_setting_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--maskcheck", "--maskcheck-select=MC999", "-p", "no:cacheprovider",
                                           timeout=TIMEOUT)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "maskcheck: unknown rule 'MC999'" in result.stderr.str()


def test_markers_are_registered_and_files_ignored_without_the_flag(pytester: pytest.Pytester) -> None:
    _copy_models(pytester)
    result = pytester.runpytest_subprocess("--strict-markers", "--markers", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["@pytest.mark.maskcheck(select=None, ignore=None, padding=None, *"])
    result = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:cacheprovider")
    assert "conv_tagger.keras" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_plugin_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(models_for_tests=MODELS_MODULE, test_session='''
import keras
import pytest
import maskcheck as mc
from models_for_tests import X, leaky, tagger

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

def test_leaky_assertion_fails():
    mc.assert_padding_invariant(leaky(), X, lengths=[3, 1])

def test_clean(maskcheck):
    model = tagger()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    maskcheck.assert_clean(model)
    maskcheck.assert_padding_invariant(model, X, lengths=[3, 1])
    maskcheck.assert_loss_ignores_padding(model, X, X % 5, lengths=[3, 1])

@pytest.mark.maskcheck(ignore="MC1,MC3")
def test_marker(maskcheck):
    maskcheck.assert_clean(leaky())
''')
    _copy_models(pytester)
    result = pytester.runpytest_subprocess("-n", "2", "--maskcheck", "-rA", "-p", "no:cacheprovider",
                                           timeout=TIMEOUT)
    out = result.stdout.str()
    result.assert_outcomes(passed=3, failed=2)
    assert "created: 2/2 workers" in out
    assert "leak starts at: layer 'conv' (Conv1D)" in out
    assert "models/conv_tagger.keras:conv (Conv1D): MC102 [error] unmasked-mixing" in out
    assert re.search(r"PASSED models/lstm_tagger.keras::maskcheck", out)


def _docs_example() -> tuple[str, str]:
    text = DOCS.read_text(encoding="utf-8")
    python = re.findall(r"```python\n(.*?)```", text, re.S)
    toml = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert python and toml, "docs/testing.md lost its example test file or its settings block"
    return python[0], toml[0]


def test_docs_example_runs_and_catches_a_leak(pytester: pytest.Pytester) -> None:
    """The copyable example passes as written, and fails once a Conv1D leaks.

    The broken copy's property test is left out: shrinking re-runs the probe
    dozens of times, and tests/test_strategies.py checks the shrunk example.
    """
    example, settings = _docs_example()
    lstm = '    h = keras.layers.LSTM(16, return_sequences=True, name="lstm")(h)\n'
    assert lstm in example
    broken = example.replace(lstm, '    h = keras.layers.Conv1D(16, 3, padding="same", name="conv")(h)\n' + lstm)
    pytester.makepyprojecttoml(settings)
    pytester.makepyfile(test_padding=example, test_padding_broken=broken)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "ignore::UserWarning", "-rA",
        "--deselect", "test_padding_broken.py::test_no_padding_leak_for_any_lengths", timeout=TIMEOUT)
    out = result.stdout.str()
    result.assert_outcomes(passed=6, failed=5, deselected=1)
    assert re.search(r"PASSED test_padding.py::test_no_padding_leak_for_any_lengths", out)
    assert not re.search(r"FAILED test_padding\.py", out), out
    for name in ("test_model_passes_maskcheck", "test_no_graph_errors", "test_padding_never_changes_predictions",
                 "test_pre_padding_too", "test_loss_ignores_padded_tags"):
        assert re.search(rf"FAILED test_padding_broken.py::{name}\b", out), name
    assert "leak starts at: layer 'conv' (Conv1D)" in _section(out, "test_padding_never_changes_predictions")
