"""The op-level reader's rule table (`maskcheck.static.ops.rules`).

Adding an operation is one line in `AXIS_RULES` (or one name in a kind set)
and one case in `CASES` below: a custom layer whose call uses it, and what
the reader should say about padded axis 1 of its input.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

keras = pytest.importorskip("keras")
from keras import ops  # noqa: E402

from maskcheck.static.ops import read_layer  # noqa: E402
from maskcheck.static.ops.rules import AXIS_RULES, KNOWN_OPS, conservative, rule_for  # noqa: E402
from maskcheck.static.ops.state import DIRTY, OTHER, Pad, State  # noqa: E402


def test_an_operation_the_table_lacks_goes_through_the_conservative_default() -> None:
    assert "NoSuchOp" not in AXIS_RULES
    assert rule_for("NoSuchOp") is conservative
    op = SimpleNamespace(type="NoSuchOp", inputs=[], outputs=[])
    out = conservative(op, [State(pads={1: Pad("post", DIRTY)}, data=True)])
    assert out.unknown and out.data
    assert out.pads[1].fill == OTHER and out.pads[1].side == "post"


def test_every_operation_counted_as_read_has_a_rule() -> None:
    assert KNOWN_OPS <= set(AXIS_RULES)
    assert all(rule_for(kind) is AXIS_RULES[kind] for kind in KNOWN_OPS)


#: name -> (call, kind along axis 1, output axis, flipped, operations left unread)
CASES = {
    "scaled": (lambda x: x * 2.0, "pointwise", 1, False, ()),
    "cumsum": (lambda x: ops.cumsum(x, axis=1), "causal", 1, False, ()),
    "reverse_cumsum": (lambda x: ops.flip(ops.cumsum(ops.flip(x, axis=1), axis=1), axis=1),
                       "anticausal", 1, False, ()),
    "sum_over_time": (lambda x: ops.sum(x, axis=1, keepdims=True), "mixing", None, False, ()),
    "flip": (lambda x: ops.flip(x, axis=1), "pointwise", 1, True, ()),
    "unread_op": (lambda x: ops.erfinv(x), "pointwise", 1, False, ("Erfinv",)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reader_applies_the_rule(name: str) -> None:
    call, kind, out_axis, flipped, unread = CASES[name]

    class Probe(keras.layers.Layer):
        def call(self, x):
            return call(x)

    reading = read_layer(Probe(name=name), [(None, 5, 4)], ["float32"], takes_mask=False,
                         known=lambda layer: None)
    assert not reading.failed
    effect = reading.effect(False, 0, 1)
    assert (effect.kind, effect.out_axis, effect.flipped) == (kind, out_axis, flipped)
    assert reading.unknown_ops == unread
