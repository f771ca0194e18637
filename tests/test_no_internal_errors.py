"""Issue 22: no internal exception escapes as a target error on any model of the test zoo.

The zoo here: every saved gallery model and every rule example, each checked with
every rule in `--mode all` (the examples normally run one rule alone). A model may
be unprobeable for a reason it owns (no padded input, no graph); maskcheck failing
on it (an `InternalError`, a Python exception from our own code) is never allowed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from maskcheck.config import Config
from maskcheck.engine import CheckError, check_model, check_targets
from maskcheck.rules import ALL_RULES
from maskcheck.testing import _run_snippet, uses_keras_hub

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MODELS = Path(__file__).resolve().parent.parent / "fixtures" / "models"
#: What a model can own: a reason it cannot be checked, or cannot be probed.
MODEL_REASONS = {"NoGraph", "NoPaddedInput", "NotProbeable", "ForwardError", "DataError"}
#: What only a maskcheck bug produces: Python's own exception names at the start of a message.
OUR_EXCEPTIONS = ("ValueError:", "TypeError:", "AttributeError:", "KeyError:", "IndexError:",
                  "AssertionError:", "NameError:", "UnboundLocalError:")


def test_gallery_models_never_fail_inside_maskcheck() -> None:
    report = check_targets((str(MODELS),), Config.from_values(mode="all"))
    assert len(report.models) >= 20
    for model in report.models:
        assert model.error is None, (model.target, model.error)
        notes = str(model.stats.get("dynamic", ""))
        assert not notes.startswith("failed"), (model.target, notes)


def _cases():
    for rule in ALL_RULES:
        for kind, cases in (("VALID", rule.VALID), ("INVALID", rule.INVALID)):
            for n, case in enumerate(cases):
                marks = [pytest.mark.kerashub] if uses_keras_hub(case) else []
                yield pytest.param(case, id=f"{rule.code}-{kind}-{n}", marks=marks)


@pytest.mark.parametrize("case", list(_cases()))
def test_rule_examples_never_fail_inside_maskcheck(case) -> None:
    if uses_keras_hub(case):
        pytest.importorskip("keras_hub")
    namespace = _run_snippet(case)
    model, data = namespace["model"], namespace.get("data")
    config = Config.from_values(mode="all", padding=namespace.get("padding", "both"))
    try:
        report = check_model(model, target=model.name, config=config, data=data)
    except CheckError as exc:
        assert exc.type in MODEL_REASONS, (exc.type, exc.message)
        assert not exc.message.startswith(OUR_EXCEPTIONS), exc.message
        return
    notes = str(report.stats.get("dynamic", ""))
    assert not (notes.startswith("failed") and "maskcheck" in notes), notes
