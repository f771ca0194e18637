"""One finding per cause: `maskcheck.grouping` on real models, and what baselines and
suppressions do with the groups.

Twins: a Conv1D that drops the mask (MC102 with MC101 folded under it) beside a
mask-aware model (nothing); a Bidirectional LSTM without a mask (the wrapper's MC102
with the measured leaks of its forward and backward layers under it) beside the same
model with `mask_zero=True` (nothing at the wrapper).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import maskcheck  # noqa: E402
from maskcheck.adoption.baseline import apply_baseline, read_baseline, render_baseline  # noqa: E402
from maskcheck.finding import Finding  # noqa: E402
from maskcheck.grouping import group  # noqa: E402
from maskcheck.rule import CAUSES  # noqa: E402
from maskcheck.rules import ALL_RULES, RULES_BY_CODE  # noqa: E402

FIXTURES = Path(__file__).parent.parent / "fixtures" / "models"


def _bilstm(mask_zero: bool):
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8, mask_zero=mask_zero)(x)
    h = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), name="bi")(h)
    y = keras.layers.Dense(3, activation="softmax", name="tags")(h)
    return keras.Model(x, y, name="tagger")


def _shape(report) -> list[tuple[str, tuple[str, ...], list[tuple[str, tuple[str, ...]]]]]:
    return [(f.rule, f.path, [(r.rule, r.path) for r in f.related]) for f in report.findings]


@pytest.fixture(scope="module")
def conv_report():
    import keras

    model = keras.saving.load_model(FIXTURES / "conv_tagger.keras")
    return maskcheck.check(model)


def test_mask_dropped_folds_under_the_mixing_at_the_same_layer(conv_report) -> None:
    assert _shape(conv_report) == [
        ("MC102", ("conv_tagger", "conv"), [("MC101", ("conv_tagger", "conv"))]),
        ("MC102", ("conv_tagger", "lstm"), []),
    ]
    summary = conv_report.summary()
    assert (summary["errors"], summary["warnings"], summary["related"]) == (2, 0, 1)


def test_mask_aware_twin_has_nothing_to_group() -> None:
    import keras

    model = keras.saving.load_model(FIXTURES / "masked_bilstm.keras")
    report = maskcheck.check(model)
    assert report.findings == () and report.summary()["related"] == 0


def test_bidirectional_without_a_mask_is_one_finding_with_its_directions_under_it() -> None:
    report = maskcheck.check(_bilstm(mask_zero=False), padding="pre")
    at_wrapper = [f for f in report.findings if f.path[:2] == ("tagger", "bi")]
    assert len(at_wrapper) == 1, _shape(report)
    primary = at_wrapper[0]
    assert primary.path == ("tagger", "bi") and primary.rule == "MC102"
    inner = {(r.path[:2], r.path[2].split("_lstm")[0]) for r in primary.related}
    assert inner == {(("tagger", "bi"), "forward"), (("tagger", "bi"), "backward")}
    assert all(r.related == () for r in primary.related)


def test_bidirectional_twin_with_a_mask_has_nothing_at_the_wrapper() -> None:
    report = maskcheck.check(_bilstm(mask_zero=True), padding="pre")
    assert not [f for f in report.findings if f.path[:2] == ("tagger", "bi")]


# --- the policy, on hand-made findings -----------------------------------------------


def _f(rule: str, path: tuple[str, ...], severity: str = "error", kind=("static",)) -> Finding:
    return Finding(rule=rule, name=RULES_BY_CODE[rule].name, severity=severity, kind=kind,
                   layer=path[-1], layer_class="X", path=path, message=f"{rule} at {path}", fix="f")


def test_every_declared_cause_is_a_known_one() -> None:
    assert {r.cause for r in ALL_RULES if r.cause is not None} <= set(CAUSES)


def test_groups_do_not_depend_on_input_order() -> None:
    findings = [_f("MC102", ("m", "bi")), _f("MC301", ("m", "bi", "forward"), kind=("dynamic",)),
                _f("MC101", ("m", "conv"), "warning"), _f("MC102", ("m", "conv")),
                _f("MC201", ("m", "out")), _f("MC303", ("m", "out"), kind=("dynamic",)),
                _f("MC104", ("m", "conv"), "info")]
    expected = group(tuple(findings), RULES_BY_CODE)
    for seed in range(5):
        random.Random(seed).shuffle(findings)
        assert group(tuple(findings), RULES_BY_CODE) == expected
    assert [(f.rule, f.path, [r.rule for r in f.related]) for f in expected] == [
        ("MC102", ("m", "bi"), ["MC301"]), ("MC102", ("m", "conv"), ["MC101"]),
        ("MC201", ("m", "out"), ["MC303"]), ("MC104", ("m", "conv"), [])]
    assert group(expected, RULES_BY_CODE) == expected  # grouping a grouped list changes nothing
    assert sum(1 + len(f.related) for f in expected) == 7  # nothing lost, nothing doubled


def test_different_causes_and_the_model_itself_never_absorb_layers() -> None:
    findings = (_f("MC201", ("m",)), _f("MC102", ("m", "conv")),
                _f("MC106", ("m", "conv")), _f("MC102", ("m", "enc", "a")),
                _f("MC102", ("m", "enc", "b")), _f("MC301", ("m", "enc"), kind=("dynamic",)))
    grouped = group(findings, RULES_BY_CODE)
    assert [(f.rule, f.path, [r.path for r in f.related]) for f in grouped] == [
        ("MC201", ("m",), []), ("MC102", ("m", "conv"), []), ("MC106", ("m", "conv"), []),
        ("MC102", ("m", "enc", "a"), [("m", "enc")]), ("MC102", ("m", "enc", "b"), [])]


# --- baselines and suppressions key on the primary --------------------------------


def test_baseline_records_primaries_and_an_older_one_listing_related_is_not_fixed(
        conv_report, tmp_path) -> None:
    text = render_baseline(conv_report)
    assert text.count('"rule"') == 2 and "MC101" not in text
    path = tmp_path / "baseline.json"
    path.write_text(text, encoding="utf-8")
    applied = apply_baseline(conv_report, read_baseline(str(path)))
    assert applied.findings == () and applied.summary()["baselined"] == 2
    assert applied.models[0].suppressed[0].related  # the group went with its primary
    older = text.replace('  "findings": [\n', '  "findings": [\n    {"rule": "MC101", "target": '
                         '"conv_tagger", "path": ["conv_tagger", "conv"]},\n')
    path.write_text(older, encoding="utf-8")
    applied = apply_baseline(conv_report, read_baseline(str(path)))
    assert applied.findings == () and applied.baseline_fixed == 0


FACTORY = '''
import keras


def build():
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = keras.layers.Conv1D(8, 3, padding="same", name="conv")(h)  {comment}
    y = keras.layers.Dense(3, name="tags")(h)
    return keras.Model(x, y, name="tagger")
'''


@pytest.mark.parametrize("comment, kept, suppressed", [
    ("", [("MC102", ["MC101"])], []),
    ("# maskcheck: ignore[MC102]", [], ["MC102"]),
    ("# maskcheck: ignore[MC101]", [("MC102", [])], ["MC101"]),
])
def test_a_suppressed_primary_takes_its_group(tmp_path, comment, kept, suppressed) -> None:
    """A comment on the primary's line suppresses its group; one naming only the related
    code takes that finding out of the group."""
    (tmp_path / "grouped.py").write_text(textwrap.dedent(FACTORY.format(comment=comment)),
                                         encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "maskcheck", "grouped:build", "--mode", "static",
                          "--format", "json"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=300)
    model = json.loads(run.stdout)["models"][0]
    assert [(f["rule"], [r["rule"] for r in f.get("related", ())]) for f in model["findings"]
            if f["layer"] == "conv"] == kept
    assert [f["rule"] for f in model["suppressed"]] == suppressed
