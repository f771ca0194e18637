"""Hypothesis strategies for property tests of padding and masking.

    from hypothesis import given
    import maskcheck
    from maskcheck.strategies import padded_batches

    @given(batch=padded_batches(model, max_len=8))
    def test_padding_never_leaks(batch):
        x, mask = batch
        maskcheck.assert_padding_invariant(model, x, mask=mask)

A failing property shrinks to the simplest batch: one sample, the smallest
failing length, the shortest padded length, the simplest values. This module
imports Hypothesis and NumPy; `import maskcheck` imports neither.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

__all__ = ["architectures", "lengths", "padded_batches"]

#: Input names that carry a padding mask rather than data (SPEC section 4).
MASK_INPUT_NAMES = ("padding_mask", "attention_mask", "mask")
DEFAULT_MAX_LEN = 8
MAX_DRAWN_BATCH = 4
PADDINGS = ("post", "pre")


def _check_int(name: str, value: Any, *, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        expected = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise InvalidArgument(f"{name}={value!r} must be {expected}")


def lengths(*, max_len: int, min_len: int = 0, batch_size: int | None = None) -> st.SearchStrategy[tuple[int, ...]]:
    """Real lengths of the samples of one padded batch.

    Args:
        max_len: the longest a sample may be (the padded length of the batch
            is at least the longest drawn length).
        min_len: the shortest a sample may be; 0 (the default) includes fully
            padded samples.
        batch_size: number of samples; None draws 1 to 4 samples.

    Returns:
        A strategy of tuples of ints, one per sample, that shrinks towards one
        sample of length `min_len`.

    Raises:
        InvalidArgument: a bound is not a non-negative integer, `min_len >
            max_len`, or `batch_size < 1`.

    Example:
        >>> lengths(max_len=5, batch_size=3).example()
        (2, 5, 0)
    """
    _check_int("max_len", max_len, minimum=0)
    _check_int("min_len", min_len, minimum=0)
    _check_int("batch_size", batch_size, minimum=1, allow_none=True)
    if min_len > max_len:
        raise InvalidArgument(f"min_len={min_len!r} must not exceed max_len={max_len!r}")
    each = st.integers(min_value=int(min_len), max_value=int(max_len))
    if batch_size is None:
        return st.lists(each, min_size=1, max_size=MAX_DRAWN_BATCH).map(tuple)
    return st.lists(each, min_size=int(batch_size), max_size=int(batch_size)).map(tuple)


@dataclass(frozen=True)
class _InputSpec:
    """How to draw one model input."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]  # without the batch axis
    role: str  # "ids", "values", "mask" or "fixed"
    high: int = 0  # ids: exclusive upper bound (an Embedding's input_dim)
    pad_value: float = 0.0


def _layers(model: Any) -> list[Any]:
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=False, recursive=True))
    return list(getattr(model, "layers", ()))


def _inspect(model: Any) -> list[_InputSpec]:
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise InvalidArgument(f"padded_batches needs a built model with declared inputs (keras.Input); "
                              f"{type(model).__name__} {getattr(model, 'name', '')!r} has none. Build it "
                              "as a Functional or Sequential model, or draw inputs with lengths()")
    layers = _layers(model)
    vocab = [int(layer.input_dim) for layer in layers
             if type(layer).__name__ == "Embedding" and hasattr(layer, "input_dim")]
    mask_values = [float(layer.mask_value) for layer in layers
                   if type(layer).__name__ == "Masking" and hasattr(layer, "mask_value")]
    has_mask_zero = any(getattr(layer, "mask_zero", False) for layer in layers)
    specs = []
    for tensor in inputs:
        name = str(getattr(tensor, "name", "input"))
        dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
        shape = tuple(tensor.shape[1:])
        is_int = dtype.startswith(("int", "uint")) or dtype == "bool"
        if len(shape) == 0:
            specs.append(_InputSpec(name, dtype, shape, "fixed", high=2 if is_int else 0))
        elif is_int and (name in MASK_INPUT_NAMES or name.endswith("_mask")):
            specs.append(_InputSpec(name, dtype, shape, "mask"))
        elif is_int:
            high = min(vocab) if vocab else 100
            if high < 2:
                raise InvalidArgument(f"input {name!r} feeds an Embedding with input_dim={high}; "
                                      "ids 1.. need input_dim >= 2")
            specs.append(_InputSpec(name, dtype, shape, "ids", high=high))
        elif shape[0] is None or mask_values or has_mask_zero:
            specs.append(_InputSpec(name, dtype, shape, "values",
                                    pad_value=mask_values[0] if mask_values else 0.0))
        else:
            specs.append(_InputSpec(name, dtype, shape, "fixed"))
    if not any(spec.role in ("ids", "values", "mask") for spec in specs):
        raise InvalidArgument(f"model {getattr(model, 'name', '')!r} has no padded input: no input has a "
                              "variable-length axis 1, token ids or a mask input")
    return specs


