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
(within a sample, over the padded axis). `KERAS_TABLE` covers every class
that `keras.layers` exports (``NOT_APPLICABLE`` lists those that never see a
padded tensor); `tests/test_semantics.py` measures it against Keras.
`OPS_TABLE` covers the keras.ops operations that appear as graph nodes.

The keras-hub rows are in `keras_hub` (`HUB_TABLE`); the package merges both
into `TABLE`. This module imports neither keras nor keras_hub.
"""

from __future__ import annotations

from typing import Mapping

from maskcheck.static.semantics.base import (ALL, AXIS, CAUSAL, MIXING, NONE, POINTWISE, REDUCING,
                                             SPATIAL, TIME, LayerSemantics, rows)

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
KERAS_TABLE: Mapping[str, LayerSemantics] = {
    **rows(_ELEMENTWISE, "Activation", "ActivityRegularization", "AlphaDropout", "Dropout",
           "ELU", "GaussianDropout", "GaussianNoise", "Identity", "LeakyReLU", "PReLU",
           "ReLU", "Rescaling", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
           "Normalization"),
    **rows(_DENSE, "Dense", "LayerNormalization", "UnitNormalization"),
    "EinsumDense": LayerSemantics(POINTWISE, NONE, mixes_features=True),
    "RMSNormalization": LayerSemantics(POINTWISE, NONE, mixes_features=True),
    "Softmax": LayerSemantics(MIXING, AXIS, uses_mask=True, propagates=True,
                              broadcasts_mask=True),
    **rows(_CONV, "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
           "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
           "SeparableConv2D"),
    **rows(_POOL, "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
           "AveragePooling2D", "AveragePooling3D", "AdaptiveAveragePooling1D",
           "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D", "AdaptiveMaxPooling1D",
           "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D"),
    # Move or repeat positions without mixing values, but the mask no longer fits.
    **rows(LayerSemantics(POINTWISE, SPATIAL, changes_length=True), "UpSampling1D",
           "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
           "Cropping1D", "Cropping2D", "Cropping3D"),
    **rows(_GLOBAL_POOL, "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
           "GlobalAveragePooling2D", "GlobalAveragePooling3D"),
    "GlobalAveragePooling1D": LayerSemantics(REDUCING, SPATIAL, uses_mask=True, masked_mean=True),
    "Flatten": LayerSemantics(REDUCING, ALL),
    "Reshape": LayerSemantics(REDUCING, ALL),
    "Permute": LayerSemantics(POINTWISE, NONE),
    "RepeatVector": LayerSemantics(POINTWISE, NONE),
    **rows(_RNN, "RNN", "LSTM", "GRU", "SimpleRNN"),
    **rows(LayerSemantics(CAUSAL, TIME, mixes_features=True, uses_mask=True, propagates=True),
           "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"),
    "Bidirectional": LayerSemantics(MIXING, TIME, mixes_features=True, uses_mask=True,
                                    propagates=True),
    "TimeDistributed": LayerSemantics(POINTWISE, NONE, mixes_features=True, uses_mask=True,
                                      propagates=True),
    **rows(_ATTENTION, "Attention", "AdditiveAttention", "MultiHeadAttention",
           "GroupedQueryAttention"),
    **rows(_MERGE, "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
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
    **rows(_LOOKUP, "IntegerLookup", "StringLookup", "Hashing", "HashedCrossing",
           "Discretization", "CategoryEncoding"),
    "TextVectorization": LayerSemantics(POINTWISE, NONE),
    # Audio front ends frame the time axis.
    **rows(LayerSemantics(MIXING, TIME, mixes_features=True, changes_length=True),
           "MelSpectrogram", "STFTSpectrogram"),
    # Image preprocessing and augmentation on padded images.
    **rows(_IMAGE_GEOMETRY, "CenterCrop", "RandomCrop", "Resizing", "RandomFlip",
           "RandomRotation", "RandomZoom", "RandomTranslation", "RandomShear",
           "RandomPerspective", "RandomElasticTransform", "RandomGaussianBlur",
           "RandomSharpness", "RandAugment", "AugMix", "CutMix", "MixUp", "RandomErasing"),
    **rows(_IMAGE_STATS, "AutoContrast", "Equalization",
           "ContrastLimitedAdaptiveHistogramEqualization", "RandomContrast",
           "RandomColorJitter"),
    **rows(_IMAGE_PIXEL, "RandomBrightness", "RandomColorDegeneration", "RandomGrayscale",
           "RandomHue", "RandomInvert", "RandomPosterization", "RandomSaturation",
           "Solarization"),
}

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
    **rows(_EW, "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "FloorDivide", "Mod",
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
    **rows(LayerSemantics(POINTWISE, NONE, mixes_features=True), "Matmul", "Dot",
           "Tensordot"),
    **rows(LayerSemantics(MIXING, AXIS), "Softmax", "LogSoftmax", "Normalize",
           "L2Normalize"),
    **rows(LayerSemantics(CAUSAL, AXIS), "Cumsum", "Cumprod"),
    "Flip": LayerSemantics(POINTWISE, AXIS),  # moves positions; swaps post and pre padding
    **rows(LayerSemantics(MIXING, AXIS), "Roll", "Sort", "Argsort", "TopK"),
    **rows(LayerSemantics(REDUCING, AXIS), "Sum", "Mean", "Max", "Min", "Prod", "Any",
           "All", "Std", "Var", "Argmax", "Argmin", "Logsumexp", "Norm", "Amax", "Amin",
           "Average", "Median"),
    "Transpose": LayerSemantics(POINTWISE, NONE),
    "Reshape": LayerSemantics(REDUCING, ALL),
    **rows(LayerSemantics(MIXING, SPATIAL, mixes_features=True), "Conv", "DepthwiseConv",
           "SeparableConv", "ConvTranspose"),
    **rows(LayerSemantics(MIXING, SPATIAL, changes_length=True), "MaxPool", "AveragePool",
           "Pad", "Tile", "Repeat", "Slice", "Take", "TakeAlongAxis"),
    "Einsum": LayerSemantics(MIXING, ALL),
}
