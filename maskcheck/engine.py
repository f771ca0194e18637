"""Run the rules over models and collect one Report. Never prints or exits.

`check_model` checks one in-memory model; `check_targets` loads and checks
each command-line target in turn, turning every failure into an error entry
so one bad target never stops the others.

Static and dynamic results merge into one list (SPEC 2). Decision: a static
finding (MC101, MC102, MC105, MC106, MC201) confirmed by a probe at the same
layer keeps its static code, message and fix (the static engine says why,
and users already filter on that code), becomes kind ("static", "dynamic"),
keeps its severity unless no confirmed finding at that layer is as severe
as the measured leak (then the first is raised to it), and gains the probe's evidence
(padding, max_abs_diff, sample, position, output) plus ``confirmed_by``; the
dynamic finding is not reported again. A static mixing/statistics suspicion
(MC102, MC105, MC106) at an unknown custom layer that no probe could make
leak is downgraded to info, says so, and gains ``refuted_by``. Any other
static leak finding (MC102, MC103, MC105, MC106, MC108) that probes which
fully covered it could not reproduce keeps its severity (its reasoning
does not rest on a guess) and says so: ``evidence.dynamic`` is "not
reproduced" and ``evidence.kept_because`` says why the static reading
stands (see `_weigh`); a measured leak the static engine did not predict
anywhere in the model carries ``evidence.static = "not predicted"``. In mode
"all", a model the probes cannot run (no padded input, odd dtypes, a
forward pass that raises while static findings exist) keeps its static
findings and records why in ``stats["dynamic"]``; in mode "dynamic" that is
the target's error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Callable

from maskcheck.config import Config
from maskcheck.finding import Finding, ModelReport, Report, TargetError
from maskcheck.loading import LoadError, Target, expand_targets, import_modules, load_target
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

    Args:
        data: probe data for the dynamic engine (an npz mapping, a dict of
            arrays, an (x, y) pair or x alone); None synthesizes probes, or
            loads `config.data` when that names an .npz file.
        suppressor: the run's `maskcheck.suppress.Suppressor` (one per run, so
            --warn-unused-ignores sees every model); None makes one from `config`.

    Raises:
        CheckError: the model cannot be checked (no graph for a static-only
            run, a forward pass that raises, no padded input for a
            dynamic-only run).
    """
    from maskcheck.static.adapter import adapt_model
    from maskcheck.static.dataflow import analyze

    rules = selected_rules(config.select, config.ignore)
    stats: dict[str, Any] = {}
    profiles: dict[str, Any] = {}  # filled by the probes, drawn by the HTML report
    findings: tuple[Finding, ...] = ()
    graph = flow = None
    no_graph = None
    started = time.perf_counter()
    try:
        graph = adapt_model(model)
    except ValueError as exc:
        if config.mode == "static":
            raise CheckError("NoGraph", str(exc)) from None
        no_graph = str(exc)
    if graph is not None:
        # one dataflow serves the static rules and the probe plan
        flow = analyze(graph, side=config.padding, mask_inputs=config.mask_inputs,
                       padded=config.padded, assume=config.assume_padding)
        if config.mode in ("static", "all"):
            findings = mark_assumed(run_rules(graph, rules, flow=flow), graph, flow)
    if config.mode in ("static", "all"):
        stats["static_ms"] = round((time.perf_counter() - started) * 1000, 1)
    stats["layers"] = len(model.layers) if hasattr(model, "layers") else len(graph.nodes)
    dynamic = [r for r in rules if r.engine in ("dynamic", "data")]
    if config.mode in ("dynamic", "all") and dynamic:
        started = time.perf_counter()
        findings = _check_dynamic(model, config, data, rules, findings, stats, graph, flow, profiles)
        stats["dynamic_ms"] = round((time.perf_counter() - started) * 1000, 1)
    if no_graph is not None and (not dynamic or "dynamic" in stats):  # neither engine could look
        raise CheckError("NoGraph", f"{no_graph}; dynamic checks {stats['dynamic']}")
    kept, suppressed = locate_and_suppress(model, findings, config, suppressor)
    summary = None
    if graph is not None:  # the facts the HTML report draws from (cheap: one pass over the graph)
        from maskcheck.static.summary import summarize

        summary = summarize(graph, flow, profiles)
    return ModelReport(target=target, model=model.name, findings=kept, stats=stats,
                       suppressed=suppressed, graph=summary)


