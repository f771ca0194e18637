"""Everyday Keras models through the static engine (issue 3 acceptance list).

Each test builds a small real model and checks the exact set of static
findings `(rule, layer)` it gets, so a new false alarm fails as surely as a
missed bug.
"""

from __future__ import annotations

import keras
import pytest
from keras import layers

from maskcheck.config import Config
from maskcheck.engine import check_model
from maskcheck.keras_adapter import adapt_model
from maskcheck.maskflow import POST, PRE, analyze

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _fresh_names():
    """Auto-generated names (`multiply`, `cumsum`) restart in every test."""
    keras.backend.clear_session()


def findings(model, severity: str | None = None) -> set[tuple[str, str]]:
    report = check_model(model, target=model.name, config=Config.from_values(mode="static"))
    return {(f.rule, f.layer) for f in report.findings
            if severity is None or f.severity.value == severity}


def full(model):
    report = check_model(model, target=model.name, config=Config.from_values(mode="static"))
    return report.findings


def _classes(model) -> set[tuple[str, str]]:
    return {(f.rule, f.layer_class) for f in full(model)}


def tokens(name: str = "tokens"):
    return keras.Input((None,), dtype="int32", name=name)


# --- the acceptance list of issue 3 -------------------------------------------------

def test_embedding_lstm_dense_tagger_is_clean() -> None:
    x = tokens()
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.LSTM(8, return_sequences=True)(h)
    model = keras.Model(x, layers.Dense(5)(h))
    assert findings(model) == set()


def test_conv1d_between_embedding_and_lstm_drops_and_mixes() -> None:
    x = tokens()
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.Conv1D(8, 3, padding="same", name="conv")(h)
    h = layers.LSTM(8, return_sequences=True)(h)
    model = keras.Model(x, layers.Dense(5)(h))
    assert findings(model) == {("MC101", "conv"), ("MC102", "conv")}


def test_conv_classifier_with_global_max_pooling() -> None:
    x = tokens()
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.Conv1D(8, 3, padding="same", name="conv")(h)
    h = layers.GlobalMaxPooling1D(name="pool")(h)
    model = keras.Model(x, layers.Dense(1)(h))
    assert ("MC102", "conv") in findings(model)
    assert {code for code, _ in findings(model)} <= {"MC101", "MC102"}


def test_embedding_global_max_pooling_without_conv() -> None:
    x = tokens()
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    model = keras.Model(x, layers.GlobalMaxPooling1D(name="gmp")(h))
    assert findings(model) == {("MC101", "gmp"), ("MC102", "gmp")}


def test_masking_bidirectional_lstm_is_clean() -> None:
    model = keras.Sequential([keras.Input((None, 4)), layers.Masking(),
                              layers.Bidirectional(layers.LSTM(8)), layers.Dense(1)])
    assert findings(model) == set()


def _transformer_block(x, mask=None):
    attn = layers.MultiHeadAttention(2, 8, name="mha")
    h = attn(x, x) if mask is None else attn(x, x, attention_mask=mask)
    h = layers.LayerNormalization()(x + h)
    return layers.LayerNormalization()(h + layers.Dense(16)(h))


def test_handwritten_transformer_without_mask() -> None:
    x = keras.Input((None, 16), name="frames")
    h = _transformer_block(x)
    model = keras.Model(x, layers.Dense(3)(h))
    assert ("MC102", "mha") in findings(model)


def test_handwritten_transformer_with_embedding_mask_is_clean() -> None:
    x = tokens()
    h = layers.Embedding(50, 16, mask_zero=True)(x)
    attn = layers.MultiHeadAttention(2, 8, name="mha")(h, h)
    h = layers.LayerNormalization()(layers.Add()([h, attn]))
    model = keras.Model(x, layers.GlobalAveragePooling1D()(h))
    assert findings(model) == set()


def test_unmasked_variable_length_features_conv_gap() -> None:
    x = keras.Input((None, 6))
    h = layers.Conv1D(8, 3, name="conv")(x)
    model = keras.Model(x, layers.GlobalAveragePooling1D()(h))
    found = full(model)
    assert {(f.rule, f.layer) for f in found} == {("MC102", "conv")}
    assert found[0].evidence["axis"] == 1


def test_padded_images_conv2d_gap2d() -> None:
    x = keras.Input((None, None, 3))
    h = layers.Conv2D(4, 3, name="conv2d")(x)
    model = keras.Model(x, layers.GlobalAveragePooling2D()(h))
    assert findings(model) == {("MC102", "conv2d")}


def _tagger(with_conv: bool) -> keras.Model:
    x = tokens()
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    if with_conv:
        h = layers.Conv1D(8, 1, name="pointwise_conv")(h)  # drops the mask, mixes nothing
    y = layers.Dense(5, name="tags")(h)
    model = keras.Model(x, y)
    model.compile(loss="sparse_categorical_crossentropy")
    return model


