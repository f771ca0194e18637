"""Static and dynamic findings merged into one list: a pure function over two tuples.

The policy is data on the rule classes (`maskcheck.rule.Rule`): which static
rules a measurement `confirms`, which it `reclassifies`, what a static finding
`claims` and a dynamic check `covers`, which static guesses a measurement
`refutes`, and the facts of the user's data under which a rule is void
(`void_when`). No rule code appears here; `merge` reads the classes.

Decisions (SPEC 2), in the order `merge` applies them:

* Void: a finding whose rule lists a fact of the data in `void_when` is dropped
  (per-step weights that are 0 on every padded step keep padded labels out of the
  loss; data with no fully padded sample cannot divide by an empty mask).
* Renamed: a measured leak at an unknown custom layer whose semantics the static
  engine assumed is named by what the static engine knows there (a mask reached
  the layer and was passed on: it mixes, moves or resamples positions).
* Confirmed: a static finding confirmed by a measurement at the same layer keeps its
  code, message and fix (the static engine says why; users filter on that code),
  becomes kind ("static", "dynamic"), keeps its severity unless no confirmed finding
  at that layer is as severe as the measured leak (then the first is raised to it)
  and gains the measurement's evidence plus ``confirmed_by``; the dynamic finding is
  not reported again.
* Weighed: a static claim the probes covered and could not reproduce is downgraded
  to info with ``refuted_by`` when it rests on a guess, and otherwise keeps its
  severity and says why in ``kept_because``; ``dynamic`` is "not reproduced" either
  way. A claim the probes did not cover is left as it is.
* Not predicted: a measured leak the static engine did not predict anywhere in the
  model carries ``evidence.static = "not predicted"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Rule


@dataclass(frozen=True)
class ProbeFacts:
    """What the probes covered and measured besides their findings.

    `covered`: the claims (see `maskcheck.rule.CLAIMS`) the probes could have
    reproduced; `sides`: the padding sides whose padded values they perturbed;
    `diverging`: layers whose valid outputs moved under some perturbation;
    `user_code`: the loss code written by the user that the loss probes ran;
    `conditions`: facts of the user's data (see `Rule.void_when`)."""

    covered: frozenset[str] = frozenset()
    sides: frozenset[str] = frozenset()
    diverging: frozenset[str] = frozenset()
    user_code: frozenset[str] = frozenset()
    conditions: frozenset[str] = field(default_factory=frozenset)


def merge(static: tuple[Finding, ...], dynamic: tuple[Finding, ...], facts: ProbeFacts,
          rules: dict[str, type[Rule]]) -> tuple[Finding, ...]:
    """One list from the static findings and the dynamic ones, by the rules' policy.

    `rules` maps every code that may appear (the registry) to its class."""
    static = tuple(s for s in static if not set(rules[s.rule].void_when) & facts.conditions)
    dynamic = tuple(d for d in dynamic if not set(rules[d.rule].void_when) & facts.conditions)
    merged = list(static)
    kept = []
    for finding in dynamic:
        measured = rules[finding.rule]
        renamed = _renamed(merged, finding, measured)
        if renamed is not None:
            merged = renamed
            continue
        confirmed = {r.code for r in measured.confirms} | {measured.code}
        targets = [i for i, s in enumerate(merged)
                   if s.rule in confirmed and s.layer == finding.layer and s.path == finding.path]
        fresh = [i for i in targets if "confirmed_by" not in merged[i].evidence]
        # Each code keeps its default severity (so --fail-on means the same with or without
        # probes), unless none of the confirmed findings is as severe as the measured leak:
        # then the first one is raised, so a proven leak never reads as a mere warning.
        carried = any(merged[i].severity.rank >= finding.severity.rank for i in fresh)
        for n, i in enumerate(fresh):
            s = merged[i]
            severity = finding.severity if (n == 0 and not carried) else s.severity
            merged[i] = replace(s, kind=("static", "dynamic"), severity=severity,
                                fix=rules[s.rule].confirmed_fix(s, finding),
                                evidence={**s.evidence, **finding.evidence, "confirmed_by": finding.rule})
        if not targets:
            kept.append(finding)
    refuters = {r.code: rule for rule in rules.values() for r in rule.refutes}
    merged = [_weigh(s, facts, dynamic, rules, refuters.get(s.rule)) for s in merged]
    if "values" in facts.covered and not any(rules[s.rule].claims for s in merged
                                             if rules[s.rule].claims != "loss"):
        # the probes measured a leak the static reading did not predict anywhere
        kept = [replace(d, evidence={**d.evidence, "static": "not predicted"})
                if _leak_measure(rules[d.rule]) else d for d in kept]
    return tuple(merged) + tuple(kept)


def _leak_measure(rule: type[Rule]) -> bool:
    """A dynamic rule that measures a change of valid outputs (not of the loss)."""
    return rule.covers is not None and rule.covers != "loss"


