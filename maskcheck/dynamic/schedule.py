"""The scheduler: run each selected dynamic check on each probe batch, each program once.

A dynamic check is a rule's `probe(ctx)` (in its own module under
`maskcheck/rules/`); the rule names the programs it reads (`programs`, see
`maskcheck.rule.PROGRAMS`). Per probe batch (synthesized, or each batch of the
user's data) the scheduler prepares the stacked batch, runs the inference
program, then calls the checks program by program, in rule-code order within a
program. A `ProbeContext` carries the batch and computes each program's
measurements on first use and keeps them, so two checks that read the same
measurement share one run (MC301 and MC401 the padding leaks; MC103, MC203,
MC303 and MC305 the loss program). Adding a check never edits this module.

`run_dynamic(model, data, config, rules, graph, flow)` returns the results and
what the engine needs to merge them with the static findings (`info`).
"""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import Any

import numpy as np

from maskcheck.dynamic.batches import (DRAWS, Prepared, Rows, infer_sides, prepare,
                                       split_probe, stack_draws, stacked_inputs, synthesize)
from maskcheck.dynamic.compare import DynamicFinding, Measured, diverging_layers, round_sig
from maskcheck.dynamic.generation import PROMPTS, GenerationOutcome, generation_outcome
from maskcheck.dynamic.inference import (Inconclusive, ModelRaises, check_measurable,
                                         mask_mismatch, nonfinite, pad_amount, padding_leaks,
                                         raise_if_unpadded_raises, without_empty)
from maskcheck.dynamic.lossprobe import LossOutcome, measure_loss
from maskcheck.dynamic.plan import (NoPadding, NotProbeable, ProbeError, ProbePlan, build_plan,
                                    layers_named, preprocessor_weights_cover_padding)
from maskcheck.dynamic.program import ForwardError, Prober, Run, has_loss
from maskcheck.dynamic.realdata import read_padding, summarize
from maskcheck.dynamic.training import cross_sample
from maskcheck.finding import Finding
from maskcheck.rule import PROGRAMS

__all__ = ["Inconclusive", "ModelRaises", "NoPadding", "NotProbeable", "ProbeContext", "ProbeError",
           "run_dynamic", "to_finding"]

