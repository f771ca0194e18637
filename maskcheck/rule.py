"""The rule base class and the example cases every rule carries.

A rule is a class with a stable code, a kebab-case name, a default severity,
a message and a fix template, and example models as source strings (so that
importing a rule never imports Keras and `--explain` stays instant). The same
examples drive the test suite and the `--explain` text.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Iterator

from maskcheck.finding import Finding, Severity

if TYPE_CHECKING:  # pragma: no cover
    from maskcheck.static.graph import MaskGraph, Node
    from maskcheck.static.dataflow import MaskFlow


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
    VALID: ClassVar[tuple[Valid, ...]] = ()
    INVALID: ClassVar[tuple[Invalid, ...]] = ()

    @classmethod
    def implemented(cls) -> bool:
        """False while no engine in this release raises the rule yet."""
        return cls.check is not Rule.check

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring."""
        return inspect.getdoc(cls).splitlines()[0]

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
            "Message:",
            "    " + cls.message,
            "",
            "Fix:",
            "    " + cls.fix,
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


def fix_class(node: "Node", fixes: "dict[str, str]") -> str:
    """The class whose fix text applies to `node`: its own, else its nearest Keras base.

    A user's subclass of Conv1D gets Conv1D's advice; a class with no entry
    keeps its own name (the caller then falls back to a default fix).
    """
    if node.class_name in fixes:
        return node.class_name
    return next((base for base in node.bases if base in fixes), node.class_name)
