"""The semantics table, checked against Keras itself.

For every built-in layer that can run on a padded sequence (and the image
layers that run on padded images), build it after a mask generator and
compare the table with (a) the mask Keras actually attaches and (b) the
mixing measured by perturbing only the padded positions, with and without
the mask, under post- and pre-padding. A meta-test keeps the table complete
for every class that `keras.layers` exports.

Not measured numerically: random augmentation layers (different output on
every call), audio front ends and text preprocessing (no padded float
sequence input), 3-D volume layers (same code paths as their 2-D rows), and
layers that move positions (UpSampling, ZeroPadding, Cropping, Permute), for
which only the mask column is compared.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
from keras import layers
from keras.src.backend.common.masking import set_keras_mask

from maskcheck.static.adapter import adapt_model
from maskcheck.static.semantics import (CAUSAL, NOT_APPLICABLE, OPS_TABLE, POINTWISE, TABLE,
                                 effect_on_axis, semantics_for)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

T, F, LENGTH = 8, 4, 5  # sample 0 holds LENGTH valid steps out of T


def test_every_exported_layer_class_is_in_the_table() -> None:
    exported = {getattr(layers, n).__name__ for n in dir(layers)
                if inspect.isclass(getattr(layers, n))}
    missing = sorted(exported - set(TABLE) - set(NOT_APPLICABLE))
    assert not missing, f"add these keras.layers classes to semantics.TABLE or NOT_APPLICABLE: {missing}"
    assert not set(TABLE) & set(NOT_APPLICABLE)


def test_python_operator_nodes_are_in_the_ops_table() -> None:
    x = keras.Input((None, F))
    y = keras.ops.cumsum(-(x * 2.0 + 1.0) / 3.0, axis=1)
    graph = adapt_model(keras.Model(x, keras.ops.mean(y, axis=1)))
    ops = [n.class_name for n in graph.nodes if n.is_op]
    assert ops and all(name in OPS_TABLE for name in ops), ops


def _seq(factory):
    return ("seq", factory, lambda layer, h: layer(h))


def _pair(factory):
    return ("seq", factory, lambda layer, h: layer([h, h]))


def _attention(factory):
    return ("seq", factory, lambda layer, h: layer(h, h))


#: id -> (input kind, layer factory, how to call it on one tensor)
SEQUENCE_LAYERS = {
    "Activation": _seq(lambda: layers.Activation("tanh")),
    "ActivityRegularization": _seq(lambda: layers.ActivityRegularization()),
    "AlphaDropout": _seq(lambda: layers.AlphaDropout(0.2)),
    "Dropout": _seq(lambda: layers.Dropout(0.2)),
    "GaussianDropout": _seq(lambda: layers.GaussianDropout(0.2)),
    "GaussianNoise": _seq(lambda: layers.GaussianNoise(0.2)),
    "SpatialDropout1D": _seq(lambda: layers.SpatialDropout1D(0.2)),
    "ELU": _seq(lambda: layers.ELU()),
    "LeakyReLU": _seq(lambda: layers.LeakyReLU()),
    "PReLU": _seq(lambda: layers.PReLU(shared_axes=[1])),
    "ReLU": _seq(lambda: layers.ReLU()),
    "Identity": _seq(lambda: layers.Identity()),
    "Rescaling": _seq(lambda: layers.Rescaling(0.5)),
    "Normalization": _seq(lambda: layers.Normalization(mean=0.0, variance=1.0)),
    "Dense": _seq(lambda: layers.Dense(3)),
    "EinsumDense": _seq(lambda: layers.EinsumDense("abc,cd->abd", (None, 3))),
    "LayerNormalization": _seq(lambda: layers.LayerNormalization()),
    "UnitNormalization": _seq(lambda: layers.UnitNormalization()),
    "RMSNormalization": _seq(lambda: layers.RMSNormalization()),
    "SpectralNormalization": _seq(lambda: layers.SpectralNormalization(layers.Dense(3))),
    "Conv1D": _seq(lambda: layers.Conv1D(3, 3, padding="same")),
    "Conv1D-causal": _seq(lambda: layers.Conv1D(3, 3, padding="causal")),
    "Conv1D-kernel1": _seq(lambda: layers.Conv1D(3, 1)),
    "Conv1DTranspose": _seq(lambda: layers.Conv1DTranspose(3, 3, padding="same")),
    "DepthwiseConv1D": _seq(lambda: layers.DepthwiseConv1D(3, padding="same")),
    "SeparableConv1D": _seq(lambda: layers.SeparableConv1D(3, 3, padding="same")),
    "MaxPooling1D": _seq(lambda: layers.MaxPooling1D(3, strides=1, padding="same")),
    "AveragePooling1D": _seq(lambda: layers.AveragePooling1D(3, strides=1, padding="same")),
    "AdaptiveAveragePooling1D": _seq(lambda: layers.AdaptiveAveragePooling1D(2)),
    "AdaptiveMaxPooling1D": _seq(lambda: layers.AdaptiveMaxPooling1D(2)),
    "GlobalAveragePooling1D": _seq(lambda: layers.GlobalAveragePooling1D()),
    "GlobalMaxPooling1D": _seq(lambda: layers.GlobalMaxPooling1D()),
    "Flatten": ("fixed", lambda: layers.Flatten(), lambda layer, h: layer(h)),
    "Reshape": ("fixed", lambda: layers.Reshape((-1,)), lambda layer, h: layer(h)),
    "LSTM": _seq(lambda: layers.LSTM(3, return_sequences=True)),
    "LSTM-last": _seq(lambda: layers.LSTM(3)),
    "LSTM-backwards": _seq(lambda: layers.LSTM(3, return_sequences=True, go_backwards=True)),
    "GRU": _seq(lambda: layers.GRU(3, return_sequences=True)),
    "SimpleRNN": _seq(lambda: layers.SimpleRNN(3, return_sequences=True)),
    "RNN": _seq(lambda: layers.RNN(layers.GRUCell(3), return_sequences=True)),
    "Bidirectional": _seq(lambda: layers.Bidirectional(layers.GRU(3, return_sequences=True))),
    "TimeDistributed": _seq(lambda: layers.TimeDistributed(layers.Dense(3))),
    "MultiHeadAttention": _attention(lambda: layers.MultiHeadAttention(2, 2)),
    "GroupedQueryAttention": _attention(lambda: layers.GroupQueryAttention(2, 2, 1)),
    "Attention": _pair(lambda: layers.Attention()),
    "AdditiveAttention": _pair(lambda: layers.AdditiveAttention()),
    "Add": _pair(lambda: layers.Add()),
    "Subtract": _pair(lambda: layers.Subtract()),
    "Multiply": _pair(lambda: layers.Multiply()),
    "Average": _pair(lambda: layers.Average()),
    "Maximum": _pair(lambda: layers.Maximum()),
    "Minimum": _pair(lambda: layers.Minimum()),
    "Concatenate": _pair(lambda: layers.Concatenate()),
    "Masking": _seq(lambda: layers.Masking(mask_value=-99.0)),
    "BatchNormalization": _seq(lambda: layers.BatchNormalization()),
    "GroupNormalization": _seq(lambda: layers.GroupNormalization(groups=2)),
    "Softmax": _seq(lambda: layers.Softmax()),
    "ConvLSTM1D": ("conv_lstm", lambda: layers.ConvLSTM1D(2, 3, padding="same",
                                                            return_sequences=True),
                   lambda layer, h: layer(h)),
}

IMAGE_LAYERS = {
    "Conv2D": lambda: layers.Conv2D(2, 3, padding="same"),
    "DepthwiseConv2D": lambda: layers.DepthwiseConv2D(3, padding="same"),
    "SeparableConv2D": lambda: layers.SeparableConv2D(2, 3, padding="same"),
    "MaxPooling2D": lambda: layers.MaxPooling2D(3, strides=1, padding="same"),
    "AveragePooling2D": lambda: layers.AveragePooling2D(3, strides=1, padding="same"),
    "GlobalAveragePooling2D": lambda: layers.GlobalAveragePooling2D(),
    "GlobalMaxPooling2D": lambda: layers.GlobalMaxPooling2D(),
    "Conv2D-kernel1": lambda: layers.Conv2D(2, 1),
    "Dense": lambda: layers.Dense(2),
    "SpatialDropout2D": lambda: layers.SpatialDropout2D(0.2),
}


def _shape(kind: str) -> tuple[int, ...]:
    return {"seq": (T, F), "fixed": (T, F), "conv_lstm": (T, 3, 2)}[kind]


def _semantics(model, layer):
    graph = adapt_model(model)
    node = next(n for n in graph.nodes if n.name == layer.name)
    return node, semantics_for(node.class_name, node.config, bases=node.bases)


def _valid_diff(layer, call, x, perturbed, mask, *, with_mask: bool, training: bool) -> float:
    """Largest change of sample 0's valid outputs when only its padding changes."""
    outs = []
    for data in (x, perturbed):
        tensor = keras.ops.convert_to_tensor(data)
        if with_mask:
            set_keras_mask(tensor, keras.ops.convert_to_tensor(mask))
        outs.append(np.asarray(layer(tensor, training=True) if training else call(layer, tensor)))
    a, b = outs[0][0], outs[1][0]
    if a.ndim >= 1 and a.shape[0] == T:
        a, b = a[mask[0]], b[mask[0]]
    return float(np.max(np.abs(a - b)))


