"""The words a user acts on: each rule's fix names the remedy for the model's actual cause.

Over the rule gallery (the INVALID examples in the rule modules, built into real Keras
models): where no mask exists anywhere upstream the fix says how to create one, where one
is made and dropped it says where, a custom position-wise layer gets `supports_masking`
first, a Bidirectional layer without a mask never gets padding-side advice, and a
per-sample output never gets advice about padded label steps. Twins show the other cause
gets the other remedy. And no text a user reads holds an unfilled template or the name of
an internal document.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest

from maskcheck.rules import ALL_RULES, RULES_BY_CODE
from maskcheck.testing import _run_snippet, run_rule, uses_keras_hub

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(![rsa])?(:[^{}]*)?\}")


def _fixes(code: str, index: int) -> dict[str, object]:
    """The findings of rule `code` on its INVALID example `index`, by layer."""
    rule = RULES_BY_CODE[code]
    case = rule.INVALID[index]
    namespace = _run_snippet(case)
    findings = run_rule(rule, namespace["model"], namespace.get("data"),
                        namespace.get("padding", "both"))
    assert any(f.layer == case.at for f in findings), (code, index, findings)
    return {f.layer: f for f in findings}


def _case(code: str, at: str, *needles: str) -> int:
    """The index of the INVALID example of `code` reported at `at` whose source holds
    every needle (so the cases below survive examples being added or reordered)."""
    cases = RULES_BY_CODE[code].INVALID
    found = [i for i, c in enumerate(cases) if c.at == at and all(n in c.code for n in needles)]
    assert found, (code, at, needles)
    return found[0]


#: (rule, layer, needles picking the example, substrings the fix must hold, must not hold)
REMEDIES = [
    # no mask anywhere upstream: create one (token ids / padded floats)
    ("MC102", "lstm", ("no mask_zero",), ("mask_zero=True",), ("keep it flowing", "pad on the")),
    ("MC102", "bi", ("padded floats",), ("Masking(mask_value=", "whichever side"),
     ("padding='post'", "pad on the", "Pad on the")),
    ("MC201", "tags", ("frames",), ("Masking(mask_value=",), ("dropped at",)),
    ("MC106", "bn", ('name="bn"',), ("Masking(mask_value=",), ("keep the mask attached",)),
    # a mask made upstream and dropped on the way: keep it flowing, never "create"
    ("MC102", "lstm", ("drops the mask",), ("dropped at 'conv1d'", "keep it flowing"),
     ("mask_zero=True,", "so that a mask exists")),
    ("MC201", "tags", ("Conv1D(8, 1)",), ("dropped at 'conv1d'",), ("so that a mask exists",)),
    # the user's own position-wise layer: the one-line fix first
    ("MC101", "scale", ("class Scale",), ("self.supports_masking = True",), ()),
    # Keras layers that cannot carry a mask keep their own advice
    ("MC101", "conv", ("Conv1D",), ("Conv1D cannot carry a mask",), ("supports_masking = True",)),
    # side advice only where one side is clean, never for a Bidirectional layer
    ("MC102", "cumsum", ("cumsum",), ("padding='post'",), ()),
    ("MC401", "lstm", ("LSTM(8, return_sequences=True, name=",), ("Pad on the post side", "mask_zero=True"), ()),
    ("MC401", "forward_lstm", ("Bidirectional",), ("Give 'bi' a mask", "mask_zero=True"),
     ("Pad on the", "padding='post'", "pad on the")),
    # a per-sample output: no padded label steps, no ignore_class, no position
    ("MC303", "score", ("one label per sequence",), ("one value per sample", "mask_zero=True"),
     ("ignore_class", "label")),
    ("MC303", "tags", ("Conv1D(8, 1)",), ("ignore_class", "dropped at 'conv1d'"), ()),
]


@pytest.mark.parametrize("code, at, needles, wanted, unwanted", REMEDIES,
                         ids=[f"{r[0]}-{r[1]}-{r[2][0][:16]}" for r in REMEDIES])
def test_the_fix_names_the_remedy_for_the_cause(code, at, needles, wanted, unwanted):
    finding = _fixes(code, _case(code, at, *needles))[at]
    for text in wanted:
        assert text in finding.fix, (text, finding.fix)
    for text in unwanted:
        assert text not in finding.fix, (text, finding.fix)


def test_a_per_sample_loss_leak_names_no_position():
    finding = _fixes("MC303", _case("MC303", "score", "one label per sequence"))["score"]
    assert finding.evidence["position"] is None
    per_step = _fixes("MC303", _case("MC303", "tags", "Conv1D(8, 1)"))["tags"]
    assert per_step.evidence["position"] is not None


def test_a_bidirectional_leak_measured_by_the_probes_gets_the_mask_not_a_side():
    """MC301 and MC304 at the forward and backward layers of an unmasked Bidirectional
    layer: the fix is the mask, whatever side the probe measured."""
    from maskcheck.config import Config
    from maskcheck.engine import check_model
    from maskcheck.rule import Invalid

    case = next(c for c in RULES_BY_CODE["MC102"].INVALID if c.at == "bi")
    model = _run_snippet(case)["model"]
    config = Config.from_values(mode="dynamic", select=["MC301", "MC304"])
    findings = check_model(model, target="bi", config=config).findings
    assert findings and isinstance(case, Invalid)
    for finding in findings:
        assert "Masking(mask_value=" in finding.fix, finding.fix
        for side in ("post-padding", "padding='post'", "Pad on the", "pad on the"):
            assert side not in finding.fix, finding.fix


# -- every rule: its representative bad model's fix is a filled sentence ------------------

def _representatives():
    for rule in ALL_RULES:
        case = rule.INVALID[0]
        marks = [pytest.mark.kerashub] if uses_keras_hub(case) else []
        yield pytest.param(rule, case, id=rule.code, marks=marks)


@pytest.mark.parametrize("rule, case", list(_representatives()))
def test_every_rules_fix_is_a_sentence_for_its_bad_model(rule, case):
    if uses_keras_hub(case):
        pytest.importorskip("keras_hub")
    namespace = _run_snippet(case)
    findings = run_rule(rule, namespace["model"], namespace.get("data"),
                        namespace.get("padding", "both"))
    assert findings, rule.code
    for finding in findings:
        for text in (finding.message, finding.fix):
            assert not PLACEHOLDER.search(text), (rule.code, text)
            assert "SPEC" not in text, (rule.code, text)
        assert finding.fix.rstrip().endswith((".", ")")), (rule.code, finding.fix)


# -- the text a user reads without running a check -----------------------------------------

@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_explain_shows_sentences_not_templates(rule):
    text = rule.explain()
    prose = text.split("\nBad model")[0]  # the examples are code, with their own braces
    assert not PLACEHOLDER.search(prose), prose
    assert "SPEC" not in text
    assert "Message (for the bad model below):" in text
    if "{layer!r}" in rule.message:  # the example message names the bad example's layer
        assert repr(rule.INVALID[0].at) in prose


def test_no_internal_document_names_in_topics_help_or_errors():
    from maskcheck.topics import TOPICS

    for name, topic in TOPICS.items():
        assert "SPEC" not in topic, name
    result = subprocess.run([sys.executable, "-m", "maskcheck", "--help"], capture_output=True,
                            text=True, check=True)
    assert "SPEC" not in result.stdout
    bad = subprocess.run([sys.executable, "-m", "maskcheck", "--explain", "MC999"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "SPEC" not in bad.stderr


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_summary_is_the_whole_first_sentence(rule):
    summary = rule.summary()
    first = " ".join(inspect.getdoc(rule).split("\n\n")[0].split())
    assert summary.endswith("."), summary
    assert first.startswith(summary), (summary, first)
    assert "\n" not in summary


def test_list_rules_never_cuts_a_summary():
    result = subprocess.run([sys.executable, "-m", "maskcheck", "--list-rules"],
                            capture_output=True, text=True, check=True)
    for rule in ALL_RULES:
        line = next(l for l in result.stdout.splitlines() if l.startswith(rule.code + " "))
        assert rule.summary() in line, (rule.code, line)


def test_a_docstring_whose_first_sentence_spans_lines_is_listed_whole():
    """MC403's first sentence runs over two docstring lines: the summary joins them."""
    rule = RULES_BY_CODE["MC403"]
    assert inspect.getdoc(rule).splitlines()[0].rstrip()[-1] != "."
    assert rule.summary().endswith("output without a time axis.")


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_the_fix_in_words_has_no_template(rule):
    """SARIF's rule help and `--explain` show `fix_explained` (or `fix` where it is a plain
    sentence): never a template with an unfilled field."""
    assert not PLACEHOLDER.search(rule.fix_explained or rule.fix), rule.code


