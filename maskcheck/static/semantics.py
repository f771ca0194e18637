"""What each Keras layer class (and keras.ops operation) does to padded axes.

`along` says how a layer treats the axes it acts on (`acts_on`):

* ``pointwise``: each position is computed from the same position only;
* ``causal``: a position sees itself and earlier positions only (forward
  RNNs, ``Conv1D(padding="causal")``, ``ops.cumsum``): safe under
  post-padding, a leak under pre-padding;
* ``mixing``: a position sees its neighbours on both sides (convolutions,
  pooling, attention, backward and bidirectional RNNs, resizing);
* ``reducing``: the axis disappears into the result (global pooling,
  Flatten, RNNs with ``return_sequences=False``).

`acts_on` names the axes: ``spatial`` (all axes between batch and channels,
channels-last), ``time`` (axis 1 only), ``axis`` (the layer's ``axis``
config), ``all`` (every non-batch axis), ``none``. Layers with
``mixes_features`` also combine values along the last axis (Dense), which
matters once a padded axis has been moved last (Permute).

The mask columns say what Keras does with a mask: `uses_mask` (the layer
applies it), `propagates` (its output carries it), `generates`. Statistics
columns: `batch_stats` (across the batch, in training) and `sample_stats`
(within a sample, over the padded axis). `TABLE` covers every class that
`keras.layers` exports (``NOT_APPLICABLE`` lists those that never see a
padded tensor); `tests/test_semantics.py` measures it against Keras. The
keras-hub rows come from `maskcheck.static.hub` (`HUB_TABLE`, measured against
keras-hub by `tests/test_hub_semantics.py`) and are merged into `TABLE`.
A class missing from both is handled by `semantics_for` as unknown.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Iterable, Mapping

POINTWISE, CAUSAL, MIXING, REDUCING = "pointwise", "causal", "mixing", "reducing"
#: Looks only forwards along the axis (x[t], x[t + 1]): safe under pre-padding, a
#: leak under post-padding.
ANTICAUSAL = "anticausal"
SPATIAL, TIME, AXIS, ALL, NONE, LAST = "spatial", "time", "axis", "all", "none", "last"


@dataclass(frozen=True, slots=True)
class LayerSemantics:
    along: str = POINTWISE
    acts_on: str = SPATIAL
    mixes_features: bool = False
    uses_mask: bool = False
    propagates: bool = False
    generates: bool = False
    batch_stats: bool = False
    sample_stats: bool = False
    #: the time length of the output may differ from the input's
    changes_length: bool = False
    #: the layer broadcasts a (batch, time) mask against its whole input (Softmax)
    broadcasts_mask: bool = False
    #: the layer adds positions counted from the start of the axis (absolute
    #: position embeddings): under pre-padding valid steps get other positions
    absolute_positions: bool = False
    #: a mean divided by the mask's sum (masked GlobalAveragePooling1D): 0/0 when
    #: a sample is fully padded
    masked_mean: bool = False
    #: the layer attaches its mask at run time although Keras shows none on the
    #: symbolic graph (keras-hub embeddings): trust the table over the graph
    mask_at_runtime: bool = False
    #: the output runs backwards in time (an RNN with go_backwards and
    #: return_sequences): it reads the sequence from its end, the padding side
    #: swaps, and a mask passed on unchanged no longer lines up
    reverses: bool = False
    #: False for classes missing from the table: their semantics are assumed
    known: bool = True

    @property
    def is_pointwise(self) -> bool:
        return self.along == POINTWISE and not self.mixes_features


def _rows(semantics: LayerSemantics, *names: str) -> dict[str, LayerSemantics]:
    return {name: semantics for name in names}


_ELEMENTWISE = LayerSemantics(POINTWISE, NONE, propagates=True)
_DENSE = LayerSemantics(POINTWISE, NONE, mixes_features=True, propagates=True)
_CONV = LayerSemantics(MIXING, SPATIAL, mixes_features=True)
_POOL = LayerSemantics(MIXING, SPATIAL, changes_length=True)
_GLOBAL_POOL = LayerSemantics(REDUCING, SPATIAL)
_RNN = LayerSemantics(CAUSAL, TIME, mixes_features=True, uses_mask=True, propagates=True)
_ATTENTION = LayerSemantics(MIXING, TIME, mixes_features=True, uses_mask=True, propagates=True)
_MERGE = LayerSemantics(POINTWISE, NONE, propagates=True)
_IMAGE_GEOMETRY = LayerSemantics(MIXING, SPATIAL, changes_length=True)
_IMAGE_STATS = LayerSemantics(POINTWISE, SPATIAL, sample_stats=True)
_IMAGE_PIXEL = LayerSemantics(POINTWISE, NONE)
_LOOKUP = LayerSemantics(POINTWISE, NONE)

#: Built-in layer classes, keyed by class name (aliases such as Conv1D /
#: Convolution1D share a class). Mask columns were measured on Keras 3.15.
_KERAS_TABLE: Mapping[str, LayerSemantics] = {
    **_rows(_ELEMENTWISE, "Activation", "ActivityRegularization", "AlphaDropout", "Dropout",
            "ELU", "GaussianDropout", "GaussianNoise", "Identity", "LeakyReLU", "PReLU",
            "ReLU", "Rescaling", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
            "Normalization"),
    **_rows(_DENSE, "Dense", "LayerNormalization", "UnitNormalization"),
    "EinsumDense": LayerSemantics(POINTWISE, NONE, mixes_features=True),
    "RMSNormalization": LayerSemantics(POINTWISE, NONE, mixes_features=True),
    "Softmax": LayerSemantics(MIXING, AXIS, uses_mask=True, propagates=True,
                              broadcasts_mask=True),
    **_rows(_CONV, "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
            "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
            "SeparableConv2D"),
    **_rows(_POOL, "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
            "AveragePooling2D", "AveragePooling3D", "AdaptiveAveragePooling1D",
            "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D", "AdaptiveMaxPooling1D",
            "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D"),
    # Move or repeat positions without mixing values, but the mask no longer fits.
    **_rows(LayerSemantics(POINTWISE, SPATIAL, changes_length=True), "UpSampling1D",
            "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
            "Cropping1D", "Cropping2D", "Cropping3D"),
    **_rows(_GLOBAL_POOL, "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
            "GlobalAveragePooling2D", "GlobalAveragePooling3D"),
    "GlobalAveragePooling1D": LayerSemantics(REDUCING, SPATIAL, uses_mask=True, masked_mean=True),
    "Flatten": LayerSemantics(REDUCING, ALL),
    "Reshape": LayerSemantics(REDUCING, ALL),
    "Permute": LayerSemantics(POINTWISE, NONE),
    "RepeatVector": LayerSemantics(POINTWISE, NONE),
    **_rows(_RNN, "RNN", "LSTM", "GRU", "SimpleRNN"),
    **_rows(LayerSemantics(CAUSAL, TIME, mixes_features=True, uses_mask=True, propagates=True),
            "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"),
    "Bidirectional": LayerSemantics(MIXING, TIME, mixes_features=True, uses_mask=True,
                                    propagates=True),
    "TimeDistributed": LayerSemantics(POINTWISE, NONE, mixes_features=True, uses_mask=True,
                                      propagates=True),
    **_rows(_ATTENTION, "Attention", "AdditiveAttention", "MultiHeadAttention",
            "GroupedQueryAttention"),
    **_rows(_MERGE, "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
            "Concatenate"),
    "Dot": LayerSemantics(MIXING, AXIS),
    "Embedding": LayerSemantics(POINTWISE, NONE, generates=True),
    # With mask_zero, its mask is attached at run time only (Keras 3.15 shows none on the
    # symbolic graph); called with reverse=True it is a Dense onto the vocabulary.
    "ReversibleEmbedding": LayerSemantics(POINTWISE, NONE, generates=True,
                                          mask_at_runtime=True),
    "Masking": LayerSemantics(POINTWISE, NONE, generates=True, propagates=True),
    "BatchNormalization": LayerSemantics(POINTWISE, NONE, uses_mask=True, propagates=True,
                                         batch_stats=True),
    "GroupNormalization": LayerSemantics(POINTWISE, NONE, mixes_features=True, propagates=True,
                                         sample_stats=True),
    "SpectralNormalization": LayerSemantics(POINTWISE, NONE, mixes_features=True),
    # Preprocessing on ids and values: position-wise, no mask.
    **_rows(_LOOKUP, "IntegerLookup", "StringLookup", "Hashing", "HashedCrossing",
            "Discretization", "CategoryEncoding"),
    "TextVectorization": LayerSemantics(POINTWISE, NONE),
    # Audio front ends frame the time axis.
    **_rows(LayerSemantics(MIXING, TIME, mixes_features=True, changes_length=True),
            "MelSpectrogram", "STFTSpectrogram"),
    # Image preprocessing and augmentation on padded images.
    **_rows(_IMAGE_GEOMETRY, "CenterCrop", "RandomCrop", "Resizing", "RandomFlip",
            "RandomRotation", "RandomZoom", "RandomTranslation", "RandomShear",
            "RandomPerspective", "RandomElasticTransform", "RandomGaussianBlur",
            "RandomSharpness", "RandAugment", "AugMix", "CutMix", "MixUp", "RandomErasing"),
    **_rows(_IMAGE_STATS, "AutoContrast", "Equalization",
            "ContrastLimitedAdaptiveHistogramEqualization", "RandomContrast",
            "RandomColorJitter"),
    **_rows(_IMAGE_PIXEL, "RandomBrightness", "RandomColorDegeneration", "RandomGrayscale",
            "RandomHue", "RandomInvert", "RandomPosterization", "RandomSaturation",
            "Solarization"),
}

# The keras-hub rows live in `maskcheck.static.hub`, which imports LayerSemantics
# from here. Imported first, hub is still initializing at this point: it adds its
# rows to TABLE itself once HUB_TABLE exists.
_hub = sys.modules.get("maskcheck.static.hub")
if _hub is not None and not hasattr(_hub, "HUB_TABLE"):
    HUB_TABLE: Mapping[str, LayerSemantics] = {}
else:
    from maskcheck.static.hub import HUB_TABLE

#: Every layer class maskcheck knows, Keras's and keras-hub's, keyed by class name.
TABLE: Mapping[str, LayerSemantics] = {**_KERAS_TABLE, **HUB_TABLE}

#: Exported classes that never run on a padded tensor themselves: bases,
#: cells used inside RNN, wrappers of foreign frameworks, bounding-box tools.
NOT_APPLICABLE: Mapping[str, str] = {
    "InputLayer": "graph input, handled by the walker",
    "InputSpec": "not a layer",
    "Layer": "abstract base class; subclasses are looked up by their own class",
    "Wrapper": "abstract base of Bidirectional and TimeDistributed",
    "GRUCell": "a single step inside RNN; the RNN row applies",
    "LSTMCell": "a single step inside RNN; the RNN row applies",
    "SimpleRNNCell": "a single step inside RNN; the RNN row applies",
    "StackedRNNCells": "a single step inside RNN; the RNN row applies",
    "Pipeline": "a preprocessing pipeline; its layers are looked up one by one",
    "MaxNumBoundingBoxes": "bounding-box preprocessing, no padded sequence or image",
    "Lambda": "user code: handled as an unknown layer",
    "TFSMLayer": "a foreign SavedModel: handled as an unknown layer",
    "JaxLayer": "foreign JAX code: handled as an unknown layer",
    "FlaxLayer": "foreign Flax code: handled as an unknown layer",
    "TorchModuleWrapper": "foreign PyTorch code: handled as an unknown layer",
}

_EW = LayerSemantics(POINTWISE, NONE)
#: keras.ops Operations (and Python operators) that appear as graph nodes.
#: They never carry a mask: Keras attaches none to their outputs.
OPS_TABLE: Mapping[str, LayerSemantics] = {
    **_rows(_EW, "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "FloorDivide", "Mod",
            "Power", "Negative", "Absolute", "Abs", "Exp", "Expm1", "Log", "Log1p", "Log2",
            "Log10", "Sqrt", "Rsqrt", "Square", "Reciprocal", "Sign", "Floor", "Ceil",
            "Round", "Clip", "Tanh", "Sigmoid", "Relu", "Relu6", "Gelu", "Silu", "Swish",
            "Softplus", "Softsign", "Elu", "Selu", "LeakyRelu", "HardSigmoid", "HardSilu",
            "Erf", "Cos", "Sin", "Cast", "Where", "Maximum", "Minimum", "Equal", "NotEqual",
            "Greater", "GreaterEqual", "Less", "LessEqual", "LogicalAnd", "LogicalOr",
            "LogicalNot", "LogicalXor", "StopGradient", "ConvertToTensor", "Copy", "OnesLike",
            "ZerosLike", "FullLike", "ExpandDims", "Squeeze", "Concatenate", "Stack",
            "OneHot", "BroadcastTo", "GetItem", "Identity", "IsNan", "IsInf", "IsFinite",
            "NanToNum", "Clip", "Real", "Imag"),
    **_rows(LayerSemantics(POINTWISE, NONE, mixes_features=True), "Matmul", "Dot",
            "Tensordot"),
    **_rows(LayerSemantics(MIXING, AXIS), "Softmax", "LogSoftmax", "Normalize",
            "L2Normalize"),
    **_rows(LayerSemantics(CAUSAL, AXIS), "Cumsum", "Cumprod"),
    "Flip": LayerSemantics(POINTWISE, AXIS),  # moves positions; swaps post and pre padding
    **_rows(LayerSemantics(MIXING, AXIS), "Roll", "Sort", "Argsort", "TopK"),
    **_rows(LayerSemantics(REDUCING, AXIS), "Sum", "Mean", "Max", "Min", "Prod", "Any",
            "All", "Std", "Var", "Argmax", "Argmin", "Logsumexp", "Norm", "Amax", "Amin",
            "Average", "Median"),
    "Transpose": LayerSemantics(POINTWISE, NONE),
    "Reshape": LayerSemantics(REDUCING, ALL),
    **_rows(LayerSemantics(MIXING, SPATIAL, mixes_features=True), "Conv", "DepthwiseConv",
            "SeparableConv", "ConvTranspose"),
    **_rows(LayerSemantics(MIXING, SPATIAL, changes_length=True), "MaxPool", "AveragePool",
            "Pad", "Tile", "Repeat", "Slice", "Take", "TakeAlongAxis"),
    "Einsum": LayerSemantics(MIXING, ALL),
}

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


def acted_axes(sem: LayerSemantics, config: Mapping[str, object], rank: int) -> frozenset[int]:
    """The axes (of an input of `rank`) along which `sem.along` applies."""
    if sem.acts_on == NONE or rank < 2:
        axes: set[int] = set()
    elif sem.acts_on == TIME:
        axes = {1}
    elif sem.acts_on == ALL:
        axes = set(range(1, rank))
    elif sem.acts_on == SPATIAL:
        axes = set(range(1, max(rank - 1, 2)))
    else:  # AXIS
        raw = config.get("axis", config.get("axes", -1))
        if raw is None:
            axes = set(range(1, rank))
        else:
            values = raw if isinstance(raw, (list, tuple)) else (raw,)
            axes = {v % rank for v in values if isinstance(v, int) and rank}
    if sem.mixes_features and rank >= 2:
        axes.add(rank - 1)
    return frozenset(axes)


def effect_on_axis(sem: LayerSemantics, config: Mapping[str, object], axis: int,
                   rank: int) -> str:
    """What the layer does along one padded `axis` of an input of `rank`."""
    axes = acted_axes(sem, config, rank)
    if axis not in axes:
        return POINTWISE
    if sem.mixes_features and axis == rank - 1 and not (
            sem.acts_on in (SPATIAL, ALL, TIME) and axis in acted_axes(
                replace(sem, mixes_features=False), config, rank)):
        return MIXING  # a padded axis that became the feature axis is mixed
    return sem.along