def _batches(shape: tuple[int, ...], side: str):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, *shape)).astype("float32")
    mask = np.ones((2, T), bool)
    padded = slice(LENGTH, T) if side == "post" else slice(0, T - LENGTH)
    mask[0, padded] = False
    x[0, padded] = 0.0
    perturbed = x.copy()
    perturbed[0, padded] = rng.normal(size=perturbed[0, padded].shape) * 3.0 + 1.0
    return x, perturbed, mask


def _predicted_leak(sem, config, rank: int, *, masked: bool, side: str) -> bool:
    if masked and sem.uses_mask:
        return False
    if sem.batch_stats or sem.sample_stats:
        return True
    effect = effect_on_axis(sem, config, 1, rank)
    if effect == POINTWISE:
        return False
    if effect == CAUSAL:
        return side == "pre"
    return True


@pytest.mark.parametrize("case", sorted(SEQUENCE_LAYERS))
def test_sequence_layer_matches_keras(case: str) -> None:
    kind, factory, call = SEQUENCE_LAYERS[case]
    shape = _shape(kind)
    layer = factory()
    x_in = keras.Input(shape if kind == "fixed" else (None, *shape[1:]))
    masked = layers.Masking(mask_value=-99.0)(x_in)
    out = call(layer, masked)
    model = keras.Model(x_in, out)
    node, sem = _semantics(model, layer)
    # (a) the mask Keras attaches
    attached = getattr(out, "_keras_mask", None) is not None
    assert attached == (sem.generates or sem.propagates), (
        f"{case}: Keras attaches a mask: {attached}; table says "
        f"generates={sem.generates}, propagates={sem.propagates}")
    assert node.takes_mask == sem.uses_mask or case == "Masking", (
        f"{case}: call takes a mask: {node.takes_mask}; table uses_mask={sem.uses_mask}")
    # (b) mixing, measured by perturbing the padded positions of sample 0
    training = sem.batch_stats
    rank = 1 + len(shape)
    for side in ("post", "pre"):
        x, perturbed, mask = _batches(shape, side)
        for with_mask in (False, True):
            if with_mask and not sem.uses_mask:
                continue
            if with_mask and sem.broadcasts_mask:  # MC103: the (B, T) mask cannot line up
                with pytest.raises(ValueError, match="broadcastable"):
                    _valid_diff(layer, call, x, perturbed, mask, with_mask=True, training=False)
                continue
            diff = _valid_diff(layer, call, x, perturbed, mask, with_mask=with_mask,
                               training=sem.batch_stats)
            expected = _predicted_leak(sem, node.config, rank, masked=with_mask, side=side)
            assert (diff > 1e-5) == expected, (
                f"{case} ({side}-padding, mask={'yes' if with_mask else 'no'}): measured "
                f"change {diff:.3g} at valid positions, table predicts "
                f"{'a leak' if expected else 'none'}")


