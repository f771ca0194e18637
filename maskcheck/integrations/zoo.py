"""A zoo of small custom Keras layers, each with a known effect on the time axis.

Used by `maskcheck.strategies.architectures` to draw random models whose bugs
the static engine and the probes can disagree about. Each class says in its
docstring what it does to axis 1 (time) and whether it is safe on padded input
that carries a mask:

* safe whatever the padding side: `PositionwiseDense`, `MaskedTimeCentre`
  (when a mask reaches it), `MaskedTimeSum` (when a mask reaches it);
* safe under post-padding only (causal): `CausalCumsum`;
* leaking (mixes or moves positions and passes the mask on as if it did not):
  `TimeCentre`, `NeighbourSmooth`, `TimeReverse`, `TimeShift`, `TimeHalve`;
* mask bugs without a value leak: `WrongLengthMask` (its mask is one step
  short), `PositionwiseNoMask` (drops the mask);
* pooling that takes the padding mask as an ordinary argument (``pool(h, mask)``,
  ``pool(h, mask=m)``), as public code writes it: `ExplicitMaskPool` multiplies
  by it (safe), `ExplicitMaskMaxPool` pushes padded steps to a large negative
  number (safe), `MaskIgnoringPool` takes it and never uses it (leaks).

Importing this module imports Keras; `maskcheck` itself never imports it.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["CausalCumsum", "TimeCentre", "MaskedTimeCentre", "NeighbourSmooth", "TimeReverse",
           "TimeShift", "TimeHalve", "WrongLengthMask", "PositionwiseDense", "PositionwiseNoMask",
           "MaskedTimeSum", "ExplicitMaskPool", "ExplicitMaskMaxPool", "MaskIgnoringPool",
           "centre_over_time", "double", "ZOO_LAYERS", "describe_architecture"]

_register = keras.saving.register_keras_serializable(package="maskcheck_zoo")


@_register
class CausalCumsum(keras.layers.Layer):
    """Running sum over time, ``y[t] = x[0] + ... + x[t]``, passing the mask on.

    Causal: position t reads only positions <= t, so it is safe under
    post-padding and leaks under pre-padding (padding comes first).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x: Any) -> Any:
        return ops.cumsum(x, axis=1)


@_register
class TimeCentre(keras.layers.Layer):
    """``x - mean(x over time)``, ignoring the mask but passing it on.

    Every position reads every other one, padding included: leaks on both sides.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x: Any) -> Any:
        return x - ops.mean(x, axis=1, keepdims=True)


@_register
class MaskedTimeCentre(keras.layers.Layer):
    """``x - mean(x over the valid steps)``, the mean taken with the mask; passes the mask on.

    Safe on both sides when a mask reaches it; with no mask it averages
    over every step, padding included, and leaks like `TimeCentre`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x: Any, mask: Any = None) -> Any:
        if mask is None:
            return x - ops.mean(x, axis=1, keepdims=True)
        weight = ops.cast(mask, x.dtype)[:, :, None]
        total = ops.sum(x * weight, axis=1, keepdims=True)
        count = ops.maximum(ops.sum(weight, axis=1, keepdims=True), 1.0)
        return x - total / count


@_register
class NeighbourSmooth(keras.layers.Layer):
    """``(x[t-1] + x[t] + x[t+1]) / 3`` (zero beyond the ends), passing the mask on.

    Built from slices and a concatenation: the valid step next to the
    padding reads a padded step, on either side. Leaks on both sides.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x: Any) -> Any:
        zero = ops.zeros_like(x[:, :1])
        before = ops.concatenate([zero, x[:, :-1]], axis=1)
        after = ops.concatenate([x[:, 1:], zero], axis=1)
        return (before + x + after) / 3.0


@_register
class TimeReverse(keras.layers.Layer):
    """Reverses time (``ops.flip(x, axis=1)``) and passes the mask on unchanged.

    The padding moves to the other end while the mask stays put, so the mask
    marks the wrong steps: leaks on both sides (unless nothing is padded).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x: Any) -> Any:
        return ops.flip(x, axis=1)


@_register
class TimeShift(keras.layers.Layer):
    """Shifts time by one step (``ops.roll(x, 1, axis=1)``, the last step wraps to
    the front) and passes the mask on unchanged. Leaks on both sides."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x: Any) -> Any:
        return ops.roll(x, 1, axis=1)


@_register
class TimeHalve(keras.layers.Layer):
    """Keeps every other step (``x[:, ::2]``, length ceil(T/2)) but passes the
    full-length mask on: the mask no longer lines up with its tensor, and
    output step t is input step 2t, padded or not. Leaks on both sides.

    A mask-consuming layer after it raises in Keras, so the strategy only
    draws it last.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x: Any) -> Any:
        return x[:, ::2]


