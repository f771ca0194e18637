"""The dynamic engine on real Keras models: each rule bad and good, localization, merging."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import maskcheck
from maskcheck.config import Config
from maskcheck.engine import check_model
from maskcheck.probe import ProbeError, find_leak, find_loss_leak
from maskcheck.rules import ALL_RULES
from maskcheck.testing import assert_case, uses_keras_hub

DYNAMIC = [r for r in ALL_RULES if r.engine == "dynamic"]


@pytest.fixture(autouse=True)
def _seeded_weights():
    """Same initial weights on every run: a failure reproduces."""
    keras.utils.set_random_seed(1234)


def _dyn(model, *codes, padding="both", data=None, mode="dynamic"):
    config = Config.from_values(mode=mode, select=list(codes), padding=padding)
    return check_model(model, target=model.name, config=config, data=data).findings


def _tagger_conv(padding="same", name="conv"):
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True, name="emb")(x)
    h = keras.layers.Conv1D(8, 3, padding=padding, name=name)(h)
    return keras.Model(x, keras.layers.Dense(3, name="tags")(h))


def _tokens(seed=0, lengths=(10, 5, 1, 7), t=10, pre=False):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 50, (len(lengths), t))
    for i, n in enumerate(lengths):
        if pre:
            x[i, : t - n] = 0
        else:
            x[i, n:] = 0
    return x


@pytest.mark.parametrize("rule", [
    pytest.param(r, marks=[pytest.mark.kerashub] if any(uses_keras_hub(c) for c in r.VALID + r.INVALID)
                 else []) for r in DYNAMIC], ids=lambda r: r.code)
def test_rule_examples(rule):
    for case in rule.VALID + rule.INVALID:
        if uses_keras_hub(case):
            pytest.importorskip("keras_hub")
        assert_case(rule, case)


# --- MC301 ------------------------------------------------------------------------


def test_conv1d_tagger_after_masked_embedding_leaks_at_conv():
    findings = _dyn(_tagger_conv(), "MC301")
    assert [(f.rule, f.layer, f.layer_class) for f in findings] == [("MC301", "conv", "Conv1D")]
    ev = findings[0].evidence
    assert ev["padding"] in ("post", "pre") and ev["max_abs_diff"] > 0
    assert ev["output"] == "tags" and isinstance(ev["sample"], int) and ev["position"] >= 0
    assert ev["sides"] == ["post", "pre"]


def test_masked_lstm_tagger_is_clean():
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    model = keras.Model(x, keras.layers.Dense(3)(keras.layers.LSTM(8, return_sequences=True)(h)))
    assert _dyn(model, "MC301", "MC304", "MC305") == ()


def test_causal_conv_clean_under_post_leaks_under_pre():
    model = _tagger_conv("causal")
    assert _dyn(model, "MC301", padding="post") == ()
    pre = _dyn(model, "MC301", padding="pre")
    assert [(f.layer, f.evidence["padding"], f.evidence["sides"]) for f in pre] == [("conv", "pre", ["pre"])]
    both = _dyn(model, "MC301", padding="both")
    assert [(f.layer, f.evidence["sides"]) for f in both] == [("conv", ["pre"])]


def test_find_leak_api_localizes_and_describes():
    leak = find_leak(_tagger_conv(), _tokens())
    assert leak is not None and leak.layer == "conv" and leak.kind == "outputs"
    assert leak.sample in (1, 2, 3) and leak.padding == "post"
    text = leak.describe()
    assert "conv" in text and "post-padding" in text and f"sample {leak.sample}" in text


def test_repeated_find_leak_reuses_the_trace_and_agrees():
    from maskcheck.dynamic import program as probe

    model = _tagger_conv()
    first = find_leak(model, _tokens())
    cached = [prober for _, prober in probe._RECENT_PROBERS if prober.model is model]
    assert find_leak(model, _tokens()) == first  # same answer from the reused trace
    assert len([p for _, p in probe._RECENT_PROBERS if p.model is model]) == len(cached) == 1
    # another model (same architecture, zeroed conv kernel) is traced on its own
    other = _tagger_conv()
    conv = other.get_layer("conv")
    conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    assert find_leak(other, _tokens()) is None
    # a different input dtype gets its own trace rather than a signature error
    assert find_leak(model, _tokens().astype("int64")) == first


def test_find_leak_none_for_mask_aware_model():
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    model = keras.Model(x, keras.layers.GlobalAveragePooling1D()(h))
    assert find_leak(model, _tokens()) is None
    assert find_leak(model, _tokens(pre=True), padding="pre") is None


def test_find_leak_raw_float_inputs_with_lengths():
    x = keras.Input((None, 3))
    model = keras.Model(x, keras.layers.GlobalMaxPooling1D(name="gmp")(x))
    data = np.random.default_rng(0).standard_normal((3, 8, 3)).astype("float32")
    leak = find_leak(model, data, lengths=[8, 4, 2])
    assert leak is not None and leak.layer == "gmp" and leak.position == -1


def test_find_leak_masking_layer_holds_mask_fixed():
    x = keras.Input((None, 3))
    h = keras.layers.Masking(0.0)(x)
    model = keras.Model(x, keras.layers.LSTM(4)(h))
    data = np.random.default_rng(0).standard_normal((3, 8, 3)).astype("float32")
    data[1, 4:] = 0.0
    data[2, 2:] = 0.0
    assert find_leak(model, data) is None  # mask derived from Masking, perturbed after it


def test_find_leak_rejects_model_without_mask():
    x = keras.Input((6,))
    model = keras.Model(x, keras.layers.Dense(2)(x))
    with pytest.raises(ProbeError, match="no mask for the probe batch"):
        find_leak(model, np.zeros((2, 6), "float32"))


# --- MC302 ------------------------------------------------------------------------


def test_batchnorm_on_padded_values_leaks_across_samples_in_training():
    x = keras.Input((None, 4))
    h = keras.layers.Dense(4, name="proj")(x)
    model = keras.Model(x, keras.layers.BatchNormalization(name="bn")(h))
    weights = [w.copy() for w in model.get_weights()]
    findings = _dyn(model, "MC302")
    assert [(f.rule, f.layer) for f in findings] == [("MC302", "bn")]
    assert findings[0].evidence["other"] != findings[0].evidence["sample"]
    for before, after in zip(weights, model.get_weights()):  # moving stats restored exactly
        np.testing.assert_array_equal(before, after)


def test_layernorm_after_masking_no_cross_sample_leak():
    x = keras.Input((None, 4))
    h = keras.layers.BatchNormalization()(keras.layers.Masking()(x))  # BN consumes the mask
    model = keras.Model(x, keras.layers.LayerNormalization()(h))
    assert _dyn(model, "MC302") == ()


# --- MC303 / MC203 ----------------------------------------------------------------


def _seq_model(drop_mask, loss):
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = keras.layers.Conv1D(8, 1)(h) if drop_mask else keras.layers.LSTM(8, return_sequences=True)(h)
    model = keras.Model(x, keras.layers.Dense(5, name="tags")(h))
    model.compile(loss=loss)
    return model


def test_sequence_output_mask_dropped_sparse_loss_leaks():
    model = _seq_model(True, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    findings = _dyn(model, "MC303", "MC203")
    assert [(f.rule, f.layer) for f in findings] == [("MC303", "tags")]
    assert findings[0].evidence["what"] == "labels"
    leak = find_loss_leak(model, _tokens(), np.random.default_rng(0).integers(0, 5, (4, 10)))
    assert leak is not None and leak.kind in ("loss", "gradients") and leak.output == "tags"


def test_masked_output_with_keras_loss_is_clean():
    model = _seq_model(False, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert _dyn(model, "MC303", "MC203") == ()
    assert find_loss_leak(model, _tokens(), np.zeros((4, 10), "int32")) is None


class PlainLoss(keras.losses.Loss):
    def __call__(self, y_true, y_pred, sample_weight=None):
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True))


def test_custom_loss_overriding_call_bypasses_mask():
    findings = _dyn(_seq_model(False, PlainLoss()), "MC303", "MC203")
    assert [(f.rule, f.layer) for f in findings] == [("MC203", "tags")]
    assert "PlainLoss" in findings[0].message or "plain_loss" in findings[0].message


# --- MC304 / MC305 ----------------------------------------------------------------


def test_pad_amount_sensitivity_under_pre_padding():
    x = keras.Input((None, 4))
    h = keras.layers.SimpleRNN(6, return_sequences=True, bias_initializer="ones", name="rnn")(x)
    model = keras.Model(x, h)
    assert _dyn(model, "MC304", padding="post") == ()
    pre = _dyn(model, "MC304", padding="pre")
    assert [(f.layer, f.evidence["padding"]) for f in pre] == [("rnn", "pre")]


def test_global_average_pooling_over_fully_padded_row_is_nan():
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    model = keras.Model(x, keras.layers.GlobalAveragePooling1D(name="pool")(h))
    findings = _dyn(model, "MC305")
    assert [(f.rule, f.layer) for f in findings] == [("MC305", "pool")]


def test_masked_lstm_survives_empty_rows():
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    assert _dyn(keras.Model(x, keras.layers.LSTM(4)(h)), "MC305") == ()


# --- subclassed models, merging, errors, determinism ---------------------------------


class SubclassedTagger(keras.Model):
    def __init__(self):
        super().__init__(name="sub_tagger")
        self.emb = keras.layers.Embedding(50, 8, mask_zero=True, name="emb")
        self.conv = keras.layers.Conv1D(8, 3, padding="same", name="conv")
        self.tags = keras.layers.Dense(3, name="tags")

    def call(self, x):
        return self.tags(self.conv(self.emb(x)))


def test_subclassed_model_same_leak_localized():
    functional = _dyn(_tagger_conv(), "MC301", padding="post", data=_tokens())
    model = SubclassedTagger()
    model(_tokens())
    sub = _dyn(model, "MC301", padding="post", data=_tokens())
    assert [(f.rule, f.layer, f.layer_class) for f in sub] == [(f.rule, f.layer, f.layer_class)
                                                            for f in functional]
    assert sub[0].path == ("sub_tagger", "conv")
    assert find_leak(model, _tokens()).layer == "conv"


def test_static_finding_confirmed_by_probe_is_merged():
    model = _tagger_conv()
    static = _dyn(model, "MC102", mode="static")
    both = _dyn(model, "MC102", "MC301", mode="all")
    assert [f.rule for f in static] == ["MC102"]
    merged = [f for f in both if f.layer == "conv"]
    assert [(f.rule, f.kind) for f in merged] == [("MC102", ("static", "dynamic"))]
    assert merged[0].evidence["confirmed_by"] == "MC301" and merged[0].evidence["max_abs_diff"] > 0


def test_api_check_with_data_and_no_padding_errors():
    report = maskcheck.check(_tagger_conv(), mode="dynamic", data=_tokens(), select=["MC301"])
    assert [f.layer for f in report.findings] == ["conv"] and not report.ok
    x = keras.Input((6,))
    fixed = keras.Model(x, keras.layers.Dense(2)(x))
    report = maskcheck.check(fixed, mode="dynamic")
    assert report.models[0].error.type == "NoPaddedInput"
    assert maskcheck.check(fixed, mode="all").models[0].error is None


def test_forward_pass_raising_on_every_batch_is_one_line_target_error():
    """SPEC 9: it raises on an unpadded batch too, so the target is bad (exit 2)."""
    class Broken(keras.layers.Layer):
        def call(self, x):
            raise RuntimeError("boom")

        def compute_output_shape(self, shape):
            return shape

    x = keras.Input((None, 3))
    model = keras.Model(x, Broken(name="broken")(x))
    for mode in ("dynamic", "all"):
        error = maskcheck.check(model, mode=mode).models[0].error
        assert error.type == "ForwardError" and "broken" in error.message and "\n" not in error.message
        assert "unpadded batch too" in error.message


def test_same_seed_gives_byte_identical_json():
    model = _tagger_conv()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def dump():
        data = json.loads(maskcheck.check(model, seed=3).to_json())
        for m in data["models"]:
            m.pop("stats")
        return json.dumps(data, sort_keys=True)

    first = dump()
    assert first == dump()
    assert '"MC30' in first or '"MC102"' in first


# --- merging details, lookups, readable errors -----------------------------------------


def _through_numpy(x, fn):
    """Values computed in Python: no operation for the static reader to read."""
    import tensorflow as tf

    y = tf.numpy_function(fn, [x], x.dtype, stateful=False)
    y.set_shape(x.shape)
    return y


class MixOverTime(keras.layers.Layer):
    def call(self, x):
        return _through_numpy(x, lambda v: v + v.mean(axis=1, keepdims=True))


class Doubler(keras.layers.Layer):
    def call(self, x):
        return _through_numpy(x, lambda v: v * 2.0)


def _custom(cls):
    x = keras.Input((None, 4))
    h = cls(name="custom")(x)
    return keras.Model(x, keras.layers.Dense(2)(h))


def test_custom_layer_suspicion_confirmed_or_refuted():
    static = [f for f in _dyn(_custom(MixOverTime), "MC102", mode="static") if f.layer == "custom"]
    assert [(f.rule, f.severity.value, f.evidence.get("assumed_semantics")) for f in static] == [("MC102", "info", True)]
    mixing = [f for f in _dyn(_custom(MixOverTime), "MC102", "MC301", mode="all") if f.layer == "custom"]
    assert [(f.rule, f.kind, f.severity.value) for f in mixing] == [("MC102", ("static", "dynamic"), "error")]
    pointwise = [f for f in _dyn(_custom(Doubler), "MC102", "MC301", mode="all") if f.layer == "custom"]
    assert [(f.rule, f.severity.value) for f in pointwise] == [("MC102", "info")]
    assert pointwise[0].evidence["refuted_by"] == "MC301" and "downgraded to info" in pointwise[0].message


def test_mask_generator_behind_a_lookup_is_not_a_leak():
    x = keras.Input((None,), dtype="int64")
    ids = keras.layers.IntegerLookup(vocabulary=[11, 12, 13], mask_token=0)(x)
    h = keras.layers.Embedding(8, 8, mask_zero=True)(ids)
    model = keras.Model(x, keras.layers.Dense(5)(keras.layers.LSTM(8, return_sequences=True)(h)))
    assert _dyn(model, "MC301", "MC304", "MC305") == ()


def test_raising_only_with_a_mask_is_mc103_at_the_layer_not_a_target_error():
    """SPEC 9: the model runs unpadded but raises once the (B,T) mask reaches Softmax."""
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = keras.layers.Dense(5)(keras.layers.LSTM(8, return_sequences=True)(h))
    model = keras.Model(x, keras.layers.Softmax(name="softmax")(h))  # (B,T) mask on (B,T,5)
    for mode in ("all", "dynamic"):
        report = maskcheck.check(model, mode=mode)
        assert report.models[0].error is None
        found = [f for f in report.all_findings if f.rule == "MC103" and f.layer == "softmax"]
        assert found, report.findings
        exception = found[0].evidence["exception"]
        assert "\n" not in exception and "Detected at node" not in exception


class UnmaskedTrainStep(keras.Model):
    """A train_step that reduces per-position losses itself, without the output mask."""

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, y_pred, from_logits=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return {"loss": loss}


def test_custom_train_step_dropping_mask_is_mc203_and_state_restored():
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = keras.layers.LSTM(8, return_sequences=True)(h)
    model = UnmaskedTrainStep(x, keras.layers.Dense(5, name="tags")(h))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    weights = [w.copy() for w in model.get_weights()]
    findings = _dyn(model, "MC203", "MC303")
    assert [(f.rule, f.layer) for f in findings] == [("MC203", "tags")]
    assert "train_step" in findings[0].message
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert int(model.optimizer.iterations.numpy()) == 0


def test_npz_probe_data_with_lengths_and_labels(tmp_path):
    model = _tagger_conv()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = _tokens(lengths=(10, 6, 3, 8))
    path = tmp_path / "batch.npz"
    np.savez(path, tokens=x, lengths=np.array([10, 6, 3, 8]), y=np.ones((4, 10), "int32"))
    config = Config.from_values(mode="dynamic", data=str(path), select=["MC301", "MC303"])
    findings = check_model(model, target="t", config=config).findings
    assert {(f.rule, f.layer) for f in findings} == {("MC301", "conv"), ("MC303", "tags")}
    assert all(f.evidence["sample"] in (1, 2, 3) for f in findings)
    missing = Config.from_values(mode="dynamic", data=str(tmp_path / "nope.npz"))
    with pytest.raises(Exception, match="no such file"):
        check_model(model, target="t", config=missing)


def test_npz_sample_weights_mark_the_padding(tmp_path):
    # SPEC 4: per-step sample weights of 0 mark padded steps when no mask or lengths are given.
    features = np.random.default_rng(0).normal(size=(3, 8, 4)).astype("float32")
    weights = np.array([[1.0] * 8, [1.0] * 5 + [0.0] * 3, [1.0] * 2 + [0.0] * 6], "float32")
    path = tmp_path / "batch.npz"
    np.savez(path, features=features, sample_weight=weights)

    def model_with(layer):
        x = keras.Input((None, 4), name="features")
        return keras.Model(x, layer(x))

    config = Config.from_values(mode="dynamic", data=str(path), select=["MC301"])
    conv = model_with(keras.layers.Conv1D(2, 3, padding="same", name="conv"))
    leaks = check_model(conv, target="t", config=config).findings
    assert [(f.rule, f.layer) for f in leaks] == [("MC301", "conv")]
    assert leaks[0].evidence["sample"] in (1, 2)
    dense = model_with(keras.layers.Dense(2, name="dense"))
    assert check_model(dense, target="t", config=config).findings == ()


class RequiresTokens(keras.layers.Layer):
    """Raises at run time when a sample has no valid step."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        import tensorflow as tf

        counts = tf.reduce_sum(tf.cast(mask, "int32"), axis=1)
        with tf.control_dependencies([tf.debugging.assert_positive(counts, message="empty sample")]):
            return tf.identity(x)


