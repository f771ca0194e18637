"""The one loop of the op-level reader: a traced program, in graph order, through the rules.

Each operation goes through its rule in `rules.AXIS_RULES` (or the
conservative default); each block, a sub-layer the tables know, goes through
its table row, so its own masking is trusted as it is everywhere else.
`states` maps a graph tensor's name to its `State`: seeded with the inputs of
one scenario, filled in as the loop goes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from maskcheck.static.ops.rules import KNOWN_OPS, rule_for
from maskcheck.static.ops.state import CLEAN, DIRTY, OTHER, PRE, Pad, State, merge_flags
from maskcheck.static.ops.trace import shape_of
from maskcheck.static.semantics import CAUSAL, MIXING, REDUCING, effect_on_axis


def run(program: list, states: dict[str, State]) -> None:
    """Run one scenario's dataflow over `program` (see `trace.Trace`), filling `states`."""
    for kind, item in program:
        if kind == "block":
            _block(states, *item)
        elif item.type != "Placeholder":  # the inputs: seeded by the scenario
            _operation(states, item)


def unknown_ops(program: list) -> set[str]:
    """The operation types in `program` the rules do not read (the verdict stays assumed)."""
    return {op.type for kind, op in program if kind == "op" and op.type not in KNOWN_OPS}


def _operation(states: dict[str, State], op: Any) -> None:
    ins = [states.get(t.name, CLEAN) for t in op.inputs]
    result = rule_for(op.type)(op, ins) if ins else CLEAN
    if isinstance(result, State):
        for out in op.outputs:
            states[out.name] = result
    else:  # one state per output
        for out, state in zip(op.outputs, result):
            states[out.name] = state


def _block(states: dict[str, State], sem: Any, ins: list, outs: list, masks: list) -> None:
    """A sub-layer read with its table row `sem`."""
    def get(tensor: Any) -> State:
        return states.get(tensor.name, CLEAN)

    in_states = [get(t) for t in ins]
    masked = any(get(m).mask for m in masks) or any(s.mask for s in in_states)
    data_states = [s for s in in_states if not s.mask]
    flags = merge_flags(in_states)
    tainted = flags["tainted"]
    pads: dict[int, Pad] = {}
    absolute = flags["absolute"]
    for state, tensor in zip(in_states, ins):
        if state.mask:
            continue
        rank = len(shape_of(tensor) or ())
        for axis, pad in state.pads.items():
            effect = effect_on_axis(sem, {}, axis, rank) if sem.known else "pointwise"
            dirty = pad.fill == DIRTY
            if effect in (MIXING, REDUCING) and dirty and not (masked and sem.uses_mask):
                tainted = True
            elif effect == CAUSAL and dirty and pad.side == PRE and not (masked and sem.uses_mask):
                tainted = True
            if getattr(sem, "absolute_positions", False) and pad.side == PRE:
                absolute = True
            if effect != REDUCING:
                pads[axis] = replace(pad, fill=pad.fill if effect == "pointwise" else OTHER)
    for out in outs:
        shape = shape_of(out) or ()
        kept = {a: p for a, p in pads.items() if a < len(shape)}
        states[out.name] = State(kept, tainted, data=any(s.data for s in data_states) or
                                 bool(kept), absolute=absolute,
                                 masked_mean=flags["masked_mean"]
                                 or (getattr(sem, "masked_mean", False) and masked))
        if masked and getattr(out, "_keras_mask", None) is not None:
            mask_state = next((get(m) for m in masks if get(m).mask), None)
            if mask_state is not None:
                states[out._keras_mask.name] = mask_state
