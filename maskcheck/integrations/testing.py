"""The example harness shared by our tests and by users writing rules.

A rule's VALID and INVALID snippets are built into real Keras models here
and checked with that one rule alone, so documentation and tests are the
same examples.
"""

from __future__ import annotations

from typing import Any

from maskcheck.finding import Finding
from maskcheck.rule import Invalid, Rule, Valid


def uses_keras_hub(case: Valid | Invalid) -> bool:
    """An example built from keras-hub models (the generation rules'): it runs only where
    keras-hub is installed (our keras-hub test group)."""
    return "import keras_hub" in case.code


def build_case(case: Valid | Invalid) -> Any:
    """Run a snippet and return its model (`model`, or `keras.Model(x, y)`)."""
    return build_example(case)[0]


def build_example(case: Valid | Invalid) -> tuple[Any, Any]:
    """Run a snippet and return (model, data): data rules' snippets also define `data`,
    the user's batch (None elsewhere).
    """
    namespace = _run_snippet(case)
    return namespace["model"], namespace.get("data")


def _run_snippet(case: Valid | Invalid) -> dict[str, Any]:
    """Run a snippet; `model` is set in the namespace it returns. A snippet may
    also set `data` (the user's batch) and `padding` (the side, as --padding).

    Keras's name counters restart first, so auto-generated names (``multiply``,
    ``cumsum``) in `Invalid.at` do not depend on what ran before; the random seed is
    set too, so the example's initial weights (and any verdict that depends on them)
    do not depend on what ran before either.
    """
    import keras
    import numpy as np

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)

    namespace: dict[str, Any] = {"keras": keras, "np": np}
    exec(compile(case.code, "<maskcheck example>", "exec"), namespace)  # our own source strings
    if "model" not in namespace:
        namespace["model"] = keras.Model(namespace["x"], namespace["y"])
    return namespace


def run_rule(rule: type[Rule], model: Any, data: Any = None,
             padding: str = "both", engine: str | None = None) -> tuple[Finding, ...]:
    """Findings of `rule` alone on `model` (and `data`), from the engine that raises it
    (or `engine`, one of `rule.engines()`)."""
    from maskcheck.config import Config
    from maskcheck.engine import check_model

    engine = engine or rule.engine
    mode = "dynamic" if engine == "data" else engine
    config = Config.from_values(select=[rule.code], mode=mode, padding=padding)
    report = check_model(model, target=model.name, config=config, data=data)
    return tuple(f for f in report.findings if f.rule == rule.code)


def assert_case(rule: type[Rule], case: Valid | Invalid, engine: str | None = None) -> None:
    """A Valid case yields no finding; an Invalid one yields one at `case.at`."""
    namespace = _run_snippet(case)
    findings = run_rule(rule, namespace["model"], namespace.get("data"),
                        namespace.get("padding", "both"), engine)
    listed = "\n".join(f"  {f.rule} at {f.layer}: {f.message}" for f in findings) or "  (none)"
    if isinstance(case, Valid):
        assert not findings, f"{rule.code} should not fire on its VALID example, but found:\n{listed}"
    else:
        assert any(f.layer == case.at for f in findings), (
            f"{rule.code} should fire at layer {case.at!r} on its INVALID example; found:\n{listed}")