def test_model_raising_on_fully_padded_sample_is_mc305():
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = RequiresTokens(name="guard")(h)
    model = keras.Model(x, keras.layers.LSTM(4)(h))
    findings = _dyn(model, "MC305", "MC301")
    assert [(f.rule, f.layer, f.evidence["what"]) for f in findings] == [("MC305", "guard", "an exception")]


class PerSampleMeanLoss(keras.losses.Loss):
    """Averages each sample over its own valid steps: 0/0 for an empty sample."""

    def __call__(self, y_true, y_pred, sample_weight=None):
        mask = keras.ops.cast(keras.ops.not_equal(y_true, 0), "float32")
        per_step = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        return keras.ops.mean(keras.ops.sum(per_step * mask, axis=1) / keras.ops.sum(mask, axis=1))


def test_loss_nan_on_fully_padded_sample_is_mc305():
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    model = keras.Model(x, keras.layers.Dense(5, name="tags")(keras.layers.LSTM(8, return_sequences=True)(h)))
    model.compile(loss=PerSampleMeanLoss())
    findings = _dyn(model, "MC305")
    assert [(f.rule, f.layer, f.evidence["what"]) for f in findings] == [("MC305", "tags", "a NaN or Inf loss")]
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert _dyn(model, "MC305") == ()


