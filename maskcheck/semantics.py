"""What each Keras layer class does along padded axes, as a table.

`along_padded` says how a layer treats the axes that hold padding:

* ``pointwise``: each position is computed from the same position only
  (Dense, activations, LayerNormalization over features, elementwise ops);
* ``causal``: a position sees itself and earlier positions only (forward
  RNNs, ``Conv1D(padding="causal")``): safe under post-padding, a leak
  under pre-padding;
* ``mixing``: a position sees its neighbours on both sides (convolutions,
  pooling, attention, backward and bidirectional RNNs);
* ``reducing``: the padded axis disappears into the result (global pooling,
  Flatten, Reshape, RNNs with ``return_sequences=False``).

`generates` marks mask generators. A layer missing from the table is
treated as ``pointwise`` by this release; `is_known` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

POINTWISE, CAUSAL, MIXING, REDUCING = "pointwise", "causal", "mixing", "reducing"


@dataclass(frozen=True, slots=True)
class LayerSemantics:
    along_padded: str
    generates: bool = False


def _table(kind: str, *names: str) -> dict[str, LayerSemantics]:
    return {name: LayerSemantics(kind) for name in names}


TABLE: Mapping[str, LayerSemantics] = {
    **_table(
        POINTWISE,
        "Activation", "ActivityRegularization", "AlphaDropout", "Dense", "Dropout",
        "EinsumDense", "ELU", "GaussianDropout", "GaussianNoise", "Identity",
        "LayerNormalization", "LeakyReLU", "Normalization", "PReLU", "ReLU",
        "Rescaling", "RMSNormalization", "Softmax", "SpatialDropout1D",
        "SpatialDropout2D", "TimeDistributed", "UnitNormalization", "InputLayer",
        "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
        # Python operators and keras.ops elementwise calls on symbolic tensors.
        "Absolute", "Cast", "Divide", "Exp", "Log", "Negative", "Power", "Sigmoid",
        "Sqrt", "Square", "Tanh", "TrueDivide", "ExpandDims", "Where",
    ),
    **_table(
        MIXING,
        "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
        "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
        "SeparableConv2D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
        "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "UpSampling1D",
        "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D",
        "Cropping2D", "Attention", "AdditiveAttention", "MultiHeadAttention",
        "GroupQueryAttention", "Bidirectional", "Cumsum", "Cumprod", "Flip",
    ),
    **_table(CAUSAL, "RNN", "LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D"),
    **_table(
        REDUCING,
        "Flatten", "Reshape", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
        "GlobalMaxPooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
        "GlobalAveragePooling3D", "Sum", "Mean", "Max", "Min",
    ),
    "Embedding": LayerSemantics(POINTWISE, generates=True),
    "Masking": LayerSemantics(POINTWISE, generates=True),
    "BatchNormalization": LayerSemantics(POINTWISE),
    "GroupNormalization": LayerSemantics(POINTWISE),
}

_RNN_CLASSES = frozenset({"RNN", "LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D"})


def is_known(class_name: str) -> bool:
    return class_name in TABLE


def semantics_for(class_name: str, config: Mapping[str, object]) -> LayerSemantics:
    """The semantics of one call, refined by the layer's config."""
    base = TABLE.get(class_name, LayerSemantics(POINTWISE))
    if class_name in ("Embedding",):
        return LayerSemantics(POINTWISE, generates=bool(config.get("mask_zero")))
    if class_name in ("Conv1D", "SeparableConv1D", "DepthwiseConv1D") and config.get("padding") == "causal":
        return LayerSemantics(CAUSAL)
    if class_name in ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
                      "SeparableConv1D", "SeparableConv2D") and _is_pointwise_kernel(config):
        return LayerSemantics(POINTWISE)
    if class_name in _RNN_CLASSES:
        if not config.get("return_sequences", False):
            return LayerSemantics(REDUCING)
        if config.get("go_backwards", False):
            return LayerSemantics(MIXING)
    if class_name == "Bidirectional" and not _inner_returns_sequences(config):
        return LayerSemantics(REDUCING)
    return base


def _is_pointwise_kernel(config: Mapping[str, object]) -> bool:
    """A 1x1 convolution with stride 1 mixes nothing along its spatial axes."""
    kernel = config.get("kernel_size")
    strides = config.get("strides", 1)
    kernels = kernel if isinstance(kernel, (list, tuple)) else (kernel,)
    stride_list = strides if isinstance(strides, (list, tuple)) else (strides,)
    return all(k == 1 for k in kernels) and all(s == 1 for s in stride_list)


def _inner_returns_sequences(config: Mapping[str, object]) -> bool:
    return bool(config.get("return_sequences", False))