def _valid_range(pad_value: float) -> tuple[float, float]:
    """A range of real values that never equals the padding value."""
    low, high = 0.25, 1.0
    if low <= pad_value <= high:
        low, high = -1.0, -0.25
    return low, high


def padded_batches(model: Any, *, batch_size: int | None = None, max_len: int | None = None,
                   min_len: int = 0, padding: str = "post") -> st.SearchStrategy[tuple[Any, np.ndarray]]:
    """Padded batches `(inputs, mask)` that fit a model's inputs.

    Every input with a sequence axis (axis 1) shares one drawn set of lengths:
    token-id inputs get ids in ``[1, input_dim)`` of the model's Embedding at
    real positions and the pad id 0 at padded ones; float inputs get values
    that never equal the padding value (a `Masking` layer's `mask_value`, else
    0.0) at real positions and the padding value at padded ones; inputs named
    ``padding_mask``, ``attention_mask``, ``mask`` or ``*_mask`` get the mask.
    Only axis 1 is padded; other variable axes get one drawn size, unpadded.

    Args:
        model: a built Functional or Sequential Keras model.
        batch_size: number of samples; None draws 1 to 4.
        max_len: the longest padded length; None uses the model's fixed length,
            else 8.
        min_len: the shortest real length (0, the default, includes fully
            padded samples).
        padding: "post" (padding at the end) or "pre" (at the start).

    Returns:
        A strategy of ``(inputs, mask)``: `inputs` an array (one model input)
        or a list of arrays in the order of ``model.inputs``; `mask` a boolean
        ``(batch, time)`` array, True at real positions. It shrinks towards one
        sample of the smallest failing length, padded by as little as fails.

    Raises:
        InvalidArgument: bad arguments, a model without declared inputs, or a
            model with no padded input.

    Example:
        >>> @given(batch=padded_batches(model, max_len=6))
        ... def test_no_leak(batch):
        ...     x, mask = batch
        ...     maskcheck.assert_padding_invariant(model, x, mask=mask)
    """
    _check_int("batch_size", batch_size, minimum=1, allow_none=True)
    _check_int("max_len", max_len, minimum=1, allow_none=True)
    _check_int("min_len", min_len, minimum=0)
    if padding not in PADDINGS:
        raise InvalidArgument(f"padding={padding!r} must be one of {', '.join(PADDINGS)}")
    specs = _inspect(model)
    fixed = {spec.shape[0] for spec in specs if spec.role != "fixed" and spec.shape[0] is not None}
    if len(fixed) > 1:
        raise InvalidArgument(f"padded inputs of model {getattr(model, 'name', '')!r} have different fixed "
                              f"lengths {sorted(fixed)}; padded_batches pads one shared axis")
    fixed_len = fixed.pop() if fixed else None
    if fixed_len is not None and max_len is not None and max_len > fixed_len:
        raise InvalidArgument(f"max_len={max_len} exceeds the model's fixed sequence length {fixed_len}")
    longest = int(max_len if max_len is not None else (fixed_len or DEFAULT_MAX_LEN))
    if min_len > longest:
        raise InvalidArgument(f"min_len={min_len!r} must not exceed max_len={longest!r}")
    return _padded_batches(specs, batch_size, longest, int(min_len), padding, fixed_len)


