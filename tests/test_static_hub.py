"""Static engine v2 on keras-hub (opt-in: pytest -m kerashub).

The keras-hub TokenAndPositionEmbedding -> TransformerDecoder model must get
no error and no warning statically (its mask exists at run time only), and each
backbone gets the static left-padding finding (MC108) exactly when a direct
left-padding probe through the model changes its valid outputs.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

pytestmark = pytest.mark.kerashub
keras_hub = pytest.importorskip("keras_hub")

import keras  # noqa: E402

import maskcheck  # noqa: E402

SMALL = dict(vocabulary_size=64, num_layers=2, num_heads=2, num_query_heads=2,
             num_key_value_heads=1, hidden_dim=16, intermediate_dim=32, max_sequence_length=32,
             embedding_dim=16, head_dim=8, dropout=0.0)
#: (backbone, does left padding change its valid outputs?) -- measured below, not assumed
BACKBONES = [("BertBackbone", True), ("GPT2Backbone", True), ("LlamaBackbone", False),
             ("BloomBackbone", False), ("DebertaV3Backbone", False)]


def _backbone(name):
    cls = getattr(keras_hub.models, name)
    params = inspect.signature(cls.__init__).parameters
    keras.utils.set_random_seed(7)
    return cls(**{k: v for k, v in SMALL.items() if k in params})


def _left_padded(model, tokens, t):
    """Outputs at the valid steps of `tokens` left-padded to length t."""
    n = len(tokens)
    ids = np.zeros((1, t), "int32")
    ids[0, t - n:] = tokens
    mask = np.zeros((1, t), "int32")
    mask[0, t - n:] = 1
    feed = {}
    for kt in model.inputs:
        name = kt._keras_history.operation.name
        feed[name] = mask if "mask" in name else ids if "token" in name else np.zeros_like(ids)
    out = model(feed, training=False)
    seq = out["sequence_output"] if isinstance(out, dict) else out
    return np.asarray(seq)[0, t - n:]


@pytest.mark.parametrize("name, leaks", BACKBONES, ids=[b for b, _ in BACKBONES])
def test_left_padding_finding_matches_the_probe(name, leaks):
    model = _backbone(name)
    tokens = np.array([5, 9, 3, 7, 11])
    change = float(np.max(np.abs(_left_padded(model, tokens, 8) - _left_padded(model, tokens, 12))))
    assert (change > 1e-4) == leaks, f"{name}: left-padding probe changed valid outputs by {change}"
    static = maskcheck.check(model, mode="static").findings
    assert any(f.rule == "MC108" for f in static) == leaks, [(f.rule, f.layer) for f in static]
    pre = maskcheck.check(model, mode="static", padding="pre").findings
    assert any(f.rule == "MC108" and f.severity.value == "warning" for f in pre) == leaks
    post = maskcheck.check(model, mode="static", padding="post").findings
    assert not any(f.rule == "MC108" for f in post)


def test_token_and_position_embedding_to_decoder_is_not_a_static_error():
    """Keras shows no mask on the embedding's symbolic output; at run time it is there
    and the decoder applies it, so a static error here would be refuted by the probes."""
    x = keras.Input((None,), dtype="int32")
    h = keras_hub.layers.TokenAndPositionEmbedding(50, 32, 16, mask_zero=True, name="tpe")(x)
    h = keras_hub.layers.TransformerDecoder(16, 2, name="decoder")(h)
    model = keras.Model(x, keras.layers.Dense(3)(h))
    static = maskcheck.check(model, mode="static").findings
    assert not [f for f in static if f.severity.value in ("error", "warning")], \
        [(f.rule, f.layer, f.severity.value) for f in static]
    dynamic = maskcheck.check(model, mode="dynamic", padding="post").findings
    assert not [f for f in dynamic if f.rule == "MC301"]
