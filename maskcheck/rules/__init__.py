"""The rule registry: every rule module in this package, in code order.

A rule is one module here named after its code (``mc301_padding_leak.py``)
that defines one `Rule` subclass; for a dynamic rule, its check (`probe`) and
its merge policy live in that class too. Adding a rule is adding its module:
the registry is read from the package's module names (no metaclass magic, no
central list to edit), so `--list-rules`, the scheduler and the tests see
exactly the modules present. Importing the registry never imports Keras.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

from maskcheck.rule import Rule


def _discover() -> tuple[type[Rule], ...]:
    """The Rule subclass each ``mcNNN_*`` module of this package defines, by code."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if not re.fullmatch(r"mc\d{3}_\w+", info.name):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        own = [value for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, Rule) and value is not Rule
               and value.__module__ == module.__name__]
        if len(own) != 1:
            raise ImportError(f"rule module {module.__name__} must define exactly one Rule "
                              f"subclass, found {len(own)}")
        found.append(own[0])
    return tuple(sorted(found, key=lambda rule: rule.code))


ALL_RULES: tuple[type[Rule], ...] = _discover()

RULES_BY_CODE = {rule.code: rule for rule in ALL_RULES}
RULES_BY_NAME = {rule.name: rule for rule in ALL_RULES}


class UnknownRuleError(ValueError):
    """A --select/--ignore entry names no rule code, prefix or name."""


def resolve_selection(entries: tuple[str, ...] | list[str]) -> frozenset[str]:
    """Turn codes, code prefixes (``MC1``) and rule names into a set of codes.

    Raises:
        UnknownRuleError: an entry matches no rule.
    """
    codes: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        if entry in RULES_BY_NAME:
            codes.add(RULES_BY_NAME[entry].code)
            continue
        matched = {code for code in RULES_BY_CODE if code.startswith(entry.upper())}
        if not matched or not entry.upper().startswith("MC"):
            known = ", ".join(RULES_BY_CODE)
            raise UnknownRuleError(f"unknown rule {entry!r}: expected a code ({known}), a prefix such as MC1, or a rule name")
        codes |= matched
    return frozenset(codes)


def selected_rules(select: frozenset[str] | None, ignore: frozenset[str]) -> tuple[type[Rule], ...]:
    """The rules left after `select` (None means all) and `ignore`."""
    return tuple(r for r in ALL_RULES
                 if (select is None or r.code in select) and r.code not in ignore)
