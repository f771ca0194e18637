"""What each layer class (and keras.ops operation) does to padded axes and masks.

The rows live in two tables, each measured against its own library:

* `keras`: `KERAS_TABLE` (every class `keras.layers` exports; `NOT_APPLICABLE`
  lists those that never see a padded tensor) and `OPS_TABLE` (keras.ops
  operations), measured by `tests/test_semantics.py`;
* `keras_hub`: `HUB_TABLE` (keras-hub's layers), measured by
  `tests/test_hub_semantics.py`.

`base` holds the row type (`LayerSemantics`) and what a row says about one
axis. This package merges the two layer tables once, into `TABLE`, and
refines a row by the layer's config (`semantics_for`). A class missing from
both is handled as unknown. Nothing here imports keras or keras_hub: the
static path stays light.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Mapping

from maskcheck.static.semantics.base import (ALL, ANTICAUSAL, AXIS, CAUSAL, LAST, MIXING, NONE,
                                             POINTWISE, REDUCING, SPATIAL, TIME, LayerSemantics,
                                             acted_axes, effect_on_axis, rows)
from maskcheck.static.semantics.keras import KERAS_TABLE, NOT_APPLICABLE, OPS_TABLE
from maskcheck.static.semantics.keras_hub import HUB_TABLE

__all__ = [
    "ALL", "ANTICAUSAL", "AXIS", "CAUSAL", "HUB_TABLE", "KERAS_TABLE", "LAST", "MIXING", "NONE",
    "NOT_APPLICABLE", "OPS_TABLE", "POINTWISE", "REDUCING", "SPATIAL", "TABLE", "TIME",
    "LayerSemantics", "acted_axes", "effect_on_axis", "is_known", "lookup", "rows",
    "semantics_for",
]

#: Every layer class maskcheck knows, Keras's and keras-hub's, keyed by class name.
TABLE: Mapping[str, LayerSemantics] = {**KERAS_TABLE, **HUB_TABLE}

_UNKNOWN = LayerSemantics(POINTWISE, NONE, known=False)
_DENSE_ONTO_VOCABULARY = LayerSemantics(POINTWISE, NONE, mixes_features=True)
_RNN_CLASSES = frozenset({"RNN", "LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D",
                          "ConvLSTM3D"})
_STRIDED = frozenset({"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
                      "SeparableConv1D", "SeparableConv2D"})


def is_known(class_name: str, *, is_op: bool = False) -> bool:
    """Whether the table has a row for this class (by its own name)."""
    return class_name in (OPS_TABLE if is_op else TABLE)


def lookup(class_name: str, bases: Iterable[str] = (), *, is_op: bool = False) -> LayerSemantics:
    """The table row for a class, else for its nearest known base, else unknown."""
    table = OPS_TABLE if is_op else TABLE
    for name in (class_name, *bases):
        if name in table:
            return table[name]
    return _UNKNOWN


def semantics_for(class_name: str, config: Mapping[str, object], *, is_op: bool = False,
                  bases: Iterable[str] = ()) -> LayerSemantics:
    """The semantics of one call, refined by the layer's config."""
    base = lookup(class_name, bases, is_op=is_op)
    if is_op or not base.known:
        return base
    name = class_name if class_name in TABLE else next((b for b in bases if b in TABLE), class_name)
    if name == "ReversibleEmbedding" and config.get("call:reverse"):
        return _DENSE_ONTO_VOCABULARY  # logits: no mask generated, none passed on
    if name in ("Embedding", "ReversibleEmbedding", "TokenAndPositionEmbedding"):
        mask_zero = bool(config.get("mask_zero"))
        return replace(base, generates=mask_zero, mask_at_runtime=base.mask_at_runtime and mask_zero)
    if name in _WINDOWED and _forward_pair(config):
        # a window of 2 with "same" padding and stride 1: TensorFlow pads after the end,
        # so step t reads steps t and t + 1 only
        return replace(base, along=ANTICAUSAL, changes_length=False)
    if name in _STRIDED:
        if _is_pointwise_kernel(config):  # k=1: causal or not, each step on its own
            return replace(base, along=POINTWISE)
        if config.get("padding") == "causal":
            return replace(base, along=CAUSAL)
        if config.get("padding") == "valid" or _any_above_one(config.get("strides")):
            return replace(base, changes_length=True)
    if name in _RNN_CLASSES:
        if not config.get("return_sequences", False):
            return replace(base, along=REDUCING, propagates=False)
        if config.get("go_backwards", False):
            return replace(base, along=MIXING, reverses=True)
    if name == "Bidirectional" and not config.get("return_sequences", False):
        return replace(base, along=REDUCING, propagates=False)
    if name == "TimeDistributed" and config.get("inner") in ("Embedding", "ReversibleEmbedding"):
        return replace(base, propagates=False)  # Keras 3.15 attaches no mask here
    if name in ("MultiHeadAttention", "GroupedQueryAttention", "CachedMultiHeadAttention",
                "TransformerDecoder") and config.get("call:use_causal_mask"):
        return replace(base, along=CAUSAL)
    if name in ("TransformerDecoder", "BloomDecoder") and config.get("call:use_causal_mask") is False:
        return replace(base, along=MIXING)  # causal by default, unless told otherwise
    return base


#: layers that read a window along their spatial axes
_WINDOWED = _STRIDED | frozenset({"MaxPooling1D", "AveragePooling1D", "MaxPooling2D",
                                  "AveragePooling2D", "MaxPooling3D", "AveragePooling3D"})


def _forward_pair(config: Mapping[str, object]) -> bool:
    """A window of 2 (no dilation) with "same" padding and stride 1 on every spatial axis."""
    window = config.get("kernel_size", config.get("pool_size"))
    sizes = window if isinstance(window, (list, tuple)) else (window,)
    dilation = config.get("dilation_rate", 1)
    dilations = dilation if isinstance(dilation, (list, tuple)) else (dilation,)
    strides = config.get("strides", 1)
    strides = strides if isinstance(strides, (list, tuple)) else (strides,)
    return (config.get("padding") == "same" and bool(sizes) and all(k == 2 for k in sizes)
            and all(d in (1, None) for d in dilations) and all(t in (1, None) for t in strides))


def _any_above_one(value: object) -> bool:
    values = value if isinstance(value, (list, tuple)) else (value,)
    return any(isinstance(v, int) and v > 1 for v in values)


def _is_pointwise_kernel(config: Mapping[str, object]) -> bool:
    """A 1x1 convolution with stride 1 mixes nothing along its spatial axes."""
    kernel = config.get("kernel_size")
    if kernel is None:
        return False
    kernels = kernel if isinstance(kernel, (list, tuple)) else (kernel,)
    return all(k == 1 for k in kernels) and not _any_above_one(config.get("strides", 1))