@st.composite
def _padded_batches(draw: Any, specs: list[_InputSpec], batch_size: int | None, max_len: int,
                    min_len: int, padding: str, fixed_len: int | None) -> tuple[Any, np.ndarray]:
    sizes = draw(lengths(max_len=max_len, min_len=min_len, batch_size=batch_size))
    time = fixed_len if fixed_len is not None else draw(st.integers(max(1, max(sizes)), max(1, max_len)))
    steps = np.arange(time)
    real = np.asarray(sizes)[:, None]
    mask = steps[None, :] < real if padding == "post" else steps[None, :] >= time - real
    other: dict[int, int] = {}  # sizes of further variable axes, shared across inputs

    def concrete(shape: tuple[int | None, ...], start: int) -> tuple[int, ...]:
        dims = []
        for axis, dim in enumerate(shape[start:], start=start):
            if dim is None:
                if axis not in other:
                    other[axis] = draw(st.integers(1, max(1, max_len)))
                dim = other[axis]
            dims.append(int(dim))
        return tuple(dims)

    arrays = []
    for spec in specs:
        if spec.role == "fixed":
            shape = (len(sizes), *concrete(spec.shape, 0))
            if spec.high:
                arrays.append(draw(hnp.arrays(spec.dtype, shape, elements=st.integers(0, spec.high - 1))))
            else:
                arrays.append(draw(hnp.arrays(spec.dtype, shape, elements=st.floats(
                    -1, 1, width=32, allow_nan=False, allow_infinity=False))))
            continue
        rest = concrete(spec.shape, 1)
        full = (len(sizes), time, *rest)
        where = mask.reshape(mask.shape + (1,) * len(rest))
        if spec.role == "mask":
            arrays.append(np.broadcast_to(where, full).astype(spec.dtype))
        elif spec.role == "ids":
            ids = draw(hnp.arrays(spec.dtype, full, elements=st.integers(1, spec.high - 1)))
            arrays.append(np.where(where, ids, 0).astype(spec.dtype))
        else:
            low, high = _valid_range(spec.pad_value)
            values = draw(hnp.arrays(spec.dtype, full, elements=st.floats(
                low, high, width={"float16": 16, "float32": 32}.get(spec.dtype, 64), allow_nan=False,
                allow_infinity=False)))
            arrays.append(np.where(where, values, spec.pad_value).astype(spec.dtype))
    return (arrays[0] if len(arrays) == 1 else arrays), mask


# --- random architectures (for differential tests of the two engines) ---------------------

#: Where the drawn models' padding and mask come from (the first part of `describe_architecture`).
MASK_SOURCES = ("embedding", "masking", "padding_mask_passed", "padding_mask_multiplied", "no_mask")
_ZOO_NAMES = ("CausalCumsum", "TimeCentre", "MaskedTimeCentre", "NeighbourSmooth", "TimeReverse", "TimeShift")


def architectures(*, max_layers: int = 4) -> st.SearchStrategy[Any]:
    """Small random Functional Keras models over a padded time axis (built, not compiled).

    Each model has one padded sequence input, with its time axis declared None
    (or, for a third of the masked ones, a fixed length of 8, so that Flatten can
    end it), and a mask source drawn from `MASK_SOURCES`: int token ids into
    ``Embedding(mask_zero=True)``; floats into ``Masking(0.0)``; floats plus an
    int ``padding_mask`` input, either passed as ``mask=`` to every layer that
    takes one (``attention_mask=`` for attention) or multiplied into the
    features by hand; or floats with no mask at all. Then come 1 to
    `max_layers` layers drawn from the custom layers of `maskcheck.integrations.zoo`,
    Lambdas, raw `keras.ops` calls, Dense, LSTM/GRU (forward, backward or
    Bidirectional), Conv1D (same or causal, kernel 1 or 3), self-attention, a
    masked LSTM or masked attention read by a causal convolution, a running sum
    or a sliding max, and an Add/Concatenate merge of two branches; the last may
    instead end the time axis (global pooling, a masked sum, ``ops.mean``,
    ``ops.sum``, Flatten over a fixed length, a pool that takes the padding mask
    as an ordinary argument, positional or keyword) or break the mask's shape
    (`TimeHalve`, `WrongLengthMask`). A ``Dense(2)`` head ends the model.
    Features are 4 to 8 wide, so one probe takes a fraction of a second.

    The model's name says its mask source (``arch_<source>``);
    `maskcheck.integrations.zoo.describe_architecture` renders it on one line. Importing
    this module does not import Keras: the first draw does.

    Args:
        max_layers: the most layers drawn between the mask source and the head
            (a merge counts as one).

    Returns:
        A strategy of built `keras.Model`s that shrinks towards one layer.

    Raises:
        InvalidArgument: `max_layers` is not an integer >= 1.

    Example:
        >>> @settings(max_examples=50, deadline=None)
        ... @given(model=architectures(max_layers=3))
        ... def test_static_engine_runs(model):
        ...     maskcheck.check(model, mode="static", padding="pre")
    """
    _check_int("max_layers", max_layers, minimum=1)
    return _architectures(int(max_layers))