def check_in_memory(model: Any, config: Config, data: Any = None) -> Report:
    """The Report for one in-memory model (the API and the pytest fixture): a model
    that cannot be checked gives an error entry; `config.baseline` applies."""
    from maskcheck.adoption.baseline import apply_baseline, read_baseline

    baseline = read_baseline(config.baseline) if config.baseline else None
    name = getattr(model, "name", type(model).__name__)
    suppressor = make_suppressor(config)
    try:
        result = check_model(model, target=name, config=config, data=data, suppressor=suppressor)
    except CheckError as exc:
        kept, suppressed = locate_and_suppress(model, exc.findings, config, suppressor)
        result = ModelReport(name, name, findings=kept, suppressed=suppressed,
                             error=TargetError(exc.type, exc.message))
    report = Report((result,), fail_on=config.fail_on,
                    unused_ignores=suppressor.unused() if config.warn_unused_ignores else None,
                    settings=run_settings(config))
    return apply_baseline(report, baseline) if baseline is not None else report


def run_settings(config: Config) -> dict[str, Any]:
    """The settings a report's reader needs to reproduce the run (the HTML header)."""
    return {
        "mode": config.mode, "fail_on": config.fail_on, "padding": config.padding,
        "seed": config.seed, "batch_size": config.batch_size, "seq_len": config.seq_len,
        "atol": config.atol, "rtol": config.rtol,
        "select": sorted(config.select) if config.select is not None else "all",
        "ignore": sorted(config.ignore), "data": config.data,
    }


def make_suppressor(config: Config) -> Any:
    from maskcheck.adoption.suppress import Suppressor

    return Suppressor(config.per_layer_ignores, config.source)


def locate_and_suppress(model: Any, findings: tuple[Finding, ...], config: Config,
                        suppressor: Any = None) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    """Findings gain `location` where the culprit layer's construction was recorded (SPEC 6);
    then inline comments and per-layer-ignores move some to the suppressed list."""
    from maskcheck.adoption.locations import site_at
    from maskcheck.adoption.suppress import model_sites

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
    return suppressor.apply(located, sites)


def assumed_clause(assumed: dict[str, str]) -> str:
    """The sentence every finding that rests on a padding convention carries (SPEC 4.6)."""
    names = ", ".join(repr(name) for name in assumed)
    what = next(iter(assumed.values()))
    return (f" This assumes input {names} holds {what}; if it is never padded, pass "
            "--padded none (padded = [] in [tool.maskcheck]).")


def _as_the_data_says(static: tuple[Finding, ...], info: dict[str, Any], config: Config,
                      graph: Any, rules: tuple[type[Rule], ...]) -> tuple[Finding, ...]:
    """Static findings revised by what the user's data shows (SPEC 4: data wins).

    Padding in the data replaces the token-0 assumption; data padded on one side
    only is analysed for that side (a causal layer is safe under post-padding);
    per-step sample weights that are 0 on every padded step keep padded labels
    out of the loss, so MC201 does not hold (MC403 says when they do not); data
    with no fully padded sample cannot divide by an empty mask (MC109)."""
    from maskcheck.static.dataflow import analyze

    sides = info.get("data_sides") or set()
    if graph is not None and config.padding == "both" and len(sides) == 1:
        flow = analyze(graph, side=next(iter(sides)), mask_inputs=config.mask_inputs,
                       padded=config.padded, assume=config.assume_padding)
        static = mark_assumed(run_rules(graph, rules, flow=flow), graph, flow)
    if info.get("data_padded"):
        static = tuple(_drop_assumption(s) for s in static)
    if info.get("weights_cover_padding"):
        static = tuple(s for s in static if s.rule != "MC201")
    if info.get("data") and not info.get("data_empty"):
        # Decision: with real data, a 0/0 masked mean is reported only when the data
        # hold a fully padded sample (MC305 then measures the NaN too)
        static = tuple(s for s in static if s.rule != "MC109")
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


#: Static codes that a dynamic result at the same layer confirms.
CONFIRMS = {"MC301": ("MC101", "MC102", "MC103", "MC105"), "MC304": ("MC102", "MC105"),
            "MC302": ("MC106",), "MC303": ("MC201",), "MC203": ("MC201", "MC203"), "MC103": ("MC103",),
            "MC305": ("MC109",)}
#: Static suspicions that probes can refute (the layer is an unknown custom layer).
REFUTABLE = ("MC102", "MC105", "MC106")
#: Static findings that claim padding changes what the model computes (what MC301,
#: MC302 and MC304 measure), and so can disagree with the probes.
STATIC_LEAKS = ("MC102", "MC103", "MC105", "MC106", "MC108")
#: Dynamic findings that measure such a change.
DYNAMIC_LEAKS = ("MC301", "MC302", "MC304")


