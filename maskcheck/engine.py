"""Run the rules over models and collect one Report. Never prints or exits.

`check_model` checks one in-memory model; `check_targets` loads and checks
each command-line target in turn, turning every failure into an error entry
so one bad target never stops the others.

`check_model` is the pipeline: adapt (Keras model -> MaskGraph) -> analyse
(padded-axis dataflow) -> static rules -> probe (each selected rule's dynamic
check, scheduled by `maskcheck.dynamic.schedule`) -> merge (`maskcheck.merge`,
a pure function; the policy is declared on the rule classes) -> locate and
suppress. In mode "all", a model the probes cannot run (no padded input, odd
dtypes, a forward pass that raises while static findings exist) or cannot measure
(inconclusive: outputs of an unpadded batch that are not finite or not repeatable)
keeps its static findings and records why in ``stats["dynamic"]``; in mode
"dynamic" that is the target's error. With the user's data, ``stats["data"]`` records what the probes
read from it (pad values, sides, lengths, label padding, sample weights).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from maskcheck.assumptions import assumed_clause
from maskcheck.config import Config, ConfigError
from maskcheck.finding import Finding, ModelReport, Report, TargetError
from maskcheck.interrupts import RUN_STOPS, raise_pending, user_exit
from maskcheck.loading import ArchiveLimits, LoadError, Target, expand_targets, import_modules, load_target
from maskcheck.rule import Rule
from maskcheck.rules import selected_rules


#: Tracebacks behind target errors, logged only under --verbose (the CLI attaches a handler).
_log = logging.getLogger("maskcheck")


class CheckError(Exception):
    """A loaded model cannot be checked (no graph, a failing analysis)."""

    def __init__(self, type_: str, message: str, findings: tuple[Finding, ...] = ()) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        #: what the static engine found before the check stopped (still reported)
        self.findings = findings


def run_rules(graph: Any, rules: tuple[type[Rule], ...], *, side: str = "both",
              mask_inputs: tuple[tuple[str, str], ...] = (),
              padded: tuple[tuple[str, int], ...] = (), flow: Any = None) -> tuple[Finding, ...]:
    """Run static rules over a MaskGraph, sharing one dataflow analysis.

    `side` is how variable-length inputs are padded ("post", "pre", or "both"
    when unknown; causal layers are safe under "post" only); `mask_inputs` and
    `padded` are the user's --mask-input and --padded declarations.
    """
    from maskcheck.static import collector_paused
    from maskcheck.static.dataflow import analyze

    if flow is None:
        flow = analyze(graph, side=side, mask_inputs=mask_inputs, padded=padded)
    with collector_paused():
        return tuple(f for rule in rules if "static" in rule.engines()
                     for f in rule().check(graph, flow))


def check_model(model: Any, *, target: str, config: Config, data: Any = None,
                suppressor: Any = None) -> ModelReport:
    """Check one Keras model with the engines `config.mode` asks for.

    The pipeline: adapt (Keras model -> MaskGraph) -> analyse (padded-axis dataflow)
    -> static rules -> probe (the dynamic checks) -> merge -> locate and suppress.

    Args:
        data: probe data for the dynamic engine (an npz mapping, a dict of
            arrays, an (x, y) pair or x alone); None synthesizes probes, or
            loads `config.data` when that names an .npz file.
        suppressor: the run's `maskcheck.adoption.suppress.Suppressor` (one per run, so
            --warn-unused-ignores sees every model); None makes one from `config`.

    Raises:
        CheckError: the model cannot be checked (no graph for a static-only
            run, a forward pass that raises, no padded input for a
            dynamic-only run).
    """
    rules = selected_rules(config.select, config.ignore)
    stats: dict[str, Any] = {}
    profiles: dict[str, Any] = {}  # filled by the probes, drawn by the HTML report
    started = time.perf_counter()
    graph, no_graph = _adapt(model, config)
    _check_declarations(model, graph, config)
    flow = _analyse(graph, config, model) if graph is not None else None
    findings = _static_findings(graph, flow, rules, config)
    if config.mode in ("static", "all"):
        stats["static_ms"] = round((time.perf_counter() - started) * 1000, 1)
    stats["layers"] = len(model.layers) if hasattr(model, "layers") else len(graph.nodes)
    probed = config.mode in ("dynamic", "all") and any(r.engine in ("dynamic", "data") for r in rules)
    if probed:
        started = time.perf_counter()
        findings = _probe_and_merge(model, config, data, rules, findings, stats, graph, flow,
                                    profiles)
        stats["dynamic_ms"] = round((time.perf_counter() - started) * 1000, 1)
    if no_graph is not None and (not probed or "dynamic" in stats):  # neither engine could look
        raise CheckError("NoGraph", f"{no_graph}; dynamic checks {stats['dynamic']}")
    kept, suppressed = locate_and_suppress(model, findings, config, suppressor)
    summary = None
    if graph is not None:  # the facts the HTML report draws from (cheap: one pass over the graph)
        from maskcheck.static.summary import summarize

        summary = summarize(graph, flow, profiles)
    return ModelReport(target=target, model=model.name, findings=kept, stats=stats,
                       suppressed=suppressed, graph=summary)


def _adapt(model: Any, config: Config) -> tuple[Any, str | None]:
    """The model's MaskGraph, or None and why there is none (then only probes can look)."""
    from maskcheck.static.adapter import adapt_model

    try:
        return adapt_model(model), None
    except ValueError as exc:
        if config.mode == "static":
            raise CheckError("NoGraph", str(exc)) from None
        return None, str(exc)