class ProbeContext:
    """One probe batch and the measurements the programs make on it.

    Checks read the attributes; each measurement is computed on first use and kept.
    `program` is the program whose checks are running; `results` holds the results
    of the checks that ran before on this batch (a data check may supersede one)."""

    def __init__(self, model: Any, plan: ProbePlan, probe: Any, prober: Prober, config: Any,
                 batch: Any, loss_parts: dict[str, bool], notes: list[str],
                 verify: bool = True) -> None:
        self.model, self.plan, self.probe, self.prober = model, plan, probe, prober
        self.config, self.batch = config, batch
        self.program = ""
        self.results: list[DynamicFinding] = []
        self.profiles: dict[str, Any] = {}
        self._loss_parts = loss_parts
        self._notes = notes
        self.loss_ran = False
        self.prep: Prepared = prepare(model, plan, probe.x, probe.mask, None, "post",
                                      extra_masks=tuple(m for _, m in config.mask_inputs),
                                      promote=batch is not None)
        sides = probe.sides or infer_sides(self.prep.mask)
        self.rows: Rows = stack_draws(self.prep.mask, sides)
        self.inputs = stacked_inputs(self.prep, self.rows, config.seed)
        if verify:  # inconclusive is not clean: outputs the probes cannot compare stop here
            check_measurable(prober, self.prep, config)
        #: the ForwardError of padded batches when the model raises on them ("failure")
        self.failure: ForwardError | None = None
        #: where the pass raised when only fully padded samples make it raise
        self.raised_on_empty: Measured | None = None
        self.run: Run | None = None
        try:
            self.run = prober.run(self.inputs, self.rows)
        except ForwardError as exc:
            recovered = without_empty(prober, self.inputs, self.rows, exc, model)
            if recovered is None:
                raise_if_unpadded_raises(prober, self.prep, exc, config.seed)
                self.failure = exc
                return
            self.raised_on_empty, self.run, self.rows, self.inputs = recovered
        self.output_axes = ([o.padded_axes for o in plan.outputs]
                            if len(plan.outputs) == len(self.run.outputs) else None)

    # -- failure -------------------------------------------------------------------------
    @cached_property
    def mask_mismatch(self) -> Measured:
        """Where the mask stopped lining up, for a model that raises on padded batches."""
        return mask_mismatch(self.model, self.plan, self.prep, self.prober, self.rows, self.failure)

    # -- inference -----------------------------------------------------------------------
    @cached_property
    def padding_leaks(self) -> list[Measured]:
        """Valid outputs that change when only padded values change, one per culprit layer."""
        leaks, profiles = padding_leaks(self.prober, self.run, self.rows, self.output_axes,
                                        self.config.atol, self.config.rtol)
        self.profiles = profiles
        return leaks

    @cached_property
    def nonfinite(self) -> Measured | None:
        """Non-finite outputs of a fully padded sample."""
        return nonfinite(self.run, self.rows, self.model)

    @cached_property
    def pad_amount(self) -> list[Measured]:
        """Valid outputs that change with the amount of padding (an open padded axis only)."""
        if not self.plan.time_open:
            return []
        return pad_amount(self.prober, self.prep, self.run, self.rows, self.config,
                          self.output_axes)

    # -- training ------------------------------------------------------------------------
    @cached_property
    def cross_sample(self) -> list[Measured]:
        """One sample's padding reaching another's valid outputs in training mode."""
        if not self.plan.training_layers:
            return []
        return cross_sample(self.prober, self.inputs, self.rows, self.config)

    # -- loss ----------------------------------------------------------------------------
    @cached_property
    def loss(self) -> LossOutcome:
        """The loss program's outcome on this batch (see `LossOutcome`)."""
        self.loss_ran = True
        said = len(self._notes)
        outcome = measure_loss(self.model, self.plan, self.prep, self.probe, self.prober,
                               self.inputs, self.run, self.rows, self.config,
                               sample_weight=self.batch.sample_weight if self.batch is not None else None,
                               notes=self._notes, **self._loss_parts)
        self.loss_notes = len(self._notes) != said
        return outcome

    # -- data ----------------------------------------------------------------------------
    def supersede(self, rule: Any, mine: DynamicFinding) -> None:
        """Drop the earlier results on this batch that `mine` says better (`rule.supersedes`)."""
        self.results = [r for r in self.results if not rule.supersedes(mine, r)]


class GenerationContext:
    """The "generation" program: runs once per model (not per probe batch). Checks read
    `generation`, measured on first use: prompts generated alone and in padded batches."""

    program = "generation"

    def __init__(self, model: Any, config: Any, device: str) -> None:
        self.model, self.config, self.device = model, config, device
        self.results: list[DynamicFinding] = []
        self.ran = False

    @cached_property
    def generation(self) -> GenerationOutcome:
        self.ran = True
        return generation_outcome(self.model, self.config, self.device)

    def supersede(self, rule: Any, mine: DynamicFinding) -> None:
        self.results = [r for r in self.results if not rule.supersedes(mine, r)]


