"""Differential test: the loss the probes compute is the loss Keras computes (SPEC 4).

For every compiled model of this zoo, `maskcheck.dynamic.base_loss` (the base
group of the loss program, computed exactly as the MC303/MC203 probes compute
it) equals ``model.compute_loss(x=x, y=y, y_pred=model(x), sample_weight=sw)``
on an eager forward pass of the same batch, within 1e-6 relative. A compiled
loss in Keras 3 applies the output tensor's mask, `ignore_class` and sample
weights; a probe that drops any of them compares the wrong loss and reports
padded labels counted where `fit` does not count them (issue 22, part 2).

The zoo covers masked and unmasked outputs, per-step and per-sample outputs,
`ignore_class`, per-step and per-sample weights, multi-output models (list and
dict), a custom `Loss` class, a loss function, an overridden `compute_loss`,
weight regularizers, Sequential and subclassed models, pre-padding, and tiny
keras-hub TransformerDecoder/TransformerEncoder models (the `kerashub` group).
Both loss programs are exercised: the compiled loss on the inference
predictions (Keras layers only) and the full program (custom code).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from maskcheck.dynamic import base_loss

V, D, T, B = 20, 4, 8, 4  # vocabulary, width, length, batch: tiny, so the zoo stays fast
LENGTHS = (8, 5, 3, 6)
L = keras.layers


@pytest.fixture(autouse=True)
def _seeded_weights():
    keras.utils.set_random_seed(1234)


# --------------------------------------------------------------------------- batches


def _mask(padding: str = "post") -> np.ndarray:
    mask = np.zeros((B, T), bool)
    for i, n in enumerate(LENGTHS):
        if padding == "post":
            mask[i, :n] = True
        else:
            mask[i, T - n:] = True
    return mask


def _tokens(padding: str = "post") -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.where(_mask(padding), rng.integers(1, V, (B, T)), 0).astype("int32")


def _frames(features: int = 3, padding: str = "post") -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.where(_mask(padding)[..., None], rng.normal(size=(B, T, features)), 0.0).astype("float32")


def _step_labels(classes: int, pad: int = 0, padding: str = "post") -> np.ndarray:
    rng = np.random.default_rng(2)
    return np.where(_mask(padding), rng.integers(1, classes, (B, T)), pad).astype("int32")


def _sample_labels(classes: int) -> np.ndarray:
    return np.random.default_rng(3).integers(0, classes, (B,)).astype("int32")


def _step_weights(padding: str = "post") -> np.ndarray:
    rng = np.random.default_rng(4)
    return (_mask(padding) * rng.uniform(0.5, 2.0, (B, T))).astype("float32")


def _sample_weights() -> np.ndarray:
    return np.array([1.0, 0.5, 2.0, 0.25], "float32")


# --------------------------------------------------------------------------- the zoo
# Each entry builds (model, x, y, sample_weight, padding).


def _tagger(mask_zero: bool = True, rnn: str = "lstm", logits: bool = False):
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D, mask_zero=mask_zero)(x)
    cell = {"lstm": L.LSTM, "gru": L.GRU}[rnn]
    h = L.Bidirectional(cell(D, return_sequences=True))(h) if rnn == "lstm" else cell(D, return_sequences=True)(h)
    y = L.Dense(5, activation=None if logits else "softmax")(h)
    return keras.Model(x, y)


def masked_lstm_tagger():
    m = _tagger(logits=True)
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m, _tokens(), _step_labels(5), None, "post"


def masked_tagger_string_loss():
    m = _tagger(rnn="gru")
    m.compile("adam", "sparse_categorical_crossentropy")
    return m, _tokens(), _step_labels(5), None, "post"


def masked_tagger_pre_padding():
    m = _tagger(rnn="gru")
    m.compile("adam", "sparse_categorical_crossentropy")
    return m, _tokens("pre"), _step_labels(5, padding="pre"), None, "pre"


def masked_tagger_step_weights():
    m = _tagger(rnn="gru")
    m.compile("adam", "sparse_categorical_crossentropy")
    return m, _tokens(), _step_labels(5), _step_weights(), "post"


def unmasked_conv_tagger():
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D)(x)
    h = L.Conv1D(D, 3, padding="same")(h)
    m = keras.Model(x, L.Dense(5, activation="softmax")(h))
    m.compile("adam", "sparse_categorical_crossentropy")
    return m, _tokens(), _step_labels(5), None, "post"


def unmasked_tagger_ignore_class():
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D)(x)
    h = L.Conv1D(D, 3, padding="causal")(h)
    m = keras.Model(x, L.Dense(5)(h))
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    return m, _tokens(), _step_labels(5), None, "post"


def masked_tagger_ignore_class_minus_100():
    m = _tagger(rnn="gru", logits=True)
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-100))
    return m, _tokens(), _step_labels(5, pad=-100), None, "post"


def unmasked_tagger_step_weights():
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D)(x)
    m = keras.Model(x, L.Dense(5, activation="softmax")(L.Conv1D(D, 3, padding="same")(h)))
    m.compile("adam", "sparse_categorical_crossentropy")
    return m, _tokens(), _step_labels(5), _step_weights(), "post"


def one_hot_masked_tagger():
    m = _tagger(rnn="gru")
    m.compile("adam", "categorical_crossentropy")
    y = np.eye(5, dtype="float32")[_step_labels(5)] * _mask()[..., None]
    return m, _tokens(), y, None, "post"


def masked_regression_frames():
    x = keras.Input((None, 3))
    h = L.Masking(0.0)(x)
    h = L.GRU(D, return_sequences=True)(h)
    m = keras.Model(x, L.Dense(1)(h))
    m.compile("adam", "mse")
    y = np.random.default_rng(5).normal(size=(B, T, 1)).astype("float32")
    return m, _frames(), y, None, "post"


def masked_regression_huber_weights():
    x = keras.Input((None, 3))
    h = L.Masking(0.0)(x)
    m = keras.Model(x, L.Dense(2)(L.LSTM(D, return_sequences=True)(h)))
    m.compile("adam", keras.losses.Huber())
    y = np.random.default_rng(6).normal(size=(B, T, 2)).astype("float32")
    return m, _frames(), y, _step_weights(), "post"


def unmasked_frames_mae():
    x = keras.Input((None, 3))
    h = L.Conv1D(D, 3, padding="same")(x)
    m = keras.Model(x, L.Dense(1)(h))
    m.compile("adam", "mae")
    y = np.random.default_rng(7).normal(size=(B, T, 1)).astype("float32")
    return m, _frames(), y, None, "post"


def per_sample_pooled_classifier():
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D, mask_zero=True)(x)
    m = keras.Model(x, L.Dense(3, activation="softmax")(L.GlobalAveragePooling1D()(h)))
    m.compile("adam", "sparse_categorical_crossentropy")
    return m, _tokens(), _sample_labels(3), None, "post"


def per_sample_weights_classifier():
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D, mask_zero=True)(x)
    m = keras.Model(x, L.Dense(3)(L.LSTM(D)(h)))
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m, _tokens(), _sample_labels(3), _sample_weights(), "post"


def per_sample_binary():
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D, mask_zero=True)(x)
    m = keras.Model(x, L.Dense(1, activation="sigmoid")(L.GRU(D)(h)))
    m.compile("adam", "binary_crossentropy")
    return m, _tokens(), _sample_labels(2).astype("float32")[:, None], None, "post"


def sequential_tagger():
    m = keras.Sequential([keras.Input((T,), dtype="int32"), L.Embedding(V, D, mask_zero=True),
                          L.GRU(D, return_sequences=True), L.Dense(5, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    return m, _tokens(), _step_labels(5), None, "post"


def masked_attention_tagger():
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D, mask_zero=True)(x)
    h = L.MultiHeadAttention(2, 2)(h, h)
    m = keras.Model(x, L.Dense(5)(h))
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m, _tokens(), _step_labels(5), None, "post"


def explicit_padding_mask_input():
    tokens = keras.Input((T,), dtype="int32", name="tokens")
    pad = keras.Input((T,), dtype="bool", name="padding_mask")
    h = L.Embedding(V, D)(tokens)
    h = L.MultiHeadAttention(2, 2)(h, h, attention_mask=pad[:, None, :])
    m = keras.Model([tokens, pad], L.Dense(5)(h))
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    x = [_tokens(), _mask()]
    return m, x, _step_labels(5), None, "post"


def multi_output_list():
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D, mask_zero=True)(x)
    seq = L.GRU(D, return_sequences=True)(h)
    tags = L.Dense(5, activation="softmax", name="tags")(seq)
    cls = L.Dense(3, activation="softmax", name="cls")(L.GlobalAveragePooling1D()(seq))
    m = keras.Model(x, [tags, cls])
    m.compile("adam", ["sparse_categorical_crossentropy", "sparse_categorical_crossentropy"],
              loss_weights=[1.0, 0.5])
    return m, _tokens(), [_step_labels(5), _sample_labels(3)], None, "post"


def multi_output_dict_weights():
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D)(x)
    seq = L.Conv1D(D, 3, padding="same")(h)
    tags = L.Dense(5, activation="softmax", name="tags")(seq)
    score = L.Dense(1, name="score")(L.GlobalMaxPooling1D()(seq))
    m = keras.Model(x, {"tags": tags, "score": score})
    m.compile("adam", {"tags": "sparse_categorical_crossentropy", "score": "mse"})
    y = {"tags": _step_labels(5), "score": np.random.default_rng(8).normal(size=(B, 1)).astype("float32")}
    sw = {"tags": _step_weights(), "score": _sample_weights()}
    return m, _tokens(), y, sw, "post"


class MaskedSparseCE(keras.losses.Loss):
    """A custom Loss class: Keras still applies the output mask around it."""

    def call(self, y_true, y_pred):
        return keras.ops.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


def custom_loss_class():
    m = _tagger(rnn="gru", logits=True)
    m.compile("adam", MaskedSparseCE())
    return m, _tokens(), _step_labels(5), None, "post"


def custom_loss_class_unmasked_weights():
    x = keras.Input((T,), dtype="int32")
    h = L.Conv1D(D, 3, padding="same")(L.Embedding(V, D)(x))
    m = keras.Model(x, L.Dense(5)(h))
    m.compile("adam", MaskedSparseCE())
    return m, _tokens(), _step_labels(5), _step_weights(), "post"


def loss_function():
    def tag_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.square(y_pred - keras.ops.cast(y_true, y_pred.dtype)), axis=-1)

    x = keras.Input((None, 3))
    h = L.GRU(D, return_sequences=True)(L.Masking(0.0)(x))
    m = keras.Model(x, L.Dense(2)(h))
    m.compile("adam", tag_loss)
    y = np.random.default_rng(9).normal(size=(B, T, 2)).astype("float32")
    return m, _frames(), y, None, "post"


class MaskedMeanModel(keras.Model):
    """Functional subclass that computes its own masked loss (as public LM code does)."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        per_step = keras.ops.sparse_categorical_crossentropy(y, y_pred, from_logits=True)
        valid = keras.ops.cast(keras.ops.not_equal(x, 0), per_step.dtype)
        return keras.ops.sum(per_step * valid) / keras.ops.maximum(keras.ops.sum(valid), 1.0)