def _step(terminal: bool, merge: bool = True, fixed: bool = False) -> st.SearchStrategy[tuple[Any, ...]]:
    """One layer of a drawn architecture, as data: (kind, *parameters). `fixed`: the time
    axis has a fixed length (Flatten can end it)."""
    body = [
        st.tuples(st.just("zoo"), st.sampled_from(_ZOO_NAMES)),
        st.tuples(st.just("positionwise"), st.booleans()),  # keeps the mask?
        st.tuples(st.just("lambda"), st.sampled_from(("centre_over_time", "double"))),
        st.tuples(st.just("op"), st.sampled_from(("cumsum", "flip", "centre", "tanh", "affine"))),
        st.tuples(st.just("dense")),
        st.tuples(st.just("rnn"), st.sampled_from(("LSTM", "GRU")),
                  st.sampled_from(("forward", "backward", "bidirectional"))),
        st.tuples(st.just("conv"), st.sampled_from(("same", "causal")), st.sampled_from((1, 3))),
        st.tuples(st.just("attention")),
        # what a masked RNN or masked attention leaves at padded steps, read by a causal
        # convolution, a running sum or a sliding max
        st.tuples(st.just("into"), st.sampled_from(("rnn", "attention")),
                  st.sampled_from(("causal_conv", "cumsum", "sliding_max"))),
    ]
    if merge:
        body.append(st.tuples(st.just("merge"), st.sampled_from(("add", "concatenate")),
                              _step(False, merge=False), st.none() | _step(False, merge=False)))
    if terminal:
        body += [
            st.tuples(st.just("pool"), st.sampled_from(("average", "max"))),
            st.tuples(st.just("masked_sum")),
            st.tuples(st.just("op_mean")),
            st.tuples(st.just("halve")),
            st.tuples(st.just("wrong_mask")),
            st.tuples(st.just("op_sum")),
            # pooling that takes the padding mask as an ordinary argument
            st.tuples(st.just("explicit_pool"), st.sampled_from(("mean", "max", "ignored")),
                      st.sampled_from(("positional", "keyword"))),
        ]
        if fixed:
            body.append(st.tuples(st.just("flatten")))
    return st.one_of(body)


@st.composite
def _architectures(draw: Any, max_layers: int) -> Any:
    from hypothesis import assume

    source = draw(st.sampled_from(MASK_SOURCES), label="mask_source")
    features = draw(st.sampled_from((4, 6, 8)), label="features")
    # a fixed time length (Flatten works; the amount of padding is tied to each length)
    length = draw(st.sampled_from((None, None, 8)), label="length") if source != "no_mask" else None
    count = draw(st.integers(1, max_layers), label="layers")
    steps = [draw(_step(terminal=i == count - 1, fixed=length is not None), label=f"layer {i}")
             for i in range(count)]
    seed = draw(st.integers(0, 2**16 - 1), label="weights seed")
    # Keras's unseeded initializers draw their seeds from Python's global `random`; seed it for
    # the build (reproducible weights) and restore it after, so the strategy leaves it as it was.
    state = random.getstate()
    random.seed(seed)
    try:
        model = _build_architecture(source, features, steps, length)
    except Exception:  # a combination Keras refuses to build: not an example
        model = None
    finally:
        random.setstate(state)
    assume(model is not None)
    # plain str attribute: Keras tracks no state for it; describe_architecture reads it
    model.maskcheck_architecture = _render(source, steps, length)
    return model


