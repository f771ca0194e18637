"""Every rule's VALID and INVALID examples, run through the shared harness,
and meta-tests that keep the registry honest (codes, examples, docs)."""

from __future__ import annotations

import inspect
import re

import pytest

from maskcheck.rule import Rule
from maskcheck.rules import ALL_RULES
from maskcheck.testing import assert_case, uses_keras_hub

# Keras warns about the very drops these examples demonstrate.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _cases():
    for rule in ALL_RULES:
        for engine in rule.engines():  # a rule raised by two engines: both hold to its examples
            suffix = f"-{engine}" if rule.also else ""
            for kind, cases in (("VALID", rule.VALID), ("INVALID", rule.INVALID)):
                for i, case in enumerate(cases):
                    # examples built from keras-hub models (the generation rules) run in the
                    # keras-hub group, where keras-hub is installed
                    marks = [pytest.mark.kerashub] if uses_keras_hub(case) else []
                    yield pytest.param(rule, case, engine, id=f"{rule.code}-{kind}-{i}{suffix}",
                                       marks=marks)


@pytest.mark.parametrize("rule, case, engine", list(_cases()))
def test_rule_example(rule: type[Rule], case, engine: str) -> None:
    if uses_keras_hub(case):
        pytest.importorskip("keras_hub")
    assert_case(rule, case, engine)


def test_codes_are_unique_and_well_formed() -> None:
    codes = [rule.code for rule in ALL_RULES]
    assert len(codes) == len(set(codes)), codes
    assert all(re.fullmatch(r"MC\d{3}", code) for code in codes), codes


def test_names_are_unique_kebab_case() -> None:
    names = [rule.name for rule in ALL_RULES]
    assert len(names) == len(set(names)), names
    assert all(re.fullmatch(r"[a-z]+(-[a-z0-9]+)*", name) for name in names), names


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rule_has_valid_and_invalid_examples(rule: type[Rule]) -> None:
    assert len(rule.VALID) >= 1 and len(rule.INVALID) >= 1, rule.code


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rule_docstring_says_why(rule: type[Rule]) -> None:
    doc = inspect.getdoc(rule) or ""
    assert "Why is this bad?" in doc, rule.code
    assert doc.splitlines()[0].strip(), rule.code


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rule_severity_matches_spec(rule: type[Rule]) -> None:
    spec = {"MC101": "warning", "MC102": "error", "MC103": "error", "MC104": "info",
            "MC105": "error", "MC106": "error", "MC107": "warning", "MC108": "warning", "MC109": "warning", "MC110": "warning", "MC201": "error",
            "MC202": "warning", "MC203": "error", "MC301": "error", "MC302": "error",
            "MC303": "error", "MC304": "warning", "MC305": "warning", "MC306": "error",
            "MC307": "error",
            "MC401": "error", "MC402": "error", "MC403": "warning", "MC404": "warning"}
    assert rule.severity.value == spec[rule.code]


def test_static_rules_are_implemented() -> None:
    static = [r.code for r in ALL_RULES if r.engine == "static"]
    assert static == ["MC101", "MC102", "MC103", "MC104", "MC105", "MC106", "MC107",
                      "MC108", "MC109", "MC110", "MC201", "MC202"]
    assert all(r.implemented() for r in ALL_RULES if r.engine == "static")
