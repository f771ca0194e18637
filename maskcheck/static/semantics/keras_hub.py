"""What keras-hub layers do to padded axes: the keras-hub half of `semantics.TABLE`.

keras-hub's Transformer layers do not follow the Keras conventions that the
Keras rows were measured on, so their rows are kept apart and measured
against keras-hub itself (0.32, on Keras 3.15) by `tests/test_hub_semantics.py`:

* they take their mask through keywords (``padding_mask``,
  ``decoder_padding_mask``, ``attention_mask``), not ``mask=``, and most also
  read the mask that Keras attached to their input (``inputs._keras_mask``);
  the attention sub-layers (`CachedMultiHeadAttention`, `LlamaAttention`,
  ...) read only their ``attention_mask`` keyword;
* the decoders are causal by default (`TransformerDecoder` and `BloomDecoder`
  unless called with ``use_causal_mask=False``; `LlamaTransformerDecoder`
  always);
* position information comes either as absolute positions counted from the
  start of the sequence (`PositionEmbedding`, `SinePositionEncoding`,
  `TokenAndPositionEmbedding`: BERT and GPT-2 style models, whose valid
  outputs change under more left padding) or as relative positions (rotary
  embeddings in Llama, ALiBi in Bloom, bucketed relative positions in
  DeBERTa-v3), which left padding leaves alone;
* `TokenAndPositionEmbedding` (through `ReversibleEmbedding`) attaches its
  ``mask_zero`` mask at run time only: Keras shows none on the symbolic graph
  (``mask_at_runtime``).

Rows are keyed by class name, like the Keras rows; a subclass is looked up
through its bases. This module imports neither keras nor keras_hub: it is
read on the static path, where ``import maskcheck`` must stay light.
"""

from __future__ import annotations

from typing import Mapping

from maskcheck.static.semantics.base import CAUSAL, MIXING, NONE, POINTWISE, TIME, LayerSemantics

#: An absolute position table, added to (or returned for) every step.
_ABSOLUTE = LayerSemantics(POINTWISE, NONE, absolute_positions=True)
#: Rotary position embedding: each step is rotated by its own angle (pairs of
#: features are mixed), and a query-key product depends only on the distance.
_ROTARY = LayerSemantics(POINTWISE, NONE, mixes_features=True)
#: A self-attention sub-layer: masks only through its `attention_mask` keyword.
_ATTENTION = LayerSemantics(MIXING, TIME, mixes_features=True, uses_mask=True)