_SOURCE_LABELS = {"embedding": "tokens>Embedding(mask_zero)", "masking": "frames>Masking(0.0)",
                  "padding_mask_passed": "features+padding_mask(passed as mask=)",
                  "padding_mask_multiplied": "features*padding_mask(by hand)",
                  "no_mask": "signal(no mask)"}


def _render(source: str, steps: list[tuple[Any, ...]], length: int | None = None) -> str:
    def one(step: tuple[Any, ...] | None) -> str:
        if step is None:
            return "identity"
        kind, *args = step
        if kind == "zoo":
            return str(args[0])
        if kind == "positionwise":
            return "PositionwiseDense" if args[0] else "PositionwiseNoMask"
        if kind == "lambda":
            return f"Lambda[{args[0]}]"
        if kind == "op":
            return f"ops.{args[0]}"
        if kind == "rnn":
            cell, direction = args
            return {"forward": cell, "backward": f"{cell}(go_backwards)",
                    "bidirectional": f"Bidirectional({cell})"}[direction]
        if kind == "conv":
            return f"Conv1D({args[0]},k{args[1]})"
        if kind == "merge":
            return f"{'Add' if args[0] == 'add' else 'Concatenate'}[{one(args[1])}, {one(args[2])}]"
        if kind == "into":
            first = {"rnn": "LSTM", "attention": "MultiHeadAttention"}[args[0]]
            second = {"causal_conv": "Conv1D(causal,k3)", "cumsum": "ops.cumsum",
                      "sliding_max": "MaxPooling1D(2,strides=1,same)"}[args[1]]
            return f"{first} > {second}"
        if kind == "explicit_pool":
            cls = {"mean": "ExplicitMaskPool", "max": "ExplicitMaskMaxPool",
                   "ignored": "MaskIgnoringPool"}[args[0]]
            return f"{cls}(h, mask)" if args[1] == "positional" else f"{cls}(h, padding_mask=mask)"
        return {"dense": "Dense", "attention": "MultiHeadAttention", "masked_sum": "MaskedTimeSum",
                "op_mean": "ops.mean(axis=1)", "halve": "TimeHalve", "wrong_mask": "WrongLengthMask",
                "op_sum": "ops.sum(axis=1)", "flatten": "Flatten",
                "pool": f"Global{str(args[0] if args else '').title()}Pooling1D"}.get(kind, kind)

    label = _SOURCE_LABELS[source] + (f" (fixed length {length})" if length else "")
    return " > ".join([label, *map(one, steps), "Dense(head)"])