@_register
class WrongLengthMask(keras.layers.Layer):
    """Identity on values; `compute_mask` returns a mask one step short (``mask[:, 1:]``).

    No value moves, but the mask is wrong for the tensor it rides on (a mask
    shape mismatch). The strategy only draws it last.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x: Any) -> Any:
        return x * 1.0

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return None
        return mask[:, 1:]


@_register
class PositionwiseDense(keras.layers.Layer):
    """A Dense layer written by hand: ``x @ W + b`` on the feature axis only,
    passing the mask on. Time steps never meet: safe on both sides."""

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform",
                                      name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="random_normal", name="bias")

    def call(self, x: Any) -> Any:
        return ops.matmul(x, self.kernel) + self.bias

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


@_register
class PositionwiseNoMask(PositionwiseDense):
    """`PositionwiseDense` with ``supports_masking=False``: position-wise (no time
    mixing of its own), but it drops the mask, so layers after it see padding
    as data."""

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.supports_masking = False


@_register
class MaskedTimeSum(keras.layers.Layer):
    """Applies the mask by hand, ``x * cast(mask)[..., None]``, then sums over time:
    (B, T, F) -> (B, F), no mask out. Safe on both sides when a mask reaches it;
    with no mask it sums the padding too and leaks."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x: Any, mask: Any = None) -> Any:
        if mask is not None:
            x = x * ops.cast(mask, x.dtype)[..., None]
        return ops.sum(x, axis=1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None


@_register
class ExplicitMaskPool(keras.layers.Layer):
    """Masked mean over time with the padding mask as its second argument (``call(x,
    padding_mask)``, no Keras mask handling): ``sum(x * m) / max(sum(m), 1)``,
    (B, T, F) -> (B, F). Safe on both sides whatever computes the mask."""

    def call(self, x: Any, padding_mask: Any) -> Any:
        weight = ops.cast(padding_mask, x.dtype)[:, :, None]
        return ops.sum(x * weight, axis=1) / ops.maximum(ops.sum(weight, axis=1), 1.0)


@_register
class ExplicitMaskMaxPool(keras.layers.Layer):
    """Max over the valid steps, the padding mask as its second argument: padded steps are
    pushed to -1e9 first. (B, T, F) -> (B, F); safe on both sides (a fully padded
    sample gives -1e9, not padding)."""

    def call(self, x: Any, padding_mask: Any) -> Any:
        weight = ops.cast(padding_mask, x.dtype)[:, :, None]
        return ops.max(x * weight - (1.0 - weight) * 1e9, axis=1)


@_register
class MaskIgnoringPool(keras.layers.Layer):
    """Takes the padding mask as its second argument and never uses it: a plain mean over
    every step, padding included. (B, T, F) -> (B, F); leaks on both sides."""

    def call(self, x: Any, padding_mask: Any) -> Any:
        return ops.mean(x, axis=1)


def centre_over_time(x: Any) -> Any:
    """For `keras.layers.Lambda`: ``x - mean(x over time)``, ignoring any mask (leaks)."""
    return x - ops.mean(x, axis=1, keepdims=True)


def double(x: Any) -> Any:
    """For `keras.layers.Lambda`: ``2 * x``, element-wise (safe, though a Lambda drops the mask)."""
    return x * 2.0


#: Zoo layers that keep the shape (B, T, F) and take no constructor argument.
ZOO_LAYERS = (CausalCumsum, TimeCentre, MaskedTimeCentre, NeighbourSmooth, TimeReverse, TimeShift)


def describe_architecture(model: Any) -> str:
    """One line naming a model's layers in order, starting with its mask source.

    For a model drawn by `maskcheck.strategies.architectures` this is its recipe
    (``tokens>Embedding(mask_zero) > CausalCumsum > Add[LSTM, identity] >
    Dense(head)``); for any other model, the classes of its operations in graph
    order (Lambdas as ``Lambda[function]``, `keras.ops` calls by class).
    """
    recipe = getattr(model, "maskcheck_architecture", None)
    if isinstance(recipe, str):
        return recipe
    parts = []
    for op in getattr(model, "operations", ()):
        cls = type(op).__name__
        if cls == "InputLayer":
            continue
        if cls == "Lambda":
            cls = f"Lambda[{getattr(getattr(op, 'function', None), '__name__', '?')}]"
        parts.append(cls)
    return " > ".join(parts)