def test_sequence_output_with_dropped_mask_loss_ignores_padding() -> None:
    assert findings(_tagger(with_conv=True)) == {("MC101", "pointwise_conv"), ("MC201", "tags")}


def test_sequence_output_with_mask_intact_is_clean() -> None:
    assert findings(_tagger(with_conv=False)) == set()


def test_integer_lookup_without_mask_token_feeding_mask_zero() -> None:
    x = keras.Input((None,), dtype="int64")
    ids = layers.IntegerLookup(vocabulary=[3, 4, 5], mask_token=None)(x)
    h = layers.Embedding(6, 4, mask_zero=True, name="emb")(ids)
    model = keras.Model(x, layers.LSTM(4)(h))
    assert findings(model) == {("MC107", "emb")}


# --- Keras 3.15 behaviour the engine must get right ----------------------------------

def test_time_distributed_embedding_attaches_no_mask() -> None:
    x = keras.Input((None, 3), dtype="int32")
    h = layers.TimeDistributed(layers.Embedding(20, 4, mask_zero=True))(x)
    h = layers.TimeDistributed(layers.Flatten())(h)
    h = layers.LSTM(4, name="lstm")(h)
    model = keras.Model(x, h)
    assert findings(model) == {("MC102", "lstm")}  # no mask reaches the LSTM


def test_group_normalization_claims_masking_but_leaks() -> None:
    x = tokens()
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.GroupNormalization(groups=2, name="gn")(h)
    model = keras.Model(x, layers.LSTM(4)(h))
    assert findings(model) == {("MC105", "gn")}


def test_mask_dropped_after_masked_lstm_leaks_through_amount_only() -> None:
    x = tokens()
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.LSTM(8, return_sequences=True)(h)
    h = layers.Conv1D(4, 3, padding="same", name="conv")(h)
    model = keras.Model(x, layers.GlobalMaxPooling1D()(h))
    found = [f for f in full(model) if f.rule == "MC102"]
    assert [f.layer for f in found] == ["conv"]
    assert "carried state" in found[0].message


def test_nested_model_that_uses_the_mask_is_not_a_false_alarm() -> None:
    inner = keras.Sequential([keras.Input((None, 8)), layers.LSTM(8, return_sequences=True),
                              layers.Dense(3)], name="inner")
    x = tokens()
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    model = keras.Model(x, layers.GlobalAveragePooling1D()(inner(h)))
    assert findings(model) == set()


def test_nested_model_finding_has_path() -> None:
    inner = keras.Sequential([keras.Input((None, 8)), layers.Conv1D(8, 3, padding="same", name="conv")],
                             name="inner")
    x = tokens()
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    model = keras.Model(x, layers.LSTM(4)(inner(h)), name="outer")
    mixing = [f for f in full(model) if f.rule == "MC102"]
    assert [f.path for f in mixing] == [("outer", "inner", "conv")]
    assert ("MC101", "conv") in findings(model)


def test_shared_layer_reports_each_bad_call_once() -> None:
    a, b = tokens("a"), tokens("b")
    emb = layers.Embedding(50, 8, mask_zero=True)
    conv = layers.Conv1D(8, 3, padding="same", name="shared_conv")
    pool = layers.GlobalAveragePooling1D()
    y = layers.Concatenate()([pool(conv(emb(a))), pool(conv(emb(b)))])
    model = keras.Model([a, b], y)
    mixing = [f for f in full(model) if f.rule == "MC102"]
    assert [f.layer for f in mixing] == ["shared_conv", "shared_conv"]


def test_dict_inputs_and_multiple_outputs() -> None:
    inputs = {"words": tokens("words"), "frames": keras.Input((None, 4), name="frames")}
    h = layers.Embedding(50, 4, mask_zero=True)(inputs["words"])
    words = layers.GlobalAveragePooling1D()(h)
    frames = layers.GlobalMaxPooling1D(name="frames_pool")(inputs["frames"])
    model = keras.Model(inputs, {"score": layers.Dense(1)(words),
                                 "other": layers.Dense(1)(frames)})
    assert findings(model) == {("MC102", "frames_pool")}


# --- operations and Python operators ---------------------------------------------------

def test_python_operator_drops_the_mask_silently() -> None:
    x = tokens()
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = h * 2.0
    model = keras.Model(x, layers.LSTM(4, name="lstm")(h))
    assert findings(model) == {("MC101", "multiply"), ("MC102", "lstm")}


def test_ops_cumsum_is_causal() -> None:
    x = keras.Input((None, 4))
    y = keras.ops.cumsum(x, axis=1)
    model = keras.Model(x, y)
    graph = adapt_model(model)
    assert [e.node.name for e in analyze(graph).mixing] == ["cumsum"]
    assert analyze(graph, side=POST).mixing == ()
    assert [e.node.name for e in analyze(graph, side=PRE).mixing] == ["cumsum"]


