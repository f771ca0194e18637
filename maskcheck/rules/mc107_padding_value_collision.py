from __future__ import annotations

from typing import Iterator

from maskcheck.finding import Finding, Severity
from maskcheck.rule import Invalid, Rule, Valid

#: Ops and layers that pass ids or values through unchanged in value.
_TRANSPARENT = frozenset({"Cast", "Identity", "ConvertToTensor", "StopGradient", "Squeeze",
                          "ExpandDims", "Reshape", "Activation"})
_LOOKUPS = frozenset({"IntegerLookup", "StringLookup"})


class PaddingValueCollision(Rule):
    """The padding value is also a real value, so real data gets masked as padding.

    Why is this bad?
        `Embedding(mask_zero=True)` fed by an IntegerLookup or StringLookup
        with `mask_token=None` (index 0 is then the OOV token or a real word),
        or by Hashing without `mask_value` (bin 0 is a real bucket), hides real
        positions from every mask-aware layer. `Masking(mask_value=v)` placed
        after a layer that computes values (ReLU outputs exact zeros, Dense
        can output anything) masks real positions whenever they happen to
        equal v. The data are not known statically, so a Masking layer applied
        directly to a model input is not reported here; pass `--data` to
        check real batches.
    """

    code = "MC107"
    #: stand-in values that fill the message and fix for `--explain` (the bad example's)
    example = {"layer_class": "Embedding", "value": 0, "reason": "index 0 is the OOV index of 'integer_lookup' (it has mask_token=None)"}
    fix_explained = ("Reserve a padding value that real data never take: mask_token=0 on an "
                     "IntegerLookup (mask_token='' on a StringLookup), a mask_value on "
                     "Hashing, or Masking on the raw padded input instead of after a layer "
                     "that computes values.")
    name = "padding-value-collision"
    severity = Severity.WARNING
    message = "Layer {layer!r} ({layer_class}) treats {value!r} as padding, but {reason}."
    fix = "Reserve a padding value that real data never take: {hint}."

    VALID = (Valid("""
        x = keras.Input((None,), dtype="int64")
        ids = keras.layers.IntegerLookup(vocabulary=[7, 8, 9], mask_token=0)(x)
        y = keras.layers.Embedding(5, 4, mask_zero=True)(ids)
    """), Valid("""
        x = keras.Input((None, 4))
        h = keras.layers.Masking(mask_value=0.0)(x)
        y = keras.layers.LSTM(4)(h)
    """))
    INVALID = (Invalid("""
        x = keras.Input((None,), dtype="int64")
        ids = keras.layers.IntegerLookup(vocabulary=[7, 8, 9], mask_token=None)(x)
        y = keras.layers.Embedding(5, 4, mask_zero=True, name="emb")(ids)
    """, at="emb"), Invalid("""
        x = keras.Input((None, 4))
        h = keras.layers.Dense(8, activation="relu")(x)
        h = keras.layers.Masking(mask_value=0.0, name="masking")(h)
        y = keras.layers.LSTM(4)(h)
    """, at="masking"))

    def check(self, graph, flow) -> Iterator[Finding]:
        for node in graph.nodes:
            if node.is_op or not node.inputs:
                continue
            if node.class_name in ("Embedding", "ReversibleEmbedding") or "Embedding" in node.bases:
                if not node.config.get("mask_zero"):
                    continue
                source = _upstream(graph, node.inputs[0])
                reason = _id_zero_is_real(source) if source is not None else None
                if reason:
                    yield self.finding(node, value=0, reason=reason.format(src=source.name),
                                       hint=_lookup_fix(source),
                                       evidence={"lookup": source.name})
            elif node.class_name == "Masking" or "Masking" in node.bases:
                source = _upstream(graph, node.inputs[0])
                if source is None or source.is_input:
                    continue
                value = node.config.get("mask_value", 0.0)
                yield self.finding(
                    node, value=value,
                    reason=(f"its input is computed by {source.name!r} ({source.class_name}), "
                            f"whose outputs can equal {value!r} at real positions"),
                    hint=(f"apply Masking to the raw padded input instead of after "
                          f"{source.name!r}, or carry an explicit mask"),
                    evidence={"mask_value": value, "input_from": source.name})


def _upstream(graph, tid: int):
    """The node that computes `tid`, looking through value-preserving ops."""
    seen = 0
    while seen < 50:
        seen += 1
        producer = graph.tensors[tid].producer
        if producer is None:
            return None
        node = graph.nodes[producer]
        if node.class_name in _TRANSPARENT and node.inputs and (
                node.class_name != "Activation" or node.config.get("activation") == "linear"):
            tid = node.inputs[0]
            continue
        return node
    return None


def _id_zero_is_real(node) -> str | None:
    config = node.config
    if node.class_name in _LOOKUPS or any(b in _LOOKUPS for b in node.bases):
        if config.get("invert") or config.get("output_mode", "int") != "int":
            return None
        if config.get("mask_token") is not None:
            return None
        if config.get("num_oov_indices", 1):
            return "index 0 is the OOV index of {src!r} (it has mask_token=None)"
        return "index 0 is the first vocabulary entry of {src!r} (it has mask_token=None)"
    if node.class_name == "Hashing" and config.get("mask_value") is None:
        return "bin 0 of {src!r} is a real hash bucket (it has no mask_value)"
    if node.class_name == "Discretization":
        return "bucket 0 of {src!r} holds real values below its first boundary"
    return None


def _lookup_fix(node) -> str:
    if node.class_name == "StringLookup":
        return f"give {node.name!r} mask_token='' so index 0 is reserved for padding"
    if node.class_name == "IntegerLookup":
        return f"give {node.name!r} mask_token=0 so index 0 is reserved for padding"
    if node.class_name == "Hashing":
        return f"give {node.name!r} a mask_value so bin 0 is reserved for padding"
    return f"shift the ids of {node.name!r} by one so that 0 is reserved for padding"
