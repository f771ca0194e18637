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
from maskcheck.static.adapter import adapt_model
from maskcheck.static.dataflow import POST, PRE, analyze

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _fresh_names():
    """Auto-generated names (`multiply`, `cumsum`) restart in every test."""
    keras.backend.clear_session()


def findings(model, severity: str | None = None) -> set[tuple[str, str]]:
    report = check_model(model, target=model.name, config=Config.from_values(mode="static"))
    return {(f.rule, f.layer) for f in report.all_findings if f.rule != "MC109"
            and (severity is None or f.severity.value == severity)}


def full(model):
    """Static findings, less MC109: the masked GlobalAveragePooling1D heads these models use
    to test other rules divide by the mask's sum (MC109 has its own examples and tests)."""
    report = check_model(model, target=model.name, config=Config.from_values(mode="static"))
    return tuple(f for f in report.all_findings if f.rule != "MC109")


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
    # the LSTM after the conv has no mask left: under pre-padding it reads padding first,
    # a culprit of its own (making the conv mask-aware would leave it leaking)
    assert findings(model) == {("MC101", "conv"), ("MC102", "conv"), ("MC102", "lstm")}


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
    # the average over padded steps is a culprit of its own, as the conv is
    assert {(f.rule, f.layer) for f in found} == {("MC102", "conv"),
                                                 ("MC102", "global_average_pooling1d")}
    assert found[0].evidence["axis"] == 1


def test_padded_images_conv2d_gap2d() -> None:
    x = keras.Input((None, None, 3))
    h = layers.Conv2D(4, 3, name="conv2d")(x)
    model = keras.Model(x, layers.GlobalAveragePooling2D()(h))
    assert findings(model) == {("MC102", "conv2d"), ("MC102", "global_average_pooling2d")}


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


def _two_output_tagger():
    x = keras.Input((None, 4), name="frames")
    tags = layers.Dense(3, name="tags")(x)
    phones = layers.Dense(5, name="phones")(x)
    return keras.Model(x, [tags, phones])


def test_compile_lists_apply_per_output() -> None:
    model = _two_output_tagger()
    model.compile(loss=["sparse_categorical_crossentropy",
                        keras.losses.SparseCategoricalCrossentropy(ignore_class=0)])
    assert findings(model) == {("MC201", "tags")}


def test_compile_dicts_loss_weights_and_weighted_metrics() -> None:
    model = _two_output_tagger()
    model.compile(loss={"tags": "sparse_categorical_crossentropy",
                        "phones": "sparse_categorical_crossentropy"},
                  loss_weights={"tags": 0.0, "phones": 1.0},
                  metrics={"phones": ["accuracy"]},
                  weighted_metrics={"tags": ["accuracy"]})
    assert findings(model) == {("MC201", "phones"), ("MC202", "phones")}
    graph = adapt_model(model)
    tags = graph.output_names.index("tags")
    assert graph.losses[tags][0]["weight"] == 0.0
    assert graph.metrics[tags][0]["weighted"] is True


def test_uncompiled_model_has_no_loss_findings() -> None:
    assert findings(_two_output_tagger()) == set()


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
    # the LSTM after the nested conv gets no mask: a culprit of its own (pre-padding)
    assert [f.path for f in mixing] == [("outer", "inner", "conv"), ("outer", "lstm")]
    assert ("MC101", "conv") in findings(model)


def test_shared_layer_reports_each_bad_call_once() -> None:
    a, b = tokens("a"), tokens("b")
    emb = layers.Embedding(50, 8, mask_zero=True)
    conv = layers.Conv1D(8, 3, padding="same", name="shared_conv")
    pool = layers.GlobalAveragePooling1D()
    y = layers.Concatenate()([pool(conv(emb(a))), pool(conv(emb(b)))])
    model = keras.Model([a, b], y)
    mixing = [f for f in full(model) if f.rule == "MC102"]  # primaries and related ones
    assert sorted(f.layer for f in mixing) == ["global_average_pooling1d"] * 2 + ["shared_conv"] * 2
    # one layer, one cause: the second call's finding is folded under the first
    report = check_model(model, target=model.name, config=Config.from_values(mode="static"))
    assert sorted(f.layer for f in report.findings if f.rule == "MC102") == [
        "global_average_pooling1d", "shared_conv"]


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