def _renamed(merged: list[Finding], finding: Finding, measured: type[Rule]) -> list[Finding] | None:
    """A measured leak at a layer whose semantics the static engine assumed: the static
    rule there names the bug by what it knows (mask arrived? passed on?) and what the
    probe saw. Returns the new list of findings, or None when no rule applies."""
    codes = {r.code: r for r in measured.reclassifies}
    at = [i for i, s in enumerate(merged) if s.layer == finding.layer and s.path == finding.path
          and s.rule in codes and s.evidence.get("assumed_semantics")
          and "confirmed_by" not in s.evidence]
    if not at:
        return None
    assumed = merged[at[0]]
    renamed = codes[assumed.rule].renamed_by_measurement(assumed, finding)
    if renamed is None:
        return None
    rule, values = renamed
    layer, cls = finding.layer, finding.layer_class
    values = {"layer": layer, "layer_class": cls,
              "hint": rule.hint(layer, cls) if hasattr(rule, "hint") else "", **values}
    evidence = {k: v for k, v in assumed.evidence.items() if k not in ("assumed_semantics", "passes_mask")}
    new = Finding(rule=rule.code, name=rule.name, severity=max(rule.severity, finding.severity,
                                                              key=lambda s: s.rank),
                  kind=("static", "dynamic"), layer=layer, layer_class=cls, path=finding.path,
                  message=rule.message.format(**values), fix=rule.fix.format(**values),
                  evidence={**evidence, **finding.evidence, "confirmed_by": finding.rule})
    return [new if i == at[0] else s for i, s in enumerate(merged)]


def _weigh(finding: Finding, facts: ProbeFacts, dynamic: tuple[Finding, ...],
           rules: dict[str, type[Rule]], refuter: type[Rule] | None) -> Finding:
    """A static claim that the probes, covering it fully, could not reproduce.

    The probes disagree with a claim when no measurement of its kind was made at its
    layer (for a loss claim: anywhere), that layer's valid outputs never moved under any
    perturbation, and the probes covered the claim: every padding side it names had its
    padded values perturbed (and, for a claim about the amount of padding, the amount
    changed; for batch statistics, training mode probed; for the loss, padded labels and
    predictions changed). Then a claim resting on a guess is downgraded to info with
    ``refuted_by``; any other keeps its severity, since its reasoning holds whatever
    weights the probes drew, and says why in ``kept_because``."""
    rule = rules[finding.rule]
    if rule.claims is None or "dynamic" in finding.kind:
        return finding
    if rule.claims == "loss":
        return _weigh_loss(finding, rule, facts, dynamic, rules, refuter)
    if (not finding.layer or finding.layer in facts.diverging
            or any(d.layer == finding.layer for d in dynamic if _leak_measure(rules[d.rule]))):
        return finding
    amount = bool(finding.evidence.get("amount_only")) or rule.claims == "amount"
    side = finding.evidence.get("padding")
    claimed = {"post", "pre"} if side in (None, "both") else {side}
    covered = ("values" in facts.covered and claimed <= facts.sides
               and (not amount or "amount" in facts.covered)
               and (rule.claims != "training" or "training" in facts.covered))
    if not covered:
        return finding
    evidence = {**finding.evidence, "dynamic": "not reproduced"}
    if refuter is not None and rule.is_guess(finding, facts.user_code):
        return replace(finding, severity=Severity.INFO, kind=("static", "dynamic"),
                       message=finding.message + " Probes could not make padding change this layer's "
                       "valid outputs, so this suspicion is downgraded to info.",
                       evidence={**evidence, "refuted_by": refuter.code})
    why = rule.kept_because(finding, amount)
    note = " Probes that perturbed padding here could not make it change valid outputs"
    return replace(finding, message=finding.message + note + f"; it is kept because {why}.",
                   evidence={**evidence, "kept_because": why})


def _weigh_loss(finding: Finding, rule: type[Rule], facts: ProbeFacts,
                dynamic: tuple[Finding, ...], rules: dict[str, type[Rule]],
                refuter: type[Rule] | None) -> Finding:
    """A static loss claim about a loss written in user code that the loss probes measured
    and could not move: the static engine cannot read every user loss (one that masks by
    `y_true != 0`, by lengths), so the claim was a guess and becomes info. A built-in
    Keras loss is read exactly, so its finding stands as it is."""
    if ("loss" not in facts.covered or refuter is None
            or any(rules[d.rule].covers == "loss" for d in dynamic)
            or not rule.is_guess(finding, facts.user_code)):
        return finding
    return replace(finding, severity=Severity.INFO, kind=("static", "dynamic"),
                   message=finding.message + " Probes that changed padded labels and the "
                   "predictions at padded steps could not move this loss (it applies its own "
                   "mask), so this suspicion is downgraded to info.",
                   evidence={**finding.evidence, "dynamic": "not reproduced",
                             "refuted_by": refuter.code})
