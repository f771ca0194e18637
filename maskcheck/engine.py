"""Run the rules over models and collect one Report. Never prints or exits.

`check_model` checks one in-memory model; `check_targets` loads and checks
each command-line target in turn, turning every failure into an error entry
so one bad target never stops the others.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from maskcheck.config import Config
from maskcheck.finding import Finding, ModelReport, Report, TargetError
from maskcheck.loading import LoadError, Target, expand_targets, import_modules, load_target
from maskcheck.rule import Rule
from maskcheck.rules import selected_rules


class CheckError(Exception):
    """A loaded model cannot be checked (no graph, a failing analysis)."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message


def run_rules(graph: Any, rules: tuple[type[Rule], ...]) -> tuple[Finding, ...]:
    """Run static rules over a MaskGraph, sharing one dataflow analysis."""
    from maskcheck.maskflow import analyze

    flow = analyze(graph)
    return tuple(f for rule in rules if rule.engine == "static" for f in rule().check(graph, flow))


def check_model(model: Any, *, target: str, config: Config) -> ModelReport:
    """Check one Keras model with the engines `config.mode` asks for."""
    from maskcheck.keras_adapter import adapt_model

    rules = selected_rules(config.select, config.ignore)
    started = time.perf_counter()
    try:
        graph = adapt_model(model)
    except ValueError as exc:
        raise CheckError("NoGraph", str(exc)) from None
    findings = run_rules(graph, rules)
    stats = {"layers": len(model.layers) if hasattr(model, "layers") else len(graph.nodes),
             "static_ms": round((time.perf_counter() - started) * 1000, 1)}
    return ModelReport(target=target, model=model.name, findings=findings, stats=stats)


def check_targets(raw_targets: tuple[str, ...], config: Config,
                  progress: Callable[[int, int, str], None] | None = None) -> Report:
    """Load and check every target; failures become error entries, in order."""
    targets = expand_targets(raw_targets)
    import_error: LoadError | None = None
    if config.imports and any(t.error is None for t in targets):
        try:
            import_modules(config.imports)
        except LoadError as exc:
            import_error = exc
    results = []
    for number, target in enumerate(targets, start=1):
        def step(stage: str, number: int = number, label: str = target.label) -> None:
            if progress is not None:
                progress(number, len(targets), label, stage)
        results.append(_check_one(target, config, import_error, step))
    return Report(tuple(results), fail_on=config.fail_on)


def _check_one(target: Target, config: Config, import_error: LoadError | None,
               step: Callable[[str], None]) -> ModelReport:
    try:
        if import_error is not None:
            raise import_error
        step("loading")
        model, _data = load_target(target, unsafe=config.unsafe)
    except LoadError as exc:
        return ModelReport(target.label, None, error=TargetError(exc.type, exc.message))
    step("checking")
    try:
        return check_model(model, target=target.label, config=config)
    except CheckError as exc:
        return ModelReport(target.label, model.name, error=TargetError(exc.type, exc.message))
    except Exception as exc:  # an analysis bug must not hide the other targets
        if config.verbose:
            raise
        message = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return ModelReport(target.label, model.name,
                           error=TargetError("InternalError", f"maskcheck failed on this model: {message}"
                                             " (rerun with --verbose for the traceback)"))