def test_declared_padding_and_mask_inputs() -> None:
    x = keras.Input((20, 4), name="frames")
    flags = keras.Input((20,), dtype="int32", name="valid")
    h = layers.Conv1D(4, 3, padding="same", name="conv")(x)
    model = keras.Model([x, flags], layers.GlobalAveragePooling1D(name="pool")(h, mask=flags))
    graph = adapt_model(model)
    assert analyze(graph).mixing == ()  # fixed length, nothing declared
    declared = analyze(graph, padded=(("frames", 1),), mask_inputs=(("frames", "valid"),))
    assert [e.node.name for e in declared.mixing] == ["conv"]
    assert "valid" in declared.used_masks


def test_flip_without_a_mask_is_where_padding_reaches_valid_positions() -> None:
    """Reversing time with no mask to follow it puts padding where the valid steps were,
    on either side (the probes localise the leak at the flip too); the causal conv after
    it is not blamed again."""
    x = keras.Input((None, 4))
    h = layers.Conv1D(4, 3, padding="causal", name="causal")(keras.ops.flip(x, axis=1))
    graph = adapt_model(keras.Model(x, h))
    assert [e.node.name for e in analyze(graph, side=POST).mixing] == ["flip"]
    assert [e.node.name for e in analyze(graph, side=PRE).mixing] == ["flip"]