def model_inputs(model: Any, graph: Any) -> tuple[tuple[str, int], ...] | None:
    """The model's inputs as (name, rank) pairs, under the names --padded and --mask-input
    use (the graph's input layers; a subclassed model's build inputs); None when unknown."""
    if graph is not None:
        return tuple((node.name, len(graph.tensors[node.outputs[0]].shape))
                     for node in graph.nodes if node.is_input)
    from maskcheck.dynamic.plan import built_inputs

    return built_inputs(model)


def _check_declarations(model: Any, graph: Any, config: Config) -> None:
    """--padded and --mask-input name inputs (and axes) this model has (raises ConfigError)."""
    if not (config.padded or config.mask_inputs):
        return
    inputs = model_inputs(model, graph)
    if inputs is not None:  # a model with no known inputs cannot be probed; the plan says so
        from maskcheck.config import check_declarations

        check_declarations(config, inputs, getattr(model, "name", type(model).__name__))


def _analyse(graph: Any, config: Config, model: Any = None) -> Any:
    """One dataflow analysis, which serves the static rules and the probe plan. With
    --padding both, a task model's preprocessor that pads on one side decides the side."""
    from maskcheck.static.dataflow import analyze
    from maskcheck.static.generation import packer_side

    side = config.padding
    if side == "both" and model is not None:
        side = packer_side(model) or side
    return analyze(graph, side=side, mask_inputs=config.mask_inputs,
                   padded=config.padded, assume=config.assume_padding)


def _static_findings(graph: Any, flow: Any, rules: tuple[type[Rule], ...],
                     config: Config) -> tuple[Finding, ...]:
    """The static rules' findings (none without a graph or in --mode dynamic)."""
    if graph is None or config.mode not in ("static", "all"):
        return ()
    return mark_assumed(run_rules(graph, rules, flow=flow), graph, flow)


def check_in_memory(model: Any, config: Config, data: Any = None) -> Report:
    """The Report for one in-memory model (the API and the pytest fixture): a model
    that cannot be checked gives an error entry; `config.baseline` applies.

    Raises:
        UnsupportedBackendError: Keras runs on another backend than TensorFlow here.
        ConfigError: `padded` or `mask_inputs` names an input (or axis) the model lacks.
    """
    from maskcheck.adoption.baseline import apply_baseline, read_baseline
    from maskcheck.backends import require_tensorflow

    require_tensorflow(what="maskcheck.check")

    baseline = read_baseline(config.baseline) if config.baseline else None
    name = getattr(model, "name", type(model).__name__)
    suppressor = make_suppressor(config)
    try:
        result = check_model(model, target=name, config=config, data=data, suppressor=suppressor)
    except CheckError as exc:
        kept, suppressed = locate_and_suppress(model, exc.findings, config, suppressor)
        result = ModelReport(name, name, findings=kept, suppressed=suppressed,
                             error=TargetError(exc.type, exc.message))
    except (*RUN_STOPS, Exception):
        raise
    except BaseException as exc:  # a custom layer or data function called sys.exit
        result = ModelReport(name, name, error=TargetError(
            "UserCodeExit", f"user code {user_exit(exc)} while the model was checked"))
    report = Report((result,), fail_on=config.fail_on,
                    unused_ignores=suppressor.unused() if config.warn_unused_ignores else None,
                    settings=run_settings(config))
    return apply_baseline(report, baseline) if baseline is not None else report


