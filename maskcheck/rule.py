"""The rule base class and the example cases every rule carries.

A rule is a class with a stable code, a kebab-case name, a default severity,
a message and a fix template, and example models as source strings (so that
importing a rule never imports Keras and `--explain` stays instant). The same
examples drive the test suite and the `--explain` text.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from maskcheck.finding import Finding, Severity

if TYPE_CHECKING:  # pragma: no cover
    from maskcheck.dynamic.compare import DynamicFinding
    from maskcheck.static.graph import MaskGraph, Node
    from maskcheck.static.dataflow import MaskFlow

#: The probe programs, in the order the scheduler runs them on each probe batch:
#: "failure" runs only when the forward pass raises on padded batches (and then alone),
#: "inference" is the stacked forward pass with taps, "training" the training-mode
#: batches, "loss" the loss program, "data" the user's own batches (--data only);
#: "generation" runs once per model, not per batch: a causal LM generating for prompts
#: alone and in padded batches (`maskcheck.dynamic.generation`).
PROGRAMS = ("failure", "inference", "training", "loss", "data", "generation")

#: What a static finding can claim and a dynamic check can cover (merge policy): changed
#: padded values move valid outputs ("values"), the amount of padding does ("amount"),
#: batch statistics do in training ("training"), padded labels or steps move the loss ("loss").
CLAIMS = ("values", "amount", "training", "loss")

#: What a rule's finding says goes wrong (`Rule.cause`): padded values reach valid
#: outputs ("values"), padding changes a loss ("loss") or a metric ("metric"), batch
#: statistics carry padding across samples ("training"), a fully padded sample breaks
#: ("empty"), generation depends on the batch ("generation").
CAUSES = ("values", "loss", "metric", "training", "empty", "generation")


@dataclass(frozen=True)
class Valid:
    """A model snippet on which the rule must report nothing.

    The snippet runs with `keras` and `np` in scope and either defines
    `model`, or defines inputs `x` and outputs `y` (then `keras.Model(x, y)`).
    """

    source: str

    @property
    def code(self) -> str:
        return textwrap.dedent(self.source).strip("\n")


@dataclass(frozen=True)
class Invalid:
    """A model snippet on which the rule must report at the layer named `at`."""

    source: str
    at: str

    @property
    def code(self) -> str:
        return textwrap.dedent(self.source).strip("\n")


class Rule:
    """Base class: subclasses set the class attributes and, if static, `check`."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]
    #: "static" rules read the graph; "dynamic" rules need probe runs.
    engine: ClassVar[str] = "static"
    #: other engines that raise the rule too (MC203: "static" reads loss code)
    also: ClassVar[tuple[str, ...]] = ()
    message: ClassVar[str]
    fix: ClassVar[str]
    #: the fix in words for `--explain`, where `fix` is assembled from parts per finding
    fix_explained: ClassVar[str | None] = None
    #: stand-in values that fill `message` (and `fix`) for `--explain`, so it shows the
    #: sentences a user reads about the bad example, not templates; the layer is the
    #: first INVALID example's
    example: ClassVar[dict[str, Any]] = {}
    VALID: ClassVar[tuple[Valid, ...]] = ()
    INVALID: ClassVar[tuple[Invalid, ...]] = ()

    # -- the dynamic check (a rule the probes measure overrides `probe`) ------------
    #: the probe programs `probe` reads (see PROGRAMS); it is called once per program
    programs: ClassVar[tuple[str, ...]] = ()
    #: parts of a program that cost a run unless a check asks for them: "loss-leaks"
    #: (padding that moves the loss), "loss-empty" (the loss of fully padded samples)
    needs: ClassVar[tuple[str, ...]] = ()

    # -- merge policy, applied by `maskcheck.merge` ------------------------------
    #: static rules whose finding a measurement of this rule confirms at the same layer
    #: (a measurement always confirms a static finding of its own rule)
    confirms: ClassVar[tuple[type["Rule"], ...]] = ()
    #: static rules whose finding at an unknown custom layer a measurement of this rule
    #: renames by what the static engine knows there (`renamed_by_measurement`)
    reclassifies: ClassVar[tuple[type["Rule"], ...]] = ()
    #: dynamic: what a run of this check covers (see CLAIMS); a static claim of the same
    #: kind that such a run could not reproduce is weighed against it
    covers: ClassVar[str | None] = None
    #: static: what a finding of this rule claims (see CLAIMS), None for no claim
    claims: ClassVar[str | None] = None
    #: static rules whose finding, when it rests on a guess (`is_guess`), a run of this
    #: check that covered it and measured nothing downgrades to info (``refuted_by``)
    refutes: ClassVar[tuple[type["Rule"], ...]] = ()
    #: facts of the user's data under which the rule does not hold (findings dropped):
    #: "weights_cover_padding", "data_without_empty_sample"
    void_when: ClassVar[tuple[str, ...]] = ()

    # -- grouping, applied by `maskcheck.grouping` ----------------------------------
    #: what goes wrong when this rule fires (see CAUSES); findings of one cause at one
    #: layer, or at a layer nested in it, are reported as one primary and its related
    #: findings. None: never grouped.
    cause: ClassVar[str | None] = None

    @classmethod
    def implemented(cls) -> bool:
        """False while no engine in this release raises the rule yet."""
        return cls.check is not Rule.check or cls.probe is not Rule.probe

    @classmethod
    def summary(cls) -> str:
        """The docstring's first sentence, whole (it may run over several lines)."""
        paragraph = inspect.getdoc(cls).split("\n\n")[0]
        text = " ".join(line.strip() for line in paragraph.splitlines())
        match = re.search(r"\.(\s|$)", text)
        return text[:match.start() + 1] if match else text

    @classmethod
    def example_text(cls, template: str) -> str:
        """`template` filled with the example's values (`example`, the first INVALID
        example's layer): the sentence a user reads about the bad model `--explain` shows."""
        values = {"layer": cls.INVALID[0].at if cls.INVALID else "layer",
                  "layer_class": "Layer", **cls.example}
        return template.format(**values)

    @classmethod
    def explain(cls) -> str:
        """The `--explain` text: docstring, message, fix and the first examples."""
        parts = [
            f"{cls.code} {cls.name} (default severity: {cls.severity.value}, "
            f"engine: {cls.engine}{''.join(' and ' + e for e in cls.also)}"
            f"{'' if cls.implemented() else ', not checked yet in this release'})",
            "",
            inspect.getdoc(cls),
            "",
            "Message (for the bad model below):",
            *_wrapped(cls.example_text(cls.message)),
            "",
            "Fix:",
            *_wrapped(cls.fix_explained or cls.example_text(cls.fix)),
        ]
        if cls.engine == "data":
            parts += ["", "Runs on real data only: maskcheck --data batch.npz (or module:function) "
                      "TARGET, maskcheck.check(model, data=...), or the fit callback "
                      "maskcheck.keras.MaskCheck. In the examples, `data` is the user's batch."]
        if cls.INVALID:
            parts += ["", f"Bad model (reported at layer {cls.INVALID[0].at!r}):",
                      textwrap.indent(cls.INVALID[0].code, "    ")]
        if cls.VALID:
            parts += ["", "Good model:", textwrap.indent(cls.VALID[0].code, "    ")]
        parts += ["", "What counts as padding (token inputs assumed padded with 0, --padded none, "
                  "real data with --data): maskcheck --explain padding"]
        return "\n".join(parts) + "\n"

    @classmethod
    def engines(cls) -> tuple[str, ...]:
        """Every engine that raises the rule, its main one first."""
        return (cls.engine, *cls.also)

    def check(self, graph: "MaskGraph", flow: "MaskFlow") -> Iterator[Finding]:
        """Yield findings for `graph`, given its padded-axis dataflow `flow`.

        The base class knows of none: a rule that does not override this is
        listed and explained but not checked yet (`implemented()` is False).
        """
        return iter(())

    def probe(self, ctx: Any) -> Iterator["DynamicFinding"]:
        """Yield measured results from the probe context `ctx` (a
        `maskcheck.dynamic.schedule.ProbeContext`) for the program `ctx.program`.

        The base class measures nothing; a dynamic rule overrides it and names the
        programs it reads in `programs`."""
        return iter(())

    def result(self, leak: Any, fields: dict | None = None) -> "DynamicFinding":
        """A dynamic result of this rule: the measured Leak and its message fields."""
        from maskcheck.dynamic.compare import DynamicFinding

        return DynamicFinding(self.code, leak, dict(fields or {}))

    def supersedes(self, mine: "DynamicFinding", earlier: "DynamicFinding") -> bool:
        """True when `mine` says the same cause as `earlier` (a result of another rule on
        the same probe batch) better, so `earlier` is dropped."""
        return False

    @classmethod
    def message_values(cls, fields: dict) -> dict:
        """The values a dynamic result's message and fix are filled with (its fields)."""
        return dict(fields)

    @classmethod
    def is_guess(cls, finding: Finding, user_code: frozenset[str]) -> bool:
        """A static finding that rests on a guess, which a measurement that `refutes` the
        rule can downgrade: by default one at an unknown custom layer whose semantics were
        assumed."""
        return bool(finding.layer_class and finding.evidence.get("assumed_semantics"))

    @classmethod
    def kept_because(cls, finding: Finding, amount: bool) -> str:
        """Why a static finding the probes could not reproduce still stands (never a guess)."""
        if amount:
            return ("the padded steps hold values computed from valid steps and weights (biases, "
                    "a carried state), which the probes' untrained weights can make too small "
                    "to measure; trained weights do not")
        return (f"{finding.layer_class or 'this layer'} reads padded positions by construction "
                "(maskcheck knows its semantics); untrained weights can hide the change "
                "from the probes, trained ones do not")

    @classmethod
    def confirmed_fix(cls, finding: Finding, measured: Finding) -> str:
        """The fix of a static finding of this rule once `measured` confirms it: by default
        its own (the static engine knows the cause); a rule takes back advice the
        measurement contradicts (a padding side it shows leaking)."""
        return finding.fix

    @classmethod
    def refine(cls, finding: Finding, graph: "MaskGraph", flow: "MaskFlow") -> Finding:
        """A measured finding of this rule, worded by what the graph knows at its layer: the
        fix for the actual cause (a mask made upstream and dropped, or none to create),
        evidence that exists there. The default keeps it as the probes said it."""
        return finding

    @classmethod
    def renamed_by_measurement(cls, finding: Finding,
                               measured: Finding) -> tuple[type["Rule"], dict] | None:
        """For a rule in a measurement's `reclassifies`: the rule a measured leak at this
        finding's layer makes it, and the values that rule's message takes; None keeps it."""
        return None

    def finding(self, node: "Node", *, evidence: dict | None = None,
                kind: tuple[str, ...] = ("static",), severity: Severity | None = None,
                message: str | None = None, fix: str | None = None,
                **fields: object) -> Finding:
        """Build a finding at `node`, filling the message and fix templates.

        `severity`, `message` and `fix` override the rule's defaults for one
        finding (e.g. an info-level note where semantics were assumed).
        """
        values = {"layer": node.name, "layer_class": node.class_name, **fields}
        return Finding(
            rule=self.code,
            name=self.name,
            severity=severity or self.severity,
            kind=kind,
            layer=node.name,
            layer_class=node.class_name,
            path=node.path,
            message=(message or self.message).format(**values),
            fix=(fix or self.fix).format(**values),
            evidence=evidence or {},
        )


def _wrapped(text: str) -> list[str]:
    """A sentence for `--explain`, indented and wrapped at 88 columns."""
    return textwrap.wrap(text, 88, initial_indent="    ", subsequent_indent="    ",
                         break_long_words=False, break_on_hyphens=False)


def fix_class(node: "Node", fixes: "dict[str, str]") -> str:
    """The class whose fix text applies to `node`: its own, else its nearest Keras base.

    A user's subclass of Conv1D gets Conv1D's advice; a class with no entry
    keeps its own name (the caller then falls back to a default fix).
    """
    if node.class_name in fixes:
        return node.class_name
    return next((base for base in node.bases if base in fixes), node.class_name)