def test_ops_over_feature_axis_are_pointwise() -> None:
    x = keras.Input((None, 4))
    y = keras.ops.sum(keras.ops.cumsum(x * 2.0, axis=-1), axis=-1)
    model = keras.Model(x, y)
    assert findings(model) == set()


def test_ops_mean_over_time_mixes() -> None:
    x = keras.Input((None, 4))
    model = keras.Model(x, keras.ops.mean(x, axis=1))
    assert findings(model) == {("MC102", "mean")}


def test_first_and_last_position_depend_on_padding_side() -> None:
    x = keras.Input((None, 4))
    first = keras.Model(x, x[:, 0, :])
    last = keras.Model(x, x[:, -1, :])
    assert analyze(adapt_model(first), side=POST).mixing == ()
    assert [e.node.class_name for e in analyze(adapt_model(first), side=PRE).mixing] == ["GetItem"]
    assert [e.node.class_name for e in analyze(adapt_model(last), side=POST).mixing] == ["GetItem"]
    sliced = keras.Model(x, layers.Dense(2)(x[:, 1:, :]))
    assert findings(sliced) == set()


# --- padding side -------------------------------------------------------------------

def test_causal_conv_safe_under_post_padding_only() -> None:
    x = keras.Input((None, 4))
    model = keras.Model(x, layers.Conv1D(4, 3, padding="causal", name="causal")(x))
    graph = adapt_model(model)
    assert analyze(graph, side=POST).mixing == ()
    pre = analyze(graph, side=PRE).mixing
    assert [(e.node.name, e.causal) for e in pre] == [("causal", True)]
    assert findings(model) == {("MC102", "causal")}  # side unknown: reported


# --- explicit masks and keras-hub style models -----------------------------------------

def test_explicit_padding_mask_input_feeds_attention() -> None:
    x = tokens("token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    h = layers.Embedding(50, 16)(x)
    attention_mask = keras.ops.cast(mask[:, None, :], "bool")
    h = layers.MultiHeadAttention(2, 8, name="mha")(h, h, attention_mask=attention_mask)
    y = layers.GlobalAveragePooling1D(name="pool")(h, mask=mask)
    model = keras.Model({"token_ids": x, "padding_mask": mask}, y)
    assert findings(model) == set()


def test_explicit_padding_mask_not_passed_to_pooling() -> None:
    x = tokens("token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    h = layers.Embedding(50, 16)(x)
    attention_mask = keras.ops.cast(mask[:, None, :], "bool")
    h = layers.MultiHeadAttention(2, 8, name="mha")(h, h, attention_mask=attention_mask)
    model = keras.Model({"token_ids": x, "padding_mask": mask},
                        layers.GlobalAveragePooling1D(name="pool")(h))
    assert findings(model) == {("MC102", "pool")}


def test_keras_hub_transformer_encoder_consumes_padding_mask() -> None:
    keras_hub = pytest.importorskip("keras_hub")
    x = tokens("token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    h = keras_hub.layers.TokenAndPositionEmbedding(50, 32, 16)(x)
    h = keras_hub.layers.TransformerEncoder(16, 2, name="encoder")(h, padding_mask=mask)
    pooled = layers.GlobalAveragePooling1D()(h, mask=mask)
    good = keras.Model({"token_ids": x, "padding_mask": mask}, pooled)
    assert findings(good) == set()
    first_token = keras.Model({"token_ids": x, "padding_mask": mask}, h[:, 0, :])
    # reading position 0 is right under post-padding only
    assert {(code, cls) for code, cls in _classes(first_token)} == {("MC102", "GetItem")}
    h2 = keras_hub.layers.TransformerEncoder(16, 2, name="encoder_no_mask")(
        keras_hub.layers.TokenAndPositionEmbedding(50, 32, 16)(x))
    bad = keras.Model(x, h2)
    assert findings(bad) == {("MC102", "encoder_no_mask")}


# --- unknown layers ------------------------------------------------------------------

class Smoother(layers.Layer):
    """A custom layer maskcheck has never seen."""

    def call(self, x):
        return (x + keras.ops.roll(x, 1, axis=1)) / 2.0


def test_unknown_layer_gets_an_info_note_and_no_crash() -> None:
    x = keras.Input((None, 4))
    model = keras.Model(x, Smoother(name="smoother")(x))
    found = full(model)
    assert [(f.rule, f.layer, f.severity.value) for f in found] == [("MC102", "smoother", "info")]
    assert "assumed" in found[0].message
    assert found[0].evidence["assumed"] is True


def test_fixed_length_model_is_clean() -> None:
    x = keras.Input((16,))
    model = keras.Model(x, layers.Dense(1)(layers.Dense(8)(x)))
    assert findings(model) == set()