#: keras-hub layer classes, keyed by class name. Each comment says what
#: `tests/test_hub_semantics.py` measures on keras-hub 0.32. "Leaks" means:
#: changing only the padded steps' inputs changes valid outputs.
HUB_TABLE: Mapping[str, LayerSemantics] = {
    # --- generic Transformer layers (keras_hub.layers) -------------------------------
    # Leaks under post- and pre-padding without a mask; none with padding_mask= or with
    # the input's own _keras_mask. supports_masking: the input's mask is on the output
    # (symbolically and at run time); with padding_mask= alone the output has none.
    # No positions of its own: more left padding (masked) changes nothing.
    "TransformerEncoder": LayerSemantics(MIXING, TIME, mixes_features=True, uses_mask=True,
                                         propagates=True),
    # Self-attention is causal by default (no leak under post-padding, leaks under
    # pre-padding); use_causal_mask=False makes it mixing (`semantics_for`). Masks as
    # TransformerEncoder, through decoder_padding_mask= or _keras_mask. Cross-attention
    # over an encoder_sequence mixes that sequence fully (encoder_padding_mask=).
    "TransformerDecoder": LayerSemantics(CAUSAL, TIME, mixes_features=True, uses_mask=True,
                                         propagates=True),
    # Full attention over time. Masks only through attention_mask=: a mask attached to
    # query/value is ignored (leaks), yet supports_masking passes it on to the output.
    "CachedMultiHeadAttention": LayerSemantics(MIXING, TIME, mixes_features=True,
                                               uses_mask=True, propagates=True),
    # Fourier mixing over time: leaks under both paddings; no mask argument, ignores
    # _keras_mask; supports_masking is False, so Keras drops the mask.
    "FNetEncoder": LayerSemantics(MIXING, TIME, mixes_features=True),
    # Returns the position table broadcast to the input's shape: no input value reaches
    # the output; valid outputs change under more left padding. supports_masking is
    # False: the output has no mask (Keras warns that the mask is destroyed).
    "PositionEmbedding": _ABSOLUTE,
    # Same as PositionEmbedding, with fixed sinusoids.
    "SinePositionEncoding": _ABSOLUTE,
    # Position-wise (no leak under either padding); its outputs do change under more
    # left padding, but the query-key products of rotated queries and keys do not:
    # relative positions. supports_masking is False.
    "RotaryEmbedding": _ROTARY,
    # Token plus absolute position. Padded ids do not reach valid outputs. With
    # mask_zero=True (`semantics_for`) the mask is attached at run time only: Keras shows
    # none symbolically, yet a following TransformerDecoder reads it (changing the pad
    # token's embedding row leaves its valid outputs unchanged; with mask_zero=False
    # they change).
    "TokenAndPositionEmbedding": LayerSemantics(POINTWISE, NONE, generates=True,
                                                absolute_positions=True,
                                                mask_at_runtime=True),
    # Adds slope * (key index - last key index) to attention scores: the same for valid
    # keys under more left padding, and a per-query constant (cancelled by the softmax)
    # under post-padding. Relative.
    "AlibiBias": LayerSemantics(POINTWISE, NONE),
    # --- Llama (LlamaBackbone) ---------------------------------------------------------
    # Always causal (no use_causal_mask argument); masks through decoder_padding_mask= or
    # _keras_mask; supports_masking. RoPE: more left padding (masked) changes nothing.
    "LlamaTransformerDecoder": LayerSemantics(CAUSAL, TIME, mixes_features=True,
                                              uses_mask=True, propagates=True),
    # Full attention (the decoder adds the causal mask); attention_mask= only, a
    # (batch, T, T) mask; no _keras_mask, no supports_masking. RoPE: relative.
    "LlamaAttention": _ATTENTION,
    "LlamaRotaryEmbedding": _ROTARY,
    # RMS normalization over the features; supports_masking is False.
    "LlamaLayerNorm": LayerSemantics(POINTWISE, NONE, mixes_features=True),
    # --- the other causal LMs' decoder blocks (Gemma, Mistral, Qwen3, GPT-NeoX, Phi-3) -------
    # Always causal; mask through their padding-mask keyword (decoder_padding_mask=, Gemma's
    # padding_mask=) or (all but Gemma's) the input's _keras_mask; RoPE inside (relative: more left padding,
    # masked, changes nothing). Mistral, Qwen3 and GPT-NeoX pass the mask on
    # (supports_masking); Gemma's and Phi-3's blocks do not.
    "GemmaDecoderBlock": LayerSemantics(CAUSAL, TIME, mixes_features=True, uses_mask=True),
    "MistralTransformerDecoder": LayerSemantics(CAUSAL, TIME, mixes_features=True,
                                                uses_mask=True, propagates=True),
    "Qwen3TransformerDecoder": LayerSemantics(CAUSAL, TIME, mixes_features=True,
                                              uses_mask=True, propagates=True),
    "GPTNeoXDecoder": LayerSemantics(CAUSAL, TIME, mixes_features=True, uses_mask=True,
                                     propagates=True),
    "Phi3Decoder": LayerSemantics(CAUSAL, TIME, mixes_features=True, uses_mask=True),
    # --- Bloom (BloomBackbone) ---------------------------------------------------------
    # Causal by default (use_causal_mask=True); masks through decoder_padding_mask= or
    # _keras_mask, but supports_masking is False: its output has no mask. ALiBi: more
    # left padding (masked) changes nothing.
    "BloomDecoder": LayerSemantics(CAUSAL, TIME, mixes_features=True, uses_mask=True),
    # Full attention with ALiBi; attention_mask= is required (None fails in keras-hub).
    "BloomAttention": _ATTENTION,
    # --- DeBERTa-v3 (DebertaV3Backbone) ------------------------------------------------
    # Full attention over time with relative-position buckets (more left padding, masked,
    # changes nothing); masks through padding_mask= or _keras_mask; supports_masking.
    # Called with no mask at all, keras-hub 0.32 on Keras 3.15 fails (Softmax mask).
    "DisentangledAttentionEncoder": LayerSemantics(MIXING, TIME, mixes_features=True,
                                                   uses_mask=True, propagates=True),
    "DisentangledSelfAttention": _ATTENTION,
    # Returns the relative-position table (batch, 2 * bucket_size, hidden): no input
    # value or length reaches it, and its axis 1 is not the input's time axis.
    "RelativeEmbedding": LayerSemantics(POINTWISE, NONE, changes_length=True),
}