def test_declared_padded_axis_and_explicit_mask_input():
    x = keras.Input((10, 4), name="frames")
    model = keras.Model(x, keras.layers.Conv1D(3, 3, padding="same", name="conv")(x))
    assert maskcheck.check(model, mode="dynamic").models[0].error.type == "NoPaddedInput"
    config = Config.from_values(mode="dynamic", select=["MC301"], padded=["frames:1"])
    findings = check_model(model, target="t", config=config).findings
    assert [(f.rule, f.layer) for f in findings] == [("MC301", "conv")]
    # an explicit mask input, named as --mask-input says, is held fixed and used
    ids = keras.Input((None,), dtype="int32", name="ids")
    keep = keras.Input((None,), dtype="int32", name="keep")
    h = keras.layers.Embedding(50, 8)(ids)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(
        h, h, attention_mask=keras.ops.cast(keep[:, None, :], "bool"))
    masked = keras.Model([ids, keep], keras.layers.Dense(2)(h))
    config = Config.from_values(mode="dynamic", select=["MC301"], mask_inputs=["ids=keep"], padding="post")
    assert check_model(masked, target="t", config=config).findings == ()
    from maskcheck.dynamic import build_plan
    from maskcheck.static.adapter import adapt_model
    from maskcheck.static.dataflow import analyze

    graph = adapt_model(masked)
    roles = {i.name: i.role for i in build_plan(masked, config, graph, analyze(graph)).inputs}
    assert roles == {"ids": "data", "keep": "mask"}
    unmasked = Config.from_values(mode="dynamic", select=["MC301"], padding="post")  # keep is not a mask name
    roles = {i.name: i.role for i in build_plan(masked, unmasked, graph, analyze(graph)).inputs}
    assert roles["keep"] == "data"
    # perturbed as data, its values still make the attention mask, and masks are pinned
    # (SPEC 4): the perturbed rows see the unperturbed rows' attention mask, so no leak
    assert check_model(masked, target="t", config=unmasked).findings == ()