def _build_architecture(source: str, features: int, steps: list[tuple[Any, ...]],
                        length: int | None = None) -> Any:
    import inspect

    import keras
    from keras import layers, ops

    from maskcheck.integrations import zoo

    # Non-zero biases, as in a trained model: with Keras's zero biases an untrained layer
    # maps zeroed padding to zeros, which would hide leaks from the probes.
    # (a fresh initializer each time: an unseeded one repeats its values when shared)
    def bias() -> dict[str, Any]:
        return {"bias_initializer": keras.initializers.RandomNormal(stddev=0.5)}

    explicit = None  # the bool mask passed by hand ("padding_mask_passed")
    pool_mask = None  # the mask an explicit-mask pool takes as an ordinary argument
    if source == "embedding":
        tokens = keras.Input((length,), dtype="int32", name="tokens")
        inputs: Any = tokens
        h = layers.Embedding(20, features, mask_zero=True)(tokens)
        pool_mask = ops.not_equal(tokens, 0)
    elif source == "masking":
        frames = keras.Input((length, features), name="frames")
        inputs = frames
        h = layers.Masking(0.0)(frames)
        pool_mask = ops.any(ops.not_equal(frames, 0.0), axis=-1)
    elif source.startswith("padding_mask"):
        values = keras.Input((length, features), name="features")
        padding_mask = keras.Input((length,), dtype="int32", name="padding_mask")
        inputs = {"features": values, "padding_mask": padding_mask}
        pool_mask = padding_mask
        if source == "padding_mask_passed":
            explicit = ops.cast(padding_mask, "bool")
            h = values
        else:
            h = values * ops.cast(padding_mask, "float32")[:, :, None]
    else:
        inputs = h = keras.Input((None, features), name="signal")

    def call(layer: Any, x: Any) -> Any:
        if explicit is not None and "mask" in inspect.signature(layer.call).parameters \
                and not isinstance(layer, layers.Lambda):
            return layer(x, mask=explicit)
        return layer(x)

    def apply(step: tuple[Any, ...], x: Any) -> Any:
        kind, *args = step
        width = int(x.shape[-1])
        if kind == "zoo":
            return call(getattr(zoo, args[0])(), x)
        if kind == "positionwise":
            return call((zoo.PositionwiseDense if args[0] else zoo.PositionwiseNoMask)(width), x)
        if kind == "lambda":
            return layers.Lambda(getattr(zoo, args[0]))(x)
        if kind == "op":
            return {"cumsum": lambda: ops.cumsum(x, axis=1), "flip": lambda: ops.flip(x, axis=1),
                    "centre": lambda: x - ops.mean(x, axis=1, keepdims=True),
                    "tanh": lambda: ops.tanh(x), "affine": lambda: x * 0.5 + 1.0}[args[0]]()
        if kind == "dense":
            return layers.Dense(width, **bias())(x)
        if kind == "rnn":
            cell, direction = args
            rnn = getattr(layers, cell)
            if direction == "bidirectional":
                return call(layers.Bidirectional(rnn(width // 2, return_sequences=True, **bias())), x)
            return call(rnn(width, return_sequences=True, go_backwards=direction == "backward", **bias()), x)
        if kind == "conv":
            return layers.Conv1D(width, args[1], padding=args[0], **bias())(x)
        if kind == "attention":
            attention = layers.MultiHeadAttention(num_heads=2, key_dim=2, **bias())
            if explicit is not None:
                return attention(x, x, attention_mask=explicit[:, None, :])
            return attention(x, x)
        if kind == "into":
            first, second = args
            h = apply(("rnn", "LSTM", "forward") if first == "rnn" else ("attention",), x)
            if second == "causal_conv":
                return layers.Conv1D(int(h.shape[-1]), 3, padding="causal", **bias())(h)
            if second == "cumsum":
                return ops.cumsum(h, axis=1)
            return layers.MaxPooling1D(2, strides=1, padding="same")(h)
        if kind == "merge":
            how, first, second = args
            a = apply(first, x)
            b = x if second is None else apply(second, x)
            return (layers.Add() if how == "add" else layers.Concatenate())([a, b])
        if kind == "pool":
            return call(layers.GlobalAveragePooling1D() if args[0] == "average"
                        else layers.GlobalMaxPooling1D(), x)
        if kind == "masked_sum":
            return call(zoo.MaskedTimeSum(), x)
        if kind == "op_mean":
            return ops.mean(x, axis=1)
        if kind == "halve":
            return zoo.TimeHalve()(x)
        if kind == "wrong_mask":
            return zoo.WrongLengthMask()(x)
        if kind == "op_sum":
            return ops.sum(x, axis=1)
        if kind == "flatten":
            return layers.Flatten()(x)
        if kind == "explicit_pool":
            if pool_mask is None:  # no mask to hand over: a plain mean over every step
                return layers.GlobalAveragePooling1D()(x)
            pool = {"mean": zoo.ExplicitMaskPool, "max": zoo.ExplicitMaskMaxPool,
                    "ignored": zoo.MaskIgnoringPool}[args[0]]()
            return pool(x, pool_mask) if args[1] == "positional" else pool(x, padding_mask=pool_mask)
        raise AssertionError(f"unknown step {step!r}")

    for step in steps:
        h = apply(step, h)
    outputs = layers.Dense(2, name="head", **bias())(h)
    return keras.Model(inputs, outputs, name=f"arch_{source}")