def overridden_compute_loss():
    x = keras.Input((T,), dtype="int32")
    h = L.GRU(D, return_sequences=True)(L.Embedding(V, D, mask_zero=True)(x))
    m = MaskedMeanModel(x, L.Dense(5)(h))
    m.compile("adam")
    return m, _tokens(), _step_labels(5), None, "post"


class SubclassedTagger(keras.Model):
    def __init__(self):
        super().__init__()
        self.embed = L.Embedding(V, D, mask_zero=True)
        self.rnn = L.GRU(D, return_sequences=True)
        self.out = L.Dense(5)

    def call(self, inputs):
        return self.out(self.rnn(self.embed(inputs)))


def subclassed_model():
    m = SubclassedTagger()
    m(_tokens())
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m, _tokens(), _step_labels(5), None, "post"


def weight_regularized():
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D, mask_zero=True, embeddings_regularizer="l2")(x)
    h = L.GRU(D, return_sequences=True, kernel_regularizer=keras.regularizers.L2(0.01))(h)
    m = keras.Model(x, L.Dense(5, activation="softmax", kernel_regularizer="l1")(h))
    m.compile("adam", "sparse_categorical_crossentropy")
    return m, _tokens(), _step_labels(5), None, "post"


def custom_masking_layer():
    @keras.saving.register_keras_serializable("mctest_parity")
    class Scale(L.Layer):
        """A custom layer that keeps the mask: its code sends the probes the full program."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs):
            return inputs * 2.0

    x = keras.Input((T,), dtype="int32")
    h = Scale()(L.GRU(D, return_sequences=True)(L.Embedding(V, D, mask_zero=True)(x)))
    m = keras.Model(x, L.Dense(5)(h))
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m, _tokens(), _step_labels(5), _step_weights(), "post"


def ctc_compiled_unmasked():
    """keras.losses.CTC on an unmasked output (the Keras ASR example's shape, shrunk)."""
    x = keras.Input((None, 3))
    h = L.Bidirectional(L.GRU(D, return_sequences=True))(L.Conv1D(D, 3, padding="same")(x))
    m = keras.Model(x, L.Dense(6, activation="softmax")(h))
    m.compile("adam", keras.losses.CTC())
    y = np.array([[1, 2, 3, 0], [2, 2, 0, 0], [4, 0, 0, 0], [1, 3, 0, 0]], "int32")
    return m, _frames(), y, None, "post"


ZOO = [masked_lstm_tagger, masked_tagger_string_loss, masked_tagger_pre_padding,
       masked_tagger_step_weights, unmasked_conv_tagger, unmasked_tagger_ignore_class,
       masked_tagger_ignore_class_minus_100, unmasked_tagger_step_weights, one_hot_masked_tagger,
       masked_regression_frames, masked_regression_huber_weights, unmasked_frames_mae,
       per_sample_pooled_classifier, per_sample_weights_classifier, per_sample_binary,
       sequential_tagger, masked_attention_tagger, explicit_padding_mask_input,
       multi_output_list, multi_output_dict_weights, custom_loss_class,
       custom_loss_class_unmasked_weights, loss_function, overridden_compute_loss,
       subclassed_model, weight_regularized, custom_masking_layer, ctc_compiled_unmasked]


# --------------------------------------------------------------------------- keras-hub


def _hub():
    return pytest.importorskip("keras_hub")


def hub_decoder_lm():
    hub = _hub()
    x = keras.Input((T,), dtype="int32")
    h = hub.layers.TokenAndPositionEmbedding(V, T, D, mask_zero=True)(x)
    h = hub.layers.TransformerDecoder(intermediate_dim=8, num_heads=2)(h)
    m = keras.Model(x, L.Dense(V)(h))
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m, _tokens(), _step_labels(V), None, "post"


def hub_decoder_lm_ignore_class_weights():
    hub = _hub()
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D, mask_zero=True)(x)
    h = hub.layers.TransformerDecoder(intermediate_dim=8, num_heads=2)(h)
    m = keras.Model(x, L.Dense(V)(h))
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    return m, _tokens(), _step_labels(V), _step_weights(), "post"


