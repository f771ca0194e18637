"""A check is one module: rules declare their checks and merge policy; nothing else names them.

These tests hold the architecture of issue 23 part 1 in place: the registry is read
from the rule modules, no engine module spells a rule code, the merge is a pure
function of two tuples of findings, and a new dynamic rule needs one new module
(shown end to end on a copy of the package).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from maskcheck.finding import Finding, Severity
from maskcheck.merge import ProbeFacts, merge
from maskcheck.rule import CLAIMS, PROGRAMS
from maskcheck.rules import ALL_RULES, RULES_BY_CODE

PACKAGE = Path(__file__).resolve().parents[1] / "maskcheck"


def _code_literals(path: Path) -> list[tuple[int, str]]:
    """String constants that are exactly a rule code (docstrings and prose aside)."""
    tree = ast.parse(path.read_text())
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and re.fullmatch(r"MC\d{3}", node.value)]


def test_no_rule_code_is_spelled_outside_the_rule_modules():
    found = {str(p.relative_to(PACKAGE)): hits for p in sorted(PACKAGE.rglob("*.py"))
             if "rules" not in p.relative_to(PACKAGE).parts and (hits := _code_literals(p))}
    assert not found, f"rule codes spelled outside maskcheck/rules/: {found}"


def test_the_engines_never_import_a_rule():
    """Rules import the engines' measurements (inside `probe`); never the other way round."""
    found = []
    for path in sorted((*PACKAGE.glob("dynamic/**/*.py"), *PACKAGE.glob("static/**/*.py"))):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [(str(path.relative_to(PACKAGE)), n) for n in names
                      if n == "maskcheck.rules" or n.startswith("maskcheck.rules.")]
    assert not found, found


def test_the_registry_is_every_rule_module_in_code_order():
    modules = sorted(p.stem for p in (PACKAGE / "rules").glob("mc[0-9][0-9][0-9]_*.py"))
    assert [r.__module__.rsplit(".", 1)[1] for r in ALL_RULES] == modules
    assert [r.code for r in ALL_RULES] == sorted(r.code for r in ALL_RULES)
    for rule in ALL_RULES:
        assert rule.__module__.rsplit(".", 1)[1].startswith(rule.code.lower() + "_")


def test_policy_declarations_are_consistent():
    for rule in ALL_RULES:
        assert set(rule.programs) <= set(PROGRAMS), rule
        assert rule.claims in (None, *CLAIMS) and rule.covers in (None, *CLAIMS), rule
        assert rule.implemented(), f"{rule.code} is neither checked statically nor probed"
        for named in (*rule.confirms, *rule.reclassifies, *rule.refutes):
            assert named in ALL_RULES and "static" in named.engines(), (rule, named)
        for refuted in rule.refutes:  # a measurement refutes only what it could reproduce
            assert refuted.claims is not None and rule.covers is not None, (rule, refuted)
        if rule.covers or rule.confirms or rule.refutes or rule.reclassifies:
            assert rule.programs, f"{rule.code} declares merge policy but measures nothing"


def _static(rule: str, layer: str = "conv", **evidence) -> Finding:
    cls = RULES_BY_CODE[rule]
    return Finding(rule=rule, name=cls.name, severity=cls.severity, kind=("static",),
                   layer=layer, layer_class="Conv1D", path=("m", layer), message="static says.",
                   fix="", evidence=evidence)


def _measured(rule: str, layer: str = "conv", **evidence) -> Finding:
    cls = RULES_BY_CODE[rule]
    return Finding(rule=rule, name=cls.name, severity=cls.severity, kind=("dynamic",),
                   layer=layer, layer_class="Conv1D", path=("m", layer), message="probe says.",
                   fix="", evidence={"max_abs_diff": 1.0, **evidence})


