"""The Python API of SPEC 7, as a user calls it inline."""

from __future__ import annotations

import dataclasses
import json

import keras
import pytest

import maskcheck


def conv_tagger() -> keras.Model:
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = keras.layers.Conv1D(8, 3, padding="same", name="conv")(h)
    return keras.Model(x, keras.layers.Dense(3, name="tags")(h), name="tagger")


def test_check_returns_a_report_of_frozen_findings() -> None:
    report = maskcheck.check(conv_tagger(), mode="static")
    assert isinstance(report.findings, tuple) and report.findings
    finding = report.findings[0]
    assert isinstance(finding, maskcheck.Finding)
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.rule = "MC999"  # type: ignore[misc]
    assert {(f.rule, f.layer) for f in report.all_findings} == {("MC101", "conv"), ("MC102", "conv")}
    # one cause at one layer: MC101 is folded under MC102
    assert [(f.rule, [r.rule for r in f.related]) for f in report.findings] == [("MC102", ["MC101"])]
    assert report.ok is False
    assert json.loads(report.to_json()) == json.loads(json.dumps(report.to_dict()))
    assert report.to_dict()["models"][0]["model"] == "tagger"


def test_select_ignore_and_fail_on() -> None:
    model = conv_tagger()
    only_drop = maskcheck.check(model, mode="static", select=["MC101"])
    assert [f.rule for f in only_drop.findings] == ["MC101"]
    assert only_drop.ok is False  # a warning fails at the default fail_on="warning"
    assert maskcheck.check(model, mode="static", select="MC101", fail_on="error").ok is True
    assert maskcheck.check(model, mode="static", ignore=["MC1"]).findings == ()
    with pytest.raises(ValueError, match="unknown rule 'MC9'"):
        maskcheck.check(model, select=["MC9"])


def test_api_exports() -> None:
    assert issubclass(maskcheck.PaddingLeakError, AssertionError)
    assert set(maskcheck.__all__) >= {"check", "Finding", "Report", "Severity", "PaddingLeakError",
                                      "assert_padding_invariant", "assert_loss_ignores_padding"}