def run_settings(config: Config) -> dict[str, Any]:
    """The settings a report's reader needs to reproduce the run (the HTML header), and
    `verbose`, which asks the text report for what the data said."""
    return {
        "mode": config.mode, "fail_on": config.fail_on, "padding": config.padding,
        "seed": config.seed, "batch_size": config.batch_size, "seq_len": config.seq_len,
        "atol": config.atol, "rtol": config.rtol,
        "select": sorted(config.select) if config.select is not None else "all",
        "ignore": sorted(config.ignore), "data": config.data, "verbose": config.verbose,
    }


def excludes_for(config: Config) -> Any:
    """The directory search's excludes; globs are relative to the pyproject that set them."""
    from maskcheck.adoption.discovery import Excludes

    root = Path(config.source).parent if config.source else Path.cwd()
    return Excludes(config.exclude, config.extend_exclude, root)


def make_suppressor(config: Config) -> Any:
    from maskcheck.adoption.suppress import Suppressor

    return Suppressor(config.per_layer_ignores, config.source)


def locate_and_suppress(model: Any, findings: tuple[Finding, ...], config: Config,
                        suppressor: Any = None) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    """Findings gain `location` where the culprit layer's construction was recorded (SPEC 6);
    findings of one cause are grouped under a primary (`maskcheck.grouping`); then inline
    comments and per-layer-ignores move some to the suppressed list, keyed on the primary
    (a suppressed primary takes its related findings with it)."""
    from maskcheck.adoption.locations import site_at
    from maskcheck.adoption.suppress import model_sites
    from maskcheck.grouping import group
    from maskcheck.rules import RULES_BY_CODE

    suppressor = suppressor if suppressor is not None else make_suppressor(config)
    sites = {}
    located = []
    for finding in findings:
        site = site_at(model, finding.path)
        if site is not None:
            sites[finding.path] = site
            finding = replace(finding, location=site.to_location())
        located.append(finding)
    engines = {"static": ("static",), "dynamic": ("dynamic", "data")}.get(
        config.mode, ("static", "dynamic", "data"))
    ran = {r.code for r in selected_rules(config.select, config.ignore)
           if set(r.engines()) & set(engines)}
    suppressor.note_checked(model_sites(model).values(), ran)
    return suppressor.apply(group(tuple(located), RULES_BY_CODE), sites)


def _as_the_data_says(static: tuple[Finding, ...], info: dict[str, Any], config: Config,
                      graph: Any, rules: tuple[type[Rule], ...]) -> tuple[Finding, ...]:
    """Static findings revised by what the user's data shows (SPEC 4: data wins).

    Padding in the data replaces the token-0 assumption; data padded on one side
    only is analysed for that side (a causal layer is safe under post-padding);
    rules that do not hold under facts of the data (per-step weights that are 0 on
    every padded step, no fully padded sample) name those facts in `void_when`, and
    `maskcheck.merge` drops their findings."""
    from maskcheck.static.dataflow import analyze

    sides = info.get("data_sides") or set()
    if graph is not None and config.padding == "both" and len(sides) == 1:
        flow = analyze(graph, side=next(iter(sides)), mask_inputs=config.mask_inputs,
                       padded=config.padded, assume=config.assume_padding)
        static = mark_assumed(run_rules(graph, rules, flow=flow), graph, flow)
    if info.get("data_padded"):
        static = tuple(_drop_assumption(s) for s in static)
    return static


def _drop_assumption(finding: Finding) -> Finding:
    assumed = finding.evidence.get("assumed")
    if not isinstance(assumed, dict):
        return finding
    return replace(finding, message=finding.message.replace(assumed_clause(assumed), ""),
                   evidence={k: v for k, v in finding.evidence.items() if k != "assumed"})


def mark_assumed(findings: tuple[Finding, ...], graph: Any, flow: Any) -> tuple[Finding, ...]:
    """Static findings whose padding exists only by convention say so (evidence.assumed).

    A finding rests on the convention when every padded axis reaching its layer (or
    leaving it, for output-level rules) is assumed rather than declared by the model,
    the data or the user. Decision: such findings keep their rule's default severity,
    so a leak under the token-0 convention still fails CI at the default --fail-on;
    `--padded none` is how a user whose inputs are never padded turns them off."""
    by_path = {node.path: node for node in graph.nodes}
    marked = []
    for finding in findings:
        node = by_path.get(finding.path)
        axes = []
        if node is not None:
            for tid in (*node.inputs, *node.outputs):
                state = flow.states.get(tid)
                axes.extend(state.padded if state is not None else ())
        assumed = {p.origin or p.source: p.assumed for p in axes if p.assumed}
        if not axes or not assumed or any(not p.assumed for p in axes):
            marked.append(finding)
            continue
        marked.append(replace(finding, message=finding.message + assumed_clause(assumed),
                              evidence={**finding.evidence, "assumed": assumed}))
    return tuple(marked)