def test_a_measurement_confirms_the_static_finding_at_its_layer():
    leak = next(r for r in ALL_RULES if r.covers == "values")
    confirmed = next(iter(leak.confirms))
    (merged,) = merge((_static(confirmed.code),), (_measured(leak.code),), ProbeFacts(), RULES_BY_CODE)
    assert merged.rule == confirmed.code and merged.kind == ("static", "dynamic")
    assert merged.evidence["confirmed_by"] == leak.code and merged.evidence["max_abs_diff"] == 1.0
    # at another layer it confirms nothing: both stand
    both = merge((_static(confirmed.code, "other"),), (_measured(leak.code),), ProbeFacts(),
                 RULES_BY_CODE)
    assert [f.kind for f in both] == [("static",), ("dynamic",)]


def test_merge_is_pure_and_deterministic():
    static = (_static("MC102"), _static("MC201", "out", loss="mse"))
    dynamic = (_measured("MC301"), _measured("MC304", "dense"))
    facts = ProbeFacts(covered=frozenset({"values", "amount"}), sides=frozenset({"post", "pre"}))
    assert merge(static, dynamic, facts, RULES_BY_CODE) == merge(static, dynamic, facts, RULES_BY_CODE)
    assert static == (_static("MC102"), _static("MC201", "out", loss="mse"))  # inputs untouched


def test_facts_of_the_data_void_the_rules_that_name_them():
    voided = {r.code for r in ALL_RULES if "weights_cover_padding" in r.void_when}
    assert voided  # per-step weights that zero padded steps keep padding out of the loss
    static = tuple(_static(code, "out", loss="mse") for code in sorted(voided)
                   if "static" in RULES_BY_CODE[code].engines())
    facts = ProbeFacts(conditions=frozenset({"weights_cover_padding"}))
    assert merge(static, (), facts, RULES_BY_CODE) == ()
    assert merge(static, (), ProbeFacts(), RULES_BY_CODE) == static


def test_a_leak_the_static_reading_did_not_predict_says_so():
    facts = ProbeFacts(covered=frozenset({"values"}), sides=frozenset({"post"}))
    (alone,) = merge((), (_measured("MC301"),), facts, RULES_BY_CODE)
    assert alone.evidence["static"] == "not predicted"


EXAMPLE_RULE = '''
from __future__ import annotations

from typing import Any, Iterator

from maskcheck.finding import Severity
from maskcheck.rule import Rule


class FirstCulprit(Rule):
    """Example: the first layer where padded values reach valid outputs."""

    code = "MC399"
    name = "example-first-culprit"
    severity = Severity.WARNING
    engine = "dynamic"
    message = "Padding first reaches valid outputs at {layer!r} ({layer_class})."
    fix = "Make {layer!r} mask-aware."
    programs = ("inference",)

    def probe(self, ctx: Any) -> Iterator[Any]:
        for measured in ctx.padding_leaks:
            if "after" not in measured.fields:
                yield self.result(measured.leak, measured.fields)
'''

SCRIPT = '''
import json, keras, maskcheck
x = keras.Input((None,), dtype="int32")
h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
h = keras.layers.Conv1D(8, 3, padding="same", name="conv")(h)
leaky = keras.Model(x, keras.layers.Dense(2)(h))
h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
clean = keras.Model(x, keras.layers.Dense(2)(keras.layers.LSTM(8, return_sequences=True)(h)))
out = {}
for name, model in (("leaky", leaky), ("clean", clean)):
    report = maskcheck.check(model, mode="dynamic", select=["MC399"])
    out[name] = [(f.rule, f.layer) for m in report.models for f in m.findings]
print(json.dumps(out))
'''


def test_a_new_dynamic_rule_is_one_new_module(tmp_path):
    """Copy the package, add one rule module, and the CLI's registry, the scheduler and
    the merge pick it up: it runs on a leaking model and stays quiet on its clean twin."""
    copy = tmp_path / "maskcheck"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "rules" / "mc399_example_first_culprit.py").write_text(textwrap.dedent(EXAMPLE_RULE))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert result == {"leaky": [["MC399", "conv"]], "clean": []}, result