def _check_dynamic(model: Any, config: Config, data: Any, rules: tuple[type[Rule], ...],
                   static: tuple[Finding, ...], stats: dict[str, Any], graph: Any = None,
                   flow: Any = None, profiles: dict[str, Any] | None = None) -> tuple[Finding, ...]:
    """Run the dynamic rules and merge their results with the static findings.

    `profiles` receives the probes' per-position change at each leaking layer (by
    layer path), which the HTML report plots.

    Merging: a static finding (MC101/MC102/MC103/MC105/MC106/MC109/MC201/MC203) at the
    layer (same path) where a probe localized a leak keeps its static code,
    message and fix (the static engine says *why*, the code users already
    know), becomes kind ("static", "dynamic"), keeps its severity unless no
    confirmed finding at that layer is as severe as the leak (then the first
    is raised) and gains the probe's evidence plus ``confirmed_by``; the
    dynamic finding is then not reported separately. At an unknown custom
    layer (whose semantics the static engine assumed) the merged code follows
    what the static engine knows there: a mask that reached the layer and
    was passed on makes a measured leak MC105 (the layer mixes positions) or
    MC103 (it moves or resamples them, as the probe shows); no mask makes it
    MC102. A static MC102/MC105/MC106 at an unknown custom layer whose valid
    outputs no probe could change is downgraded to info, says so, and gains
    ``refuted_by``. MC101 is never refuted that way: a dropped mask hurts
    the layers after the one that drops it.
    """
    from maskcheck.dynamic.findings import (ModelRaises, NoPadding, NotProbeable, ProbeError,
                                            run_dynamic, to_finding)

    from maskcheck.dynamic.data import DataError, load_data_option

    if config.data:  # --data names the user's own batches; it wins over a factory's data
        try:
            data = load_data_option(config.data)
        except DataError as exc:
            raise CheckError("DataError", str(exc), static) from None
    codes = {r.code for r in rules}
    by_code = {r.code: r for r in rules}
    try:
        results, info = run_dynamic(model, data, config, codes, graph, flow)
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
    except ProbeError as exc:
        if config.mode == "all" and static:  # keep what the static engine found (and why)
            stats["dynamic"] = f"failed: {exc}"
            return static
        raise CheckError("ProbeError", str(exc)) from None
    stats["traces"] = info.get("traces", 0)
    if info.get("notes"):  # a loss the probes could not drive: said, never an error
        stats["loss"] = "; ".join(dict.fromkeys(info["notes"]))
    if profiles is not None:
        profiles.update(info.get("profiles", {}))
    if info.get("data"):
        static = _as_the_data_says(static, info, config, graph, rules)
    if info.get("weights_cover_padding"):  # the data's weights keep padding out of the loss
        results = [r for r in results if r.code != "MC303"]
    dynamic = [to_finding(by_code[r.code], r) for r in results if r.code in by_code]
    assumed = {i.name: i.assumed for i in info["plan"].inputs if i.role == "data" and i.assumed}
    if assumed and not info.get("data"):  # real data wins over every convention
        dynamic = [replace(f, message=f.message + assumed_clause(assumed),
                           evidence={**f.evidence, "assumed": assumed}) for f in dynamic]
    merged = list(static)
    kept = []
    for finding in dynamic:
        reclassified = _reclassify(merged, finding, by_code)
        if reclassified is not None:
            merged = reclassified
            continue
        targets = [i for i, s in enumerate(merged)
                   if s.rule in CONFIRMS.get(finding.rule, ()) and s.layer == finding.layer
                   and s.path == finding.path]
        fresh = [i for i in targets if "confirmed_by" not in merged[i].evidence]
        # Each code keeps its default severity (so --fail-on means the same with or without
        # probes), unless none of the confirmed findings is as severe as the measured leak:
        # then the first one is raised, so a proven leak never reads as a mere warning.
        carried = any(merged[i].severity.rank >= finding.severity.rank for i in fresh)
        for n, i in enumerate(fresh):
            s = merged[i]
            severity = finding.severity if (n == 0 and not carried) else s.severity
            merged[i] = replace(s, kind=("static", "dynamic"), severity=severity,
                                evidence={**s.evidence, **finding.evidence, "confirmed_by": finding.rule})
        if not targets:
            kept.append(finding)
    coverage = _coverage(info, codes, config)
    merged = [_weigh(s, coverage, info["records"], dynamic) for s in merged]
    merged = [_weigh_loss(s, info, dynamic) for s in merged]
    if coverage["values"] and not any(s.rule in STATIC_LEAKS for s in merged):
        # the probes measured a leak the static reading did not predict anywhere
        kept = [replace(d, evidence={**d.evidence, "static": "not predicted"})
                if d.rule in DYNAMIC_LEAKS else d for d in kept]
    return tuple(merged) + tuple(kept)