def run_dynamic(model: Any, data: Any, config: Any, rules: tuple[Any, ...], graph: Any = None,
                flow: Any = None) -> tuple[list[DynamicFinding], dict[str, Any]]:
    """Run the dynamic checks of `rules` (instances of the selected rule classes) on `model`;
    returns (results, info).

    `info` holds the plan, the layers whose valid outputs diverged (for refutation), the
    number of traces made, the change profiles, and facts of the user's data (with
    `data_summary`, what it said about padding, for `stats["data"]`).

    Raises:
        NotProbeable: no probe can be synthesized (NoPadding when nothing is padded).
        ModelRaises: the model raises on an unpadded batch too.
        Inconclusive: the outputs of an unpadded batch are not finite, or not the same
            when it runs twice (checked on the first probe batch).
        ProbeError: another reason the model cannot be probed.
    """
    checks = [rule for rule in rules if rule.programs]
    plan = build_plan(model, config, graph, flow, require_padding=data is None)
    names = set(plan.generators)
    prober = Prober(model, config.device, config.seed, layers_named(model, names),
                    batch=plan.batch)
    info: dict[str, Any] = {"plan": plan, "records": set(), "prober": prober,
                            "data": data is not None, "notes": []}
    loss_parts = {"leaks": any("loss-leaks" in r.needs for r in checks),
                  "empty": any("loss-empty" in r.needs for r in checks)}
    if not any(set(c.programs) - {"generation"} for c in checks):
        results = []  # only the generation checks were selected: no probe batch to run
    elif data is None:
        # a keras-hub task's preprocessor feeds fit sample weights; they may zero the padding
        info["weights_cover_padding"] = preprocessor_weights_cover_padding(model)
        parts = split_probe(synthesize(plan, config), plan.samples_per_pass(len(DRAWS) + 1))
        info["probe_sizes"] = _sizes([part for _, part in parts], prober)
        if len(parts) == 1:
            results = _probe(model, plan, parts[0][1], prober, config, checks, info, loss_parts)
        else:
            results = _merged(((offset, _probe(model, plan, part, prober, config, checks, info,
                                               loss_parts)) for offset, part in parts))
    else:  # real data wins over every convention (SPEC 4): its own masks, sides and labels
        results = []
        seen: set[tuple] = set()
        paddings = read_padding(model, plan, data, config)
        info["data_summary"] = summarize(paddings, plan)
        per_pass = plan.samples_per_pass(len(DRAWS) + 1)
        passes = [(offset, replace(batch, probe=part, sample_weight=_rows_of(
                      batch.sample_weight, offset, len(part.mask))))
                  for batch in paddings for offset, part in split_probe(batch.probe, per_pass)]
        info["probe_sizes"] = _sizes([batch.probe for _, batch in passes], prober)
        for offset, batch in passes:
            info["data_padded"] = info.get("data_padded", False) or batch.padded
            mask = np.asarray(batch.probe.mask)
            info["data_empty"] = info.get("data_empty", False) or bool(
                mask.ndim >= 2 and (~mask.reshape(mask.shape[0], -1).astype(bool)).all(axis=1).any())
            info.setdefault("data_sides", set()).update(
                side for side, row in zip(batch.probe.sides, batch.probe.mask) if not row.all())
            weights = batch.sample_weight
            covers = (isinstance(weights, np.ndarray) and weights.shape == batch.probe.mask.shape
                      and not ((~batch.probe.mask) & (weights != 0)).any())
            info["weights_cover_padding"] = info.get("weights_cover_padding", True) and covers
            for result in _probe(model, plan, batch.probe, prober, config, checks, info,
                                 loss_parts, batch):
                key = (result.code, result.leak.layer, result.leak.path)
                if key not in seen:
                    seen.add(key)
                    if offset:  # a batch split into passes: the sample's index in the batch
                        result.leak = replace(result.leak, sample=result.leak.sample + offset)
                    results.append(result)
    results.extend(_generate(model, config, checks, prober, info))
    info["traces"] = prober.traces + info.get("generation_traces", 0)
    return results, info


def _sizes(probes: list[Any], prober: Prober) -> dict[str, Any]:
    """What the probe plan chose, for stats["probe"]: the padded length, the samples, the
    forward passes they take (a probe whose outputs are wide is split), the most rows one
    pass stacks (every sample once per perturbation draw) and the device."""
    masks = [np.asarray(p.mask) for p in probes]
    return {"length": max((int(m.shape[1]) for m in masks if m.ndim >= 2), default=0),
            "samples": sum(int(m.shape[0]) for m in masks), "passes": len(masks),
            "rows_per_pass": max((int(m.shape[0]) for m in masks), default=0) * (len(DRAWS) + 1),
            "device": prober.device}


def _merged(parts: Any) -> list[DynamicFinding]:
    """Results of a probe split into passes (`(first sample, results)` per pass): one per
    (rule, layer, path), the first found, its sample counted in the whole probe and its
    `sides` those of every pass that found it."""
    merged: dict[tuple, DynamicFinding] = {}
    for offset, results in parts:
        for result in results:
            key = (result.code, result.leak.layer, result.leak.path)
            if key in merged:
                kept = merged[key].fields
                if "sides" in kept and "sides" in result.fields:
                    kept["sides"] = sorted(set(kept["sides"]) | set(result.fields["sides"]))
                continue
            result.leak = replace(result.leak, sample=result.leak.sample + offset)
            merged[key] = result
    return list(merged.values())


def _rows_of(weights: Any, offset: int, n: int) -> Any:
    """Rows offset .. offset + n of a batch's sample weights (None and non-arrays as they are)."""
    import keras

    if weights is None:
        return None
    return keras.tree.map_structure(
        lambda a: np.asarray(a)[offset:offset + n] if np.ndim(a) else a, weights)