def hub_encoder_classifier():
    hub = _hub()
    tokens = keras.Input((T,), dtype="int32", name="token_ids")
    pad = keras.Input((T,), dtype="bool", name="padding_mask")
    h = L.Embedding(V, D)(tokens)
    h = hub.layers.TransformerEncoder(intermediate_dim=8, num_heads=2)(h, padding_mask=pad)
    m = keras.Model([tokens, pad], L.Dense(3)(h[:, 0, :]))
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m, [_tokens(), _mask()], _sample_labels(3), _sample_weights(), "post"


def hub_encoder_tagger():
    hub = _hub()
    x = keras.Input((T,), dtype="int32")
    h = hub.layers.TokenAndPositionEmbedding(V, T, D, mask_zero=True)(x)
    h = hub.layers.TransformerEncoder(intermediate_dim=8, num_heads=2)(h)
    m = keras.Model(x, L.Dense(5, activation="softmax")(h))
    m.compile("adam", "sparse_categorical_crossentropy")
    return m, _tokens(), _step_labels(5), None, "post"


HUB_ZOO = [hub_decoder_lm, hub_decoder_lm_ignore_class_weights, hub_encoder_classifier,
           hub_encoder_tagger]


# --------------------------------------------------------------------------- the test


def _keras_loss(model, x, y, sw):
    """What fit computes on the batch: compute_loss on an eager forward pass."""
    y_pred = model(x, training=False)
    return float(np.asarray(model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw)))


