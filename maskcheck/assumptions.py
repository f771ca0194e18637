"""The words a finding carries when it rests on a padding convention (SPEC 4 item 6).

Standard library only, so the engine (which appends the clause to each such
finding's message) and the text reporter (which takes it off again and says the
assumption once per model) share one wording without the reporter importing the
engine, Keras or TensorFlow.
"""

from __future__ import annotations

from typing import Mapping

#: What to do when the convention is wrong, the same in a message and in a note.
_WAY_OUT = "if it is never padded, pass --padded none (padded = [] in [tool.maskcheck])."


def assumed_clause(assumed: Mapping[str, str]) -> str:
    """The sentence every finding that rests on a padding convention ends with.

    Args:
        assumed: input name -> what it is taken to hold (``evidence["assumed"]``).
    """
    return f" This assumes {_inputs_hold(assumed)}; {_WAY_OUT}"


def assumption_note(assumed: Mapping[str, str], subject: str = "findings below") -> str:
    """The same assumption said once for several findings: ``"<subject> assume input ..."``."""
    return f"{subject} assume {_inputs_hold(assumed)}; {_WAY_OUT}"


def _inputs_hold(assumed: Mapping[str, str]) -> str:
    names = ", ".join(repr(name) for name in assumed)
    what = next(iter(assumed.values()))
    return f"input {names} holds {what}"