def _reclassify(merged: list[Finding], finding: Finding,
                by_code: dict[str, type[Rule]]) -> list[Finding] | None:
    """A measured leak at a layer whose semantics the static engine assumed: name the bug
    by what the static engine knows there (mask arrived? passed on?) and what the probe saw.

    Returns the new list of findings, or None when this rule does not apply."""
    from maskcheck.rules import ALL_RULES

    if finding.rule not in ("MC301", "MC304"):
        return None
    at = [i for i, s in enumerate(merged) if s.layer == finding.layer and s.path == finding.path
          and s.rule == "MC102" and s.evidence.get("assumed_semantics") and "confirmed_by" not in s.evidence]
    if not at:
        return None
    assumed = merged[at[0]]
    source = assumed.evidence.get("mask_source")
    if not (source and assumed.evidence.get("passes_mask")):
        return None  # no mask reached it, or it dropped it: MC102 (mixing without a mask) holds
    movement = finding.evidence.get("movement")
    code = "MC103" if movement in ("moves", "resamples") else "MC105"
    rule = by_code.get(code) or next(r for r in ALL_RULES if r.code == code)
    layer, cls = finding.layer, finding.layer_class
    detail = {"moves": "it moves positions along the padded axis (reverses or shifts it) while "
                       "passing the mask on unchanged, so the mask marks the wrong positions",
              "resamples": "it changes the length of the padded axis while passing the "
                           "full-length mask on"}.get(movement, "")
    values = {"layer": layer, "layer_class": cls, "source": source, "detail": detail,
              "reason": "mixes values along the padded axis (a probe measured it)",
              "hint": rule.hint(layer, cls) if hasattr(rule, "hint") else ""}
    evidence = {k: v for k, v in assumed.evidence.items() if k not in ("assumed_semantics", "passes_mask")}
    new = Finding(rule=rule.code, name=rule.name, severity=max(rule.severity, finding.severity,
                                                              key=lambda s: s.rank),
                  kind=("static", "dynamic"), layer=layer, layer_class=cls, path=finding.path,
                  message=rule.message.format(**values), fix=rule.fix.format(**values),
                  evidence={**evidence, **finding.evidence, "confirmed_by": finding.rule})
    return [new if i == at[0] else s for i, s in enumerate(merged)]


def _coverage(info: dict[str, Any], codes: set[str], config: Config) -> dict[str, Any]:
    """What the probes covered: the padding sides whose padded values they perturbed with
    the mask held fixed (MC301), and whether they also changed the amount of padding
    (MC304: only along an axis whose length varies). A model that raised on padded batches
    was not covered (there were no valid outputs to compare)."""
    rows, plan = info.get("rows"), info.get("plan")
    sides = set(getattr(rows, "side", ()) or ()) if rows is not None else set()
    ran = "run" in info and "MC301" in codes
    return {"values": ran and bool(sides), "sides": sides,
            "amount": ran and "MC304" in codes and bool(getattr(plan, "time_open", False)),
            "training": ran and "MC302" in codes and bool(getattr(plan, "training_layers", ()))}


def _weigh(finding: Finding, coverage: dict[str, Any], diverging: set[str],
           dynamic: list[Finding]) -> Finding:
    """A static leak finding that the probes, covering it fully, could not reproduce.

    Decision (the refutation rule): a static finding and the probes disagree when the
    finding claims a leak (STATIC_LEAKS), no dynamic leak was measured at its layer,
    that layer's valid outputs never moved under any perturbation, and the probes
    covered the claim: every padding side it names had its padded values perturbed
    (and, for a claim about the amount of padding, the amount changed; for batch
    statistics, training mode probed). Then:

    * a finding that rests on a guess (an unknown layer whose semantics were assumed)
      is downgraded to info and gains ``refuted_by`` (the probes know better);
    * any other finding keeps its severity, since its reasoning holds whatever
      weights the probes happened to draw, and says why in ``kept_because``;
      ``dynamic`` is "not reproduced" either way.

    A finding the probes did not cover (a side not probed, an axis of fixed length for an
    amount claim, a model that raised) is left as it is."""
    from maskcheck.finding import Severity

    if (finding.rule not in STATIC_LEAKS or "dynamic" in finding.kind
            or not finding.layer or finding.layer in diverging
            or any(d.layer == finding.layer for d in dynamic if d.rule in DYNAMIC_LEAKS)):
        return finding
    amount = bool(finding.evidence.get("amount_only")) or finding.rule == "MC108"
    side = finding.evidence.get("padding")
    claimed = {"post", "pre"} if side in (None, "both") else {side}
    covered = (coverage["values"] and claimed <= coverage["sides"]
               and (not amount or coverage["amount"])
               and (finding.rule != "MC106" or coverage["training"]))
    if not covered:
        return finding
    note = " Probes that perturbed padding here could not make it change valid outputs"
    evidence = {**finding.evidence, "dynamic": "not reproduced"}
    if finding.rule in REFUTABLE and finding.layer_class and finding.evidence.get("assumed_semantics"):
        return replace(finding, severity=Severity.INFO, kind=("static", "dynamic"),
                       message=finding.message + " Probes could not make padding change this layer's "
                       "valid outputs, so this suspicion is downgraded to info.",
                       evidence={**evidence, "refuted_by": "MC301"})
    why = _kept_because(finding, amount)
    return replace(finding, message=finding.message + note + f"; it is kept because {why}.",
                   evidence={**evidence, "kept_because": why})