def test_mask_applied_by_hand_counts_as_used() -> None:
    x = tokens("token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    h = layers.Embedding(50, 8)(x) * keras.ops.cast(mask, "float32")[:, :, None]
    model = keras.Model({"token_ids": x, "padding_mask": mask}, layers.Dense(2)(h))
    assert findings(model) == set()


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


@pytest.mark.kerashub
@pytest.mark.kerashub
def test_keras_hub_transformer_encoder_consumes_padding_mask() -> None:
    keras_hub = pytest.importorskip("keras_hub")
    x = tokens("token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    h = keras_hub.layers.TokenAndPositionEmbedding(50, 32, 16)(x)
    h = keras_hub.layers.TransformerEncoder(16, 2, name="encoder")(h, padding_mask=mask)
    pooled = layers.GlobalAveragePooling1D()(h, mask=mask)
    good = keras.Model({"token_ids": x, "padding_mask": mask}, pooled)
    # the absolute positions are noted (info: the padding side is unknown), nothing else
    assert {(code, layer) for code, layer in findings(good) if code != "MC108"} == set()
    assert findings(good, "error") == findings(good, "warning") == set()
    first_token = keras.Model({"token_ids": x, "padding_mask": mask}, h[:, 0, :])
    # reading position 0 is right under post-padding only
    assert {(code, cls) for code, cls in _classes(first_token)} == {
        ("MC102", "GetItem"), ("MC108", "TokenAndPositionEmbedding")}
    h2 = keras_hub.layers.TransformerEncoder(16, 2, name="encoder_no_mask")(
        keras_hub.layers.TokenAndPositionEmbedding(50, 32, 16)(x))
    bad = keras.Model(x, h2)
    assert {f for f in findings(bad) if f[0] != "MC108"} == {("MC102", "encoder_no_mask")}


@pytest.mark.kerashub
@pytest.mark.kerashub
def test_keras_hub_encoder_uses_the_implicit_embedding_mask() -> None:
    """keras-hub layers read inputs._keras_mask themselves (their call takes
    padding_mask, not mask): Keras's warning that they drop it is a false alarm."""
    keras_hub = pytest.importorskip("keras_hub")
    x = tokens("token_ids")
    h = layers.Embedding(50, 16, mask_zero=True)(x)
    h = keras_hub.layers.TransformerEncoder(16, 2)(h)
    model = keras.Model(x, layers.GlobalAveragePooling1D()(h))
    assert findings(model) == set()


@pytest.mark.kerashub
@pytest.mark.kerashub
def test_keras_hub_token_and_position_embedding_mask_exists_at_run_time() -> None:
    """keras-hub 0.32: TokenAndPositionEmbedding(mask_zero=True) shows no mask on the
    symbolic graph but attaches one at run time (tests/test_hub_semantics.py measures
    it), so the encoder is masked; only the absolute positions are noted."""
    keras_hub = pytest.importorskip("keras_hub")
    x = tokens("token_ids")
    h = keras_hub.layers.TokenAndPositionEmbedding(50, 32, 16, mask_zero=True, name="tpe")(x)
    h = keras_hub.layers.TransformerEncoder(16, 2, name="encoder")(h)
    model = keras.Model(x, layers.GlobalAveragePooling1D()(h))
    found = full(model)
    assert {(f.rule, f.layer, f.severity.value) for f in found} == {("MC108", "tpe", "info")}


# --- unknown layers ------------------------------------------------------------------

class Smoother(layers.Layer):
    """A custom layer maskcheck has never seen."""

    def call(self, x):
        return (x + keras.ops.roll(x, 1, axis=1)) / 2.0


def test_custom_layer_is_read_op_by_op() -> None:
    """The op-level reader sees the roll over time: an error, not an assumption."""
    x = keras.Input((None, 4))
    model = keras.Model(x, Smoother(name="smoother")(x))
    found = full(model)
    assert [(f.rule, f.layer, f.severity.value) for f in found] == [("MC102", "smoother", "error")]
    assert "assumed_semantics" not in found[0].evidence


class Opaque(layers.Layer):
    """A custom layer whose values go through Python: no operation to read."""

    def call(self, x):
        import tensorflow as tf

        y = tf.numpy_function(lambda v: v, [x], x.dtype, stateful=False)
        y.set_shape(x.shape)
        return y


def test_unreadable_layer_gets_an_info_note_and_no_crash() -> None:
    x = keras.Input((None, 4))
    model = keras.Model(x, Opaque(name="opaque")(x))
    found = full(model)
    assert [(f.rule, f.layer, f.severity.value) for f in found] == [("MC102", "opaque", "info")]
    assert "assumed" in found[0].message
    assert found[0].evidence["assumed_semantics"] is True


class Encoder(keras.Model):
    """A subclassed model used as a layer: it has no graph to inline."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(4)

    def call(self, x):
        return self.dense(x)


class ConvEncoder(keras.Model):
    """A subclassed model whose Conv1D mixes neighbouring steps."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv1D(4, 3, padding="same")

    def call(self, x):
        return self.conv(x)


def test_subclassed_model_inside_a_functional_one_is_read_not_crashed() -> None:
    """No graph to inline, so its call is read: Dense keeps positions apart, Conv1D does not."""
    x = keras.Input((None, 4))
    assert full(keras.Model(x, Encoder(name="encoder")(x))) == ()
    assert [(f.rule, f.layer, f.severity.value)
            for f in full(keras.Model(x, ConvEncoder(name="encoder")(x)))] == [
        ("MC102", "encoder", "error")]


def test_permute_moves_the_padded_axis_under_dense() -> None:
    x = keras.Input((12, 4))
    h = layers.Masking()(x)
    h = layers.Permute((2, 1), name="permute")(h)
    model = keras.Model(x, layers.Dense(3, name="dense_over_time")(h))
    assert ("MC102", "dense_over_time") in findings(model)


def test_merging_two_independently_masked_sequences() -> None:
    a, b = tokens("a"), tokens("b")
    ea = layers.Embedding(50, 4, mask_zero=True)(a)
    eb = layers.Embedding(50, 4, mask_zero=True)(b)
    model = keras.Model([a, b], layers.LSTM(4)(layers.Add(name="add")([ea, eb])))
    assert findings(model) == {("MC103", "add")}


def test_add_drops_the_mask_when_one_input_has_none() -> None:
    """Keras 3.15 merges return no mask unless every input has one (BERT-style
    token + segment embeddings lose the token mask); not a shape mismatch."""
    ids, segments = tokens("token_ids"), tokens("segment_ids")
    h = layers.Add(name="add")([layers.Embedding(50, 4, mask_zero=True)(ids),
                                layers.Embedding(2, 4)(segments)])
    model = keras.Model([ids, segments], layers.LSTM(4, name="lstm")(h))
    assert findings(model) == {("MC101", "add"), ("MC102", "lstm")}


def test_nested_add_drops_the_mask_like_keras() -> None:
    a, b = keras.Input((None, 4)), keras.Input((None, 4))
    inner = keras.Model([a, b], layers.Add(name="inner_add")([a, b]), name="inner")
    x = tokens()
    masked = layers.Embedding(50, 4, mask_zero=True)(x)
    plain = layers.Embedding(50, 4)(x)
    model = keras.Model(x, layers.LSTM(4, name="lstm")(inner([masked, plain])))
    assert findings(model) == {("MC101", "inner_add"), ("MC102", "lstm")}


def test_style_guide_flatten_example() -> None:
    x = keras.Input((10,), dtype="int32")
    h = layers.Embedding(100, 8, mask_zero=True)(x)
    model = keras.Model(x, layers.Flatten(name="flat")(h))
    assert findings(model) == {("MC101", "flat"), ("MC102", "flat")}


def test_graph_consumers_index() -> None:
    x = keras.Input((None, 4))
    h = layers.Dense(4, name="a")(x)
    model = keras.Model(x, [layers.Dense(1, name="b")(h), layers.Dense(1, name="c")(h)])
    graph = adapt_model(model)
    producer = next(n for n in graph.nodes if n.name == "a")
    assert [n.name for n in graph.consumers(producer.outputs[0])] == ["b", "c"]
    assert graph.consumers(graph.outputs[0]) == ()


def test_fixed_length_model_is_clean() -> None:
    x = keras.Input((16,))
    model = keras.Model(x, layers.Dense(1)(layers.Dense(8)(x)))
    assert findings(model) == set()


# --- any stack of everyday layers: no crash, deterministic, findings at real layers ----

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_BLOCKS = {
    "conv": lambda: layers.Conv1D(4, 3, padding="same"),
    "causal": lambda: layers.Conv1D(4, 3, padding="causal"),
    "dense": lambda: layers.Dense(4),
    "lstm": lambda: layers.LSTM(4, return_sequences=True),
    "bilstm": lambda: layers.Bidirectional(layers.GRU(2, return_sequences=True)),
    "bn": lambda: layers.BatchNormalization(),
    "gn": lambda: layers.GroupNormalization(groups=2),
    "ln": lambda: layers.LayerNormalization(),
    "pool": lambda: layers.MaxPooling1D(3, strides=1, padding="same"),
    "masking": lambda: layers.Masking(),
    "dropout": lambda: layers.Dropout(0.1),
    "einsum": lambda: layers.EinsumDense("abc,cd->abd", (None, 4)),
}
_HEADS = {"gap": layers.GlobalAveragePooling1D, "gmp": layers.GlobalMaxPooling1D,
          "tags": lambda: layers.Dense(3)}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masked=st.booleans(), blocks=st.lists(st.sampled_from(sorted(_BLOCKS)), max_size=4),
       head=st.sampled_from(sorted(_HEADS)))
def test_any_layer_stack_is_analysed(masked: bool, blocks: list[str], head: str) -> None:
    keras.backend.clear_session()
    if masked:
        x = tokens()
        h = layers.Embedding(20, 4, mask_zero=True)(x)
    else:
        x = h = keras.Input((None, 4))
    for block in blocks:
        h = _BLOCKS[block]()(h)
    model = keras.Model(x, _HEADS[head]()(h))
    first, second = full(model), full(model)
    assert first == second
    names = {layer.name for layer in model.layers} | {op.name for op in model.operations}
    assert all(f.layer in names for f in first)
    if not blocks and head == "gap" and masked:
        assert first == ()


# --- MC203 statically: loss code read op by op ---------------------------------------

class _DelegatingTagger(keras.Model):
    """A compute_loss that hands over to Keras: the compiled loss applies the mask."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)


class _UnmaskedTagger(keras.Model):
    """A compute_loss that averages every position itself, padded ones included."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        per_step = keras.losses.sparse_categorical_crossentropy(y, y_pred, from_logits=True)
        return keras.ops.mean(per_step)


def _masked_tagger(cls):
    x = tokens("tokens")
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    model = cls(x, layers.Dense(5, name="tags")(layers.LSTM(8, return_sequences=True)(h)))
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_custom_compute_loss_is_read_statically() -> None:
    bad = [(f.rule, f.layer) for f in full(_masked_tagger(_UnmaskedTagger)) if f.rule == "MC203"]
    assert bad == [("MC203", "tags")]
    assert not [f for f in full(_masked_tagger(_DelegatingTagger)) if f.rule == "MC203"]


# --- reversed, shifted and zeroed padding (the differential test's disagreements) ------

def _static(model, side):
    report = check_model(model, target=model.name, config=Config.from_values(mode="static",
                                                                             padding=side))
    return {(f.rule, f.layer) for f in report.all_findings if f.severity.value != "info"
            and f.rule != "MC109"}


def test_backward_rnn_passing_its_mask_is_a_shape_mismatch() -> None:
    """go_backwards + return_sequences: outputs in reversed order, the mask passed on as is."""
    x = tokens()
    h = layers.Embedding(50, 8, mask_zero=True)(x)
    h = layers.LSTM(8, return_sequences=True, go_backwards=True, name="backward")(h)
    model = keras.Model(x, layers.Dense(3)(h))
    for side in ("post", "pre"):
        assert _static(model, side) == {("MC103", "backward")}


def test_backward_rnn_without_a_mask_misplaces_padding_on_both_sides() -> None:
    x = keras.Input((None, 4))
    h = layers.GRU(8, return_sequences=True, go_backwards=True, name="backward")(x)
    model = keras.Model(x, layers.Dense(3)(h))
    for side in ("post", "pre"):  # post: read first; pre: now at the end, where valid steps were
        assert ("MC102", "backward") in _static(model, side)


def test_flip_without_a_mask_moves_padding_onto_valid_positions() -> None:
    x = keras.Input((None, 4), name="frames")
    h = keras.ops.flip(layers.Masking()(x), axis=1)
    model = keras.Model(x, layers.Dense(3)(h))
    assert ("MC102", "flip") in _static(model, "post")


def test_causal_pointwise_conv_is_pointwise() -> None:
    x = keras.Input((None, 4))
    model = keras.Model(x, layers.Conv1D(3, 1, padding="causal", name="k1")(x))
    assert _static(model, "pre") == set()


def test_neighbour_smoothing_leaks_under_both_sides() -> None:
    from maskcheck.integrations.zoo import NeighbourSmooth

    x = keras.Input((None, 4), name="frames")
    h = NeighbourSmooth(name="smooth")(layers.Masking()(x))
    model = keras.Model(x, layers.Dense(3)(h))
    for side in ("post", "pre"):
        assert ("MC105", "smooth") in _static(model, side)


def _zeroed_by_hand(build):
    values = keras.Input((None, 4), name="features")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    h = values * keras.ops.cast(padding_mask, "float32")[:, :, None]
    return keras.Model({"features": values, "padding_mask": padding_mask},
                       layers.Dense(2)(build(h)))


@pytest.mark.parametrize("conv", ["same", "causal"])
def test_zeroed_padding_is_no_padding_for_one_convolution(conv) -> None:
    """A convolution reads zeroed padding as its own zero padding: nothing leaks. A second
    one reads the first one's outputs there, which depend on the valid steps nearby."""
    one = _zeroed_by_hand(lambda h: layers.Conv1D(3, 3, padding=conv, name="first")(h))
    two = _zeroed_by_hand(lambda h: layers.Conv1D(3, 3, padding=conv, name="second")(
        layers.Conv1D(3, 3, padding=conv, name="first")(h)))
    for side in ("post", "pre"):
        assert _static(one, side) == set()
        assert ("MC102", "second") in _static(two, side) or conv == "causal" and side == "post"


def test_zeroed_padding_stays_zero_through_read_code_without_a_bias() -> None:
    from maskcheck.integrations.zoo import CausalCumsum

    doubled = _zeroed_by_hand(lambda h: layers.Conv1D(3, 3, padding="same", name="conv")(
        layers.Lambda(lambda t: t * 2.0)(h)))
    biased = _zeroed_by_hand(lambda h: layers.Conv1D(3, 3, padding="same", name="conv")(
        layers.Lambda(lambda t: t + 1.0)(h)))
    summed = _zeroed_by_hand(lambda h: CausalCumsum(name="cumsum")(h))
    for side in ("post", "pre"):
        assert _static(doubled, side) == set()
        assert ("MC102", "conv") in _static(biased, side)
        assert _static(summed, side) == set()


def test_masked_bidirectional_outputs_zeros_at_padded_steps() -> None:
    x = keras.Input((None, 4), name="frames")
    h = layers.Bidirectional(layers.LSTM(3, return_sequences=True))(layers.Masking()(x))
    model = keras.Model(x, layers.Dense(2)(layers.Conv1D(3, 3, padding="same", name="conv")(h)))
    for side in ("post", "pre"):
        assert ("MC102", "conv") not in _static(model, side)