def test_engine_prints_nothing(capsys):
    for _ in range(6):  # enough new compiled functions to provoke TensorFlow's retracing note
        maskcheck.check(_tagger_conv(), mode="dynamic", select=["MC301", "MC304"])
    out, err = capsys.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("conv", [dict(kernel_size=3), dict(kernel_size=3, strides=2, padding="same")],
                         ids=["valid", "strided"])
def test_length_changing_conv_is_checked_not_crashed(conv):
    # The extra-padding pass (MC304) cannot cut its padding back off a shorter output;
    # those tensors are skipped instead of compared (this used to raise a broadcast error).
    x = keras.Input((None, 3))
    model = keras.Model(x, keras.layers.Conv1D(2, name="conv", **conv)(x))
    report = check_model(model, target=model.name, config=Config.from_values(mode="all"))
    assert report.error is None
    confirmed = [f for f in report.all_findings if f.rule == "MC102"]
    assert [f.layer for f in confirmed] == ["conv"] and confirmed[0].kind == ("static", "dynamic")


def test_time_distributed_tagger_is_probed_at_concrete_shapes():
    # Keras 3.15's TimeDistributed returns batch-size time steps when traced with an open
    # time axis; the probes must trace such models per shape instead of failing.
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = keras.layers.LSTM(4, return_sequences=True)(h)
    model = keras.Model(x, keras.layers.TimeDistributed(keras.layers.Dense(3))(h))
    report = check_model(model, target=model.name, config=Config.from_values(mode="dynamic"))
    assert report.error is None and report.findings == ()
    assert find_leak(model, _tokens()) is None