def _weigh_loss(finding: Finding, info: dict[str, Any], dynamic: list[Finding]) -> Finding:
    """A static loss finding (MC201, MC203) about a loss written in user code that the loss
    probes measured and could not move.

    The static engine cannot read every user loss (one that masks by `y_true != 0`, by
    lengths): saying it counts padding is then a guess. When the probes computed that
    loss under changed padded labels and changed predictions at padded steps and it did
    not move (no MC303/MC203 measured), the finding becomes info with ``refuted_by``.
    A built-in Keras loss is read exactly, so its finding stands as it is."""
    from maskcheck.finding import Severity

    if (finding.rule not in ("MC201", "MC203") or "dynamic" in finding.kind
            or not info.get("loss_probed") or any(d.rule in ("MC303", "MC203") for d in dynamic)):
        return finding
    plan = info.get("plan")
    user_code = set(getattr(plan, "gradient_code", ()) or ())
    loss = str(finding.evidence.get("loss", ""))
    if not (loss in user_code or any(name.endswith(".compute_loss") for name in user_code)):
        return finding
    return replace(finding, severity=Severity.INFO, kind=("static", "dynamic"),
                   message=finding.message + " Probes that changed padded labels and the "
                   "predictions at padded steps could not move this loss (it applies its own "
                   "mask), so this suspicion is downgraded to info.",
                   evidence={**finding.evidence, "dynamic": "not reproduced",
                             "refuted_by": "MC303"})


def _kept_because(finding: Finding, amount: bool) -> str:
    """Why a static finding the probes could not reproduce still stands (never a guess)."""
    if finding.rule == "MC103":
        return ("the mask no longer lines up with its tensor, so the layers after it read "
                "the wrong steps whatever the weights")
    if amount:
        return ("the padded steps hold values computed from valid steps and weights (biases, "
                "a carried state), which the probes' untrained weights can make too small "
                "to measure; trained weights do not")
    if finding.rule == "MC106":
        return "the layer's statistics include padded positions in training by construction"
    return (f"{finding.layer_class or 'this layer'} reads padded positions by construction "
            "(maskcheck knows its semantics); untrained weights can hide the change "
            "from the probes, trained ones do not")


def check_targets(raw_targets: tuple[str, ...], config: Config,
                  progress: Callable[[int, int, str], None] | None = None) -> Report:
    """Load and check every target; failures become error entries, in order."""
    from maskcheck.adoption.baseline import apply_baseline, read_baseline

    baseline = read_baseline(config.baseline) if config.baseline else None  # bad file: fail first
    targets = expand_targets(raw_targets)
    suppressor = make_suppressor(config)
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
        model, data = load_target(target, unsafe=config.unsafe)
    except LoadError as exc:
        if config.verbose and exc.__cause__ is not None:
            _log.error("%s: %s", target.label, exc.message, exc_info=exc.__cause__)
        return ModelReport(target.label, None, error=TargetError(exc.type, exc.message))
    step("checking")
    try:
        return check_model(model, target=target.label, config=config, data=data,
                           suppressor=suppressor)
    except CheckError as exc:
        kept, suppressed = locate_and_suppress(model, exc.findings, config, suppressor)
        return ModelReport(target.label, model.name, findings=kept, suppressed=suppressed,
                           error=TargetError(exc.type, exc.message))
    except Exception as exc:  # an analysis bug must not hide the other targets
        if config.verbose:
            _log.error("%s: maskcheck failed on this model", target.label, exc_info=exc)
        message = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return ModelReport(target.label, model.name,
                           error=TargetError("InternalError", f"maskcheck failed on this model: {message}"
                                             " (rerun with --verbose for the traceback)"))