def _generate(model: Any, config: Any, checks: list[Any], prober: Prober,
              info: dict[str, Any]) -> list[DynamicFinding]:
    """The "generation" program's checks, once per model (a model with no generation path
    costs one attribute lookup)."""
    chosen = sorted((c for c in checks if "generation" in c.programs), key=lambda c: c.code)
    if not chosen or not callable(getattr(model, "generate_step", None)):
        return []
    ctx = GenerationContext(model, config, prober.device)
    for check in chosen:
        for result in check.probe(ctx):
            ctx.supersede(check, result)
            ctx.results.append(result)
    if ctx.ran:
        outcome = ctx.generation
        info["generation"] = ({"skipped": outcome.skipped} if outcome.skipped else
                              {"sides": list(outcome.sides), "steps": outcome.steps,
                               "prompts": PROMPTS})
        info["generation_traces"] = outcome.traces
    return ctx.results


def _probe(model: Any, plan: ProbePlan, probe: Any, prober: Prober, config: Any,
           checks: list[Any], info: dict[str, Any], loss_parts: dict[str, bool],
           batch: Any = None) -> list[DynamicFinding]:
    """Every scheduled check on one probe batch (synthesized, or one batch of real data)."""
    ctx = ProbeContext(model, plan, probe, prober, config, batch, loss_parts, info["notes"],
                       verify=not info.get("measurable"))
    info["measurable"] = True
    # "failure" runs alone when the forward pass raised on padded batches, else never
    programs = ("failure",) if ctx.failure is not None else PROGRAMS[1:]
    for program in programs:
        if (program == "data" and batch is None) or program == "generation":
            continue  # "generation" runs once per model, after the batches
        ctx.program = program
        for check in sorted((c for c in checks if program in c.programs), key=lambda c: c.code):
            for result in check.probe(ctx):
                ctx.supersede(check, result)
                ctx.results.append(result)
    if ctx.failure is not None:
        return ctx.results
    info["run"], info["rows"] = True, ctx.rows  # the Run itself is not kept: the next pass needs the room
    info.setdefault("sides", set()).update(ctx.rows.side)
    for key, profile in ctx.profiles.items():
        info.setdefault("profiles", {}).setdefault(key, profile)
    if ctx.loss_ran:  # the loss was measured under perturbed padded labels and predictions
        probed = has_loss(model) and not ctx.loss_notes
        info["loss_probed"] = info.get("loss_probed", True) and probed
    info["records"] = info["records"] | diverging_layers(ctx.run, ctx.rows, config.atol,
                                                         config.rtol)
    return ctx.results


def to_finding(rule: Any, result: DynamicFinding, graph: Any = None, flow: Any = None) -> Finding:
    """A dynamic Finding with SPEC 6 evidence (padding, max_abs_diff, sample, position, output);
    with the model's `graph` and `flow`, the rule words it by the cause there (`Rule.refine`)."""
    leak = result.leak
    layer = leak.layer or leak.output
    evidence: dict[str, Any] = {
        "padding": leak.padding,
        "max_abs_diff": None if leak.max_abs_diff != leak.max_abs_diff else round_sig(leak.max_abs_diff),
        "sample": leak.sample,
        "position": leak.position if leak.position >= 0 else None,
        "output": leak.output,
    }
    for key, value in result.fields.items():
        if key in ("detail", "source", "hint") or value is None:
            continue
        evidence[key] = round_sig(value) if isinstance(value, float) else value
    hint = rule.hint(layer, leak.layer_class) if hasattr(rule, "hint") else ""
    values = {"layer": layer, "layer_class": leak.layer_class, "max_abs_diff": leak.max_abs_diff,
              "sample": leak.sample, "padding": leak.padding, "other": "?", "extra": "?",
              "what": "values", "loss_diff": 0.0, "loss": "?", "source": "?", "detail": "?",
              "hint": hint, "reason": "mixes values along the padded axis",
              **rule.message_values(result.fields)}
    finding = Finding(rule=rule.code, name=rule.name, severity=rule.severity, kind=("dynamic",),
                      layer=layer, layer_class=leak.layer_class,
                      path=leak.path or (layer,) if layer else leak.path,
                      message=rule.message.format(**values), fix=rule.fix.format(**values),
                      evidence=evidence)
    return finding if graph is None or flow is None else rule.refine(finding, graph, flow)
