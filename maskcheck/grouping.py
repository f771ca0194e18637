"""Findings that share one cause, folded under one primary finding: a pure function.

A leak usually shows in several places at once. A Conv1D that drops the mask is
both "mixes padding" (MC102) and "drops the mask" (MC101); a `Bidirectional`
LSTM without a mask is a static finding at the wrapper and a measured leak at
its forward and backward layers. Reporting each as its own line makes one bug
read as four. `group` keeps one primary finding per cause and puts the others
in its `related` (SPEC 5).

The policy is data on the rule classes: `Rule.cause` names what goes wrong
("values" reach valid outputs, a "loss" counts padding, "training" statistics
mix samples, ...); a rule without one is never grouped. Two findings share a
cause when their rules name the same cause and they sit at the same layer, or
one's layer is nested in the other's (a wrapper and the layers it wraps). A
finding at the model itself (a path of one name) groups only with findings at
the model itself: every layer is nested in the model, and that says nothing.

Decisions:

* The primary is the most severe finding; among equals, one the static engine
  explains (it says why, and users filter on its code) before a measurement
  alone, then the enclosing layer before the layers inside it.
* Each finding joins the first group, in that order, whose primary it shares a
  cause with: groups never chain, so two culprits inside one wrapper stay two
  findings even when a measurement at the wrapper relates to both.
* The relation is symmetric in layers, so the order of the input never matters:
  the same findings give the same groups.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

from maskcheck.finding import Finding
from maskcheck.rule import Rule


def priority(finding: Finding) -> tuple:
    """Lower sorts first: the finding that best stands for its group."""
    return (-finding.severity.rank, 0 if "static" in finding.kind else 1, len(finding.path),
            finding.rule, finding.path, finding.message)


def nested(inner: tuple[str, ...], outer: tuple[str, ...]) -> bool:
    """`inner` is `outer`'s layer or a layer inside it (never through the model alone)."""
    if inner == outer:
        return True
    return len(outer) >= 2 and inner[:len(outer)] == outer


def shares_cause(a: Finding, b: Finding, rules: Mapping[str, type[Rule]]) -> bool:
    """Same declared cause, at one layer or a layer and one nested inside it."""
    cause_a = getattr(rules.get(a.rule), "cause", None)
    cause_b = getattr(rules.get(b.rule), "cause", None)
    if cause_a is None or cause_a != cause_b:
        return False
    return nested(a.path, b.path) or nested(b.path, a.path)


def group(findings: tuple[Finding, ...], rules: Mapping[str, type[Rule]]) -> tuple[Finding, ...]:
    """The primaries, each carrying the findings of its cause in `related` (priority order).

    `rules` maps codes to rule classes (the registry). Findings that already carry
    related findings keep them; a grouped input gives the same output."""
    primaries: list[Finding] = []
    members: list[list[Finding]] = []
    for finding in sorted(findings, key=priority):
        for number, primary in enumerate(primaries):
            if shares_cause(finding, primary, rules):
                members[number].append(replace(finding, related=()))
                members[number].extend(finding.related)
                break
        else:
            primaries.append(finding)
            members.append(list(finding.related))
    return tuple(replace(p, related=tuple(sorted(m, key=priority)))
                 for p, m in zip(primaries, members))