def _probe_and_merge(model: Any, config: Config, data: Any, rules: tuple[type[Rule], ...],
                     static: tuple[Finding, ...], stats: dict[str, Any], graph: Any = None,
                     flow: Any = None, profiles: dict[str, Any] | None = None) -> tuple[Finding, ...]:
    """Run the dynamic checks and merge their results with the static findings
    (`maskcheck.merge` holds the policy, declared on the rules).

    `profiles` receives the probes' per-position change at each leaking layer (by
    layer path), which the HTML report plots."""
    from maskcheck.dynamic.data import DataError, load_data_option
    from maskcheck.dynamic.schedule import (Inconclusive, ModelRaises, NoPadding, NotProbeable,
                                            ProbeError, run_dynamic, to_finding)
    from maskcheck.merge import merge
    from maskcheck.rules import RULES_BY_CODE

    if config.data:  # --data names the user's own batches; it wins over a factory's data
        try:
            data = load_data_option(config.data)
        except DataError as exc:
            raise CheckError("DataError", str(exc), static) from None
    by_code = {r.code: r for r in rules}
    try:
        results, info = run_dynamic(model, data, config, tuple(r() for r in rules), graph, flow)
    except NotProbeable as exc:
        if config.mode == "dynamic":
            raise CheckError("NoPaddedInput" if isinstance(exc, NoPadding) else "NotProbeable",
                             str(exc)) from None
        stats["dynamic"] = f"skipped: {exc}"
        return static
    except DataError as exc:  # SPEC 9: bad data stops the check of this target (exit 2)
        raise CheckError("DataError", str(exc), static) from None
    except ModelRaises as exc:  # SPEC 9: a bad target whatever else was found
        raise CheckError("ForwardError", str(exc), static) from None
    except Inconclusive as exc:  # SPEC 9: inconclusive is not clean
        if config.mode == "dynamic":
            raise CheckError("Inconclusive", f"dynamic checks inconclusive: {exc}") from None
        # the static findings stand, neither confirmed nor refuted (no merge); the note says so
        stats["dynamic"] = (f"inconclusive: {exc}; the static result stands, neither confirmed "
                            "nor refuted by the probes")
        return static
    except ProbeError as exc:
        if config.mode == "all" and static:  # keep what the static engine found (and why)
            stats["dynamic"] = f"failed: {exc}"
            return static
        raise CheckError("ProbeError", str(exc)) from None
    stats["traces"] = info.get("traces", 0)
    if info.get("probe_sizes"):  # what the plan chose: length, samples, passes, device
        stats["probe"] = info["probe_sizes"]
    batch = getattr(info.get("plan"), "batch", None)
    if batch is not None:  # a model built for one batch size (a stateful RNN) runs at it
        stats["probe_batch"] = batch
    if info.get("data_summary") is not None:  # what the user's data said about padding
        stats["data"] = info["data_summary"]
    if info.get("generation"):  # what the generation checks did (a causal LM only)
        stats["generation"] = info["generation"]
    if info.get("notes"):  # a loss the probes could not drive: said, never an error
        stats["loss"] = "; ".join(dict.fromkeys(info["notes"]))
    if profiles is not None:
        profiles.update(info.get("profiles", {}))
    if info.get("data"):
        static = _as_the_data_says(static, info, config, graph, rules)
    dynamic = [to_finding(by_code[r.code], r, graph, flow) for r in results if r.code in by_code]
    assumed = {i.name: i.assumed for i in info["plan"].inputs if i.role == "data" and i.assumed}
    if assumed and not info.get("data"):  # real data wins over every convention
        dynamic = [replace(f, message=f.message + assumed_clause(assumed),
                           evidence={**f.evidence, "assumed": assumed}) for f in dynamic]
    return merge(static, tuple(dynamic), probe_facts(info, rules), RULES_BY_CODE)