@pytest.mark.parametrize("case", sorted(IMAGE_LAYERS))
def test_image_layer_matches_keras(case: str) -> None:
    layer = IMAGE_LAYERS[case]()
    x_in = keras.Input((None, None, 3))
    model = keras.Model(x_in, layer(x_in))
    node, sem = _semantics(model, layer)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, T, T, 3)).astype("float32")
    x[0, LENGTH:, :] = 0.0
    x[0, :, LENGTH:] = 0.0
    perturbed = x.copy()
    perturbed[0, LENGTH:, :] = rng.normal(size=perturbed[0, LENGTH:, :].shape) + 1.0
    perturbed[0, :, LENGTH:] = rng.normal(size=perturbed[0, :, LENGTH:].shape) + 1.0
    a, b = np.asarray(layer(x))[0], np.asarray(layer(perturbed))[0]
    if a.ndim == 3:
        a, b = a[:LENGTH, :LENGTH], b[:LENGTH, :LENGTH]
    leaks = float(np.max(np.abs(a - b))) > 1e-5
    expected = any(effect_on_axis(sem, node.config, axis, 4) != POINTWISE for axis in (1, 2))
    assert leaks == expected, f"{case}: measured leak {leaks}, table predicts {expected}"


#: Layers that move or resample positions: only the mask column is measured
#: (their valid positions move, so a perturbation comparison would be meaningless).
MASK_ONLY = {
    "UpSampling1D": lambda: layers.UpSampling1D(2),
    "ZeroPadding1D": lambda: layers.ZeroPadding1D(1),
    "Cropping1D": lambda: layers.Cropping1D(1),
    "MaxPooling1D-strided": lambda: layers.MaxPooling1D(2),
    "Conv1D-strided": lambda: layers.Conv1D(2, 3, strides=2),
    "Permute": lambda: layers.Permute((2, 1)),
    "Lambda": lambda: layers.Lambda(lambda t: t * 2.0),
}