def test_no_string_a_user_can_read_names_an_internal_document():
    """Every string literal in the package that is not a docstring (messages, fixes, errors,
    help, topics) is free of the internal contract's name."""
    import ast
    from pathlib import Path

    import maskcheck

    found = []
    for path in sorted(Path(maskcheck.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                           ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        found += [(path.name, node.lineno) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and id(node) not in docstrings and re.search(r"\bSPEC\b", node.value)]
    assert not found, found


def test_a_measurement_that_shows_post_padding_leaking_takes_the_side_advice_back():
    """A static finding at a layer that only looks backwards advises post-padding; merged
    with a measurement of a leak under post-padding there, the advice goes (the fix never
    names the side the evidence shows leaking). A pre-padding measurement keeps it."""
    from dataclasses import replace

    import keras

    from maskcheck.merge import ProbeFacts, merge

    # a forward LSTM over every step of unmasked token ids: it only looks backwards
    keras.backend.clear_session()
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(100, 8)(x)
    y = keras.layers.LSTM(8, return_sequences=True, name="lstm")(h)
    (static,) = run_rule(RULES_BY_CODE["MC102"], keras.Model(x, y), engine="static")
    assert "padding='post'" in static.fix and "mask_zero=True" in static.fix
    measured = replace(static, rule="MC301", kind=("dynamic",), fix="",
                       evidence={"padding": "post", "max_abs_diff": 1.0})
    (post,) = merge((static,), (measured,), ProbeFacts(), RULES_BY_CODE)
    assert "padding='post'" not in post.fix and "mask_zero=True" in post.fix
    pre = replace(measured, evidence={"padding": "pre", "max_abs_diff": 1.0})
    (kept,) = merge((static,), (pre,), ProbeFacts(), RULES_BY_CODE)
    assert kept.fix == static.fix