def probe_facts(info: dict[str, Any], rules: tuple[type[Rule], ...]) -> Any:
    """What the probes covered, from what ran (`info`) and the selected rules.

    A claim is covered by a selected rule that `covers` it, once the inference pass ran
    (a model that raised on padded batches covered nothing): padded values on the sides
    whose values were perturbed; the amount only along an axis whose length varies;
    batch statistics only where the plan names a layer that may mix samples; the loss
    only when it was measured and every rule that reports a loss leak was selected."""
    from maskcheck.merge import ProbeFacts
    from maskcheck.rules import ALL_RULES

    rows, plan = info.get("rows"), info.get("plan")
    sides = (frozenset(info["sides"]) if info.get("sides") else
             frozenset(getattr(rows, "side", ()) or ()) if rows is not None else frozenset())
    selected = {r.covers for r in rules if r.covers}
    ran = "run" in info and "values" in selected
    covered = set()
    if ran and sides:
        covered.add("values")
    if ran and "amount" in selected and getattr(plan, "time_open", False):
        covered.add("amount")
    if ran and "training" in selected and getattr(plan, "training_layers", ()):
        covered.add("training")
    loss_rules = {r for r in ALL_RULES if r.covers == "loss"}
    if info.get("loss_probed") and loss_rules <= set(rules):
        covered.add("loss")
    conditions = set()
    if info.get("weights_cover_padding"):
        conditions.add("weights_cover_padding")
    if info.get("data") and not info.get("data_empty"):
        conditions.add("data_without_empty_sample")
    return ProbeFacts(covered=frozenset(covered), sides=sides,
                      diverging=frozenset(info.get("records", ())),
                      user_code=frozenset(getattr(plan, "gradient_code", ()) or ()),
                      conditions=frozenset(conditions))


def check_targets(raw_targets: tuple[str, ...], config: Config,
                  progress: Callable[[int, int, str], None] | None = None) -> Report:
    """Load and check every target; failures become error entries, in order."""
    from maskcheck.adoption.baseline import apply_baseline, read_baseline

    baseline = read_baseline(config.baseline) if config.baseline else None  # bad file: fail first
    targets = expand_targets(raw_targets, excludes_for(config))
    suppressor = make_suppressor(config)
    import_error: LoadError | None = None
    if config.imports and any(t.error is None for t in targets):
        try:
            import_modules(config.imports)
        except LoadError as exc:
            import_error = exc
    results = []
    for number, target in enumerate(targets, start=1):
        raise_pending()  # a Ctrl-C or SIGTERM that library code swallowed stops the run here

        def step(stage: str, number: int = number, label: str = target.label) -> None:
            if progress is not None:
                progress(number, len(targets), label, stage)
        results.append(_check_one(target, config, import_error, step, suppressor))
    report = Report(tuple(results), fail_on=config.fail_on,
                    unused_ignores=suppressor.unused() if config.warn_unused_ignores else None,
                    settings=run_settings(config))
    return apply_baseline(report, baseline) if baseline is not None else report


def _check_one(target: Target, config: Config, import_error: LoadError | None,
               step: Callable[[str], None], suppressor: Any) -> ModelReport:
    try:
        if import_error is not None:
            raise import_error
        step("loading")
        model, data = load_target(target, unsafe=config.unsafe, limits=ArchiveLimits.from_config(config))
    except LoadError as exc:
        if config.verbose and exc.__cause__ is not None:
            _log.error("%s: %s", target.label, exc.message, exc_info=exc.__cause__)
        return ModelReport(target.label, None, error=TargetError(exc.type, exc.message))
    except RUN_STOPS:
        raise
    except BaseException as exc:  # code the model file names ran on load (--unsafe) and exited
        return ModelReport(target.label, None, error=_user_exit(exc, target, config))
    step("checking")
    try:
        return check_model(model, target=target.label, config=config, data=data,
                           suppressor=suppressor)
    except CheckError as exc:
        kept, suppressed = locate_and_suppress(model, exc.findings, config, suppressor)
        return ModelReport(target.label, model.name, findings=kept, suppressed=suppressed,
                           error=TargetError(exc.type, exc.message))
    except ConfigError as exc:  # --padded / --mask-input that do not fit this model's inputs
        return ModelReport(target.label, model.name, error=TargetError("BadOption", str(exc)))
    except RUN_STOPS:
        raise
    except Exception as exc:  # an analysis bug must not hide the other targets
        if config.verbose:
            _log.error("%s: maskcheck failed on this model", target.label, exc_info=exc)
        message = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return ModelReport(target.label, model.name,
                           error=TargetError("InternalError", f"maskcheck failed on this model: {message}"
                                             " (rerun with --verbose for the traceback)"))
    except BaseException as exc:  # user code in the model (a custom layer's call) exited
        return ModelReport(target.label, model.name, error=_user_exit(exc, target, config))


def _user_exit(exc: BaseException, target: Target, config: Config) -> TargetError:
    """A SystemExit (or another BaseException) from user code ends this target, not the run:
    exit 0 with other targets unchecked would pass CI on a run that never finished."""
    if config.verbose:
        _log.error("%s: user code stopped the check", target.label, exc_info=exc)
    return TargetError("UserCodeExit", f"user code {user_exit(exc)} while this model was loaded "
                       "or checked; the other targets are still checked")