@pytest.mark.parametrize("case", sorted(MASK_ONLY))
def test_mask_column_of_position_moving_layers(case: str) -> None:
    layer = MASK_ONLY[case]()
    x = keras.Input((T, F))
    out = layer(layers.Masking()(x))
    node, sem = _semantics(keras.Model(x, out), layer)
    attached = getattr(out, "_keras_mask", None) is not None
    predicted = sem.propagates if sem.known else node.supports_masking
    assert attached == predicted, f"{case}: Keras attaches a mask: {attached}"


#: Layers on ids or raw values (batch, time): position-wise, no mask.
ID_LAYERS = {
    "Embedding": (lambda: layers.Embedding(20, 3), "int32"),
    "IntegerLookup": (lambda: layers.IntegerLookup(vocabulary=[1, 2, 3]), "int64"),
    "Hashing": (lambda: layers.Hashing(8), "int64"),
    "Discretization": (lambda: layers.Discretization(bin_boundaries=[0.0, 1.0]), "float32"),
}


@pytest.mark.parametrize("case", sorted(ID_LAYERS))
def test_id_layers_are_position_wise(case: str) -> None:
    factory, dtype = ID_LAYERS[case]
    layer = factory()
    x_in = keras.Input((None,), dtype=dtype)
    _, sem = _semantics(keras.Model(x_in, layer(x_in)), layer)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 4, size=(2, T)).astype(dtype)
    perturbed = x.copy()
    perturbed[0, LENGTH:] = rng.integers(4, 9, size=T - LENGTH).astype(dtype)
    a, b = np.asarray(layer(x))[0, :LENGTH], np.asarray(layer(perturbed))[0, :LENGTH]
    assert np.array_equal(a, b) == (effect_on_axis(sem, {}, 1, 2) == POINTWISE)


def test_embedding_generates_a_mask_only_with_mask_zero() -> None:
    for mask_zero in (False, True):
        x = keras.Input((None,), dtype="int32")
        layer = layers.Embedding(10, 3, mask_zero=mask_zero)
        out = layer(x)
        _, sem = _semantics(keras.Model(x, out), layer)
        assert (getattr(out, "_keras_mask", None) is not None) == sem.generates == mask_zero


def test_time_distributed_embedding_attaches_no_mask() -> None:
    x = keras.Input((None, 3), dtype="int32")
    layer = layers.TimeDistributed(layers.Embedding(10, 3, mask_zero=True))
    out = layer(x)
    _, sem = _semantics(keras.Model(x, out), layer)
    assert getattr(out, "_keras_mask", None) is None
    assert not sem.propagates and not sem.generates