def _assert_parity(build):
    model, x, y, sw, padding = build()
    expected = _keras_loss(model, x, y, sw)
    got = base_loss(model, x, y, sw, lengths=list(LENGTHS), padding=padding)
    assert np.isfinite(expected), expected
    assert abs(got - expected) <= 1e-6 * max(abs(expected), 1e-12), (build.__name__, got, expected)


def test_the_zoo_is_large_enough():
    assert len(ZOO) + len(HUB_ZOO) >= 25 and len(ZOO) >= 25


@pytest.mark.parametrize("build", ZOO, ids=lambda f: f.__name__)
def test_base_loss_equals_keras(build):
    _assert_parity(build)


@pytest.mark.kerashub
@pytest.mark.parametrize("build", HUB_ZOO, ids=lambda f: f.__name__)
def test_base_loss_equals_keras_hub(build):
    _assert_parity(build)


# --------------------------------------------------------------------------- verdicts it fixes


def _tagged_data():
    y = _step_labels(5)
    return _tokens(), y


def _bilstm_tagger(mask_zero: bool):
    x = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D, mask_zero=mask_zero)(x)
    h = L.Bidirectional(L.LSTM(D, return_sequences=True))(h)
    m = keras.Model(x, L.Dense(5, activation="softmax")(h))
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def test_masked_tagger_with_data_is_clean():
    """The loss sees the mask that reaches the output, as in fit: no false MC402."""
    import maskcheck

    report = maskcheck.check(_bilstm_tagger(True), mode="all", data=_tagged_data())
    assert not [f for f in report.all_findings if f.severity.value == "error"], report.findings


def test_unmasked_tagger_with_data_counts_padded_labels():
    import maskcheck

    report = maskcheck.check(_bilstm_tagger(False), mode="all", data=_tagged_data())
    assert [f for f in report.all_findings if f.rule == "MC402"], report.all_findings


def _hub_lm(mask_zero: bool):
    hub = _hub()
    x = keras.Input((T,), dtype="int32")
    h = hub.layers.TokenAndPositionEmbedding(V, T, D, mask_zero=mask_zero)(x)
    h = hub.layers.TransformerDecoder(intermediate_dim=8, num_heads=2)(h)
    m = keras.Model(x, L.Dense(V)(h))
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m


@pytest.mark.kerashub
def test_hub_decoder_lm_post_padding_is_clean():
    """TokenAndPositionEmbedding attaches its mask inside call: the probe's perturbed
    embedding output keeps it, so the loss does not count padded labels (no false MC303)."""
    import maskcheck

    report = maskcheck.check(_hub_lm(True), mode="all", padding="post")
    assert not [f for f in report.all_findings if f.severity.value == "error"], report.findings


@pytest.mark.kerashub
def test_hub_decoder_lm_without_mask_counts_padded_labels():
    import maskcheck

    report = maskcheck.check(_hub_lm(False), mode="all", padding="post")
    assert [f for f in report.all_findings if f.rule in ("MC201", "MC303")
            and f.evidence.get("what") == "labels"], report.findings


# --------------------------------------------------------------------------- the zoo, checked
# Opt-in with the differential group (about 25 s): every zoo model is checked in mode "all";
# none becomes a target error, and only the models whose loss counts padding get an error.

LEAKING = {"unmasked_conv_tagger", "unmasked_tagger_step_weights", "unmasked_frames_mae",
           "multi_output_dict_weights", "custom_loss_class_unmasked_weights",
           "ctc_compiled_unmasked"}


@pytest.mark.differential
@pytest.mark.parametrize("build", ZOO, ids=lambda f: f.__name__)
def test_zoo_verdicts(build):
    import maskcheck

    model, _, _, _, padding = build()
    report = maskcheck.check(model, mode="all", padding=padding)
    entry = report.to_dict()["models"][0]
    assert entry["status"] != "error", entry["error"]
    errors = [f for f in report.all_findings if f.severity.value == "error"]
    if build.__name__ in LEAKING:
        assert any(f.rule in ("MC201", "MC303") for f in errors), report.findings
    else:
        assert not errors, report.findings
