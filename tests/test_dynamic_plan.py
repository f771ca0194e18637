"""The probe plan: what the dynamic engine probes, asserted without running a probe,
and the number of traces a check makes (one per kind of program)."""

from __future__ import annotations

import keras
import pytest

import maskcheck
from maskcheck.config import Config
from maskcheck.dynamic import build_plan
from maskcheck.static.adapter import adapt_model
from maskcheck.static.dataflow import analyze


@pytest.fixture(autouse=True)
def _seeded_weights():
    keras.utils.set_random_seed(1234)


def _plan(model, **settings):
    graph = adapt_model(model)
    return build_plan(model, Config.from_values(**settings), graph, analyze(graph))


def _tagger(classes=5):
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8, mask_zero=True, name="emb")(x)
    h = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))(h)
    return keras.Model(x, keras.layers.Dense(classes, activation="softmax", name="tags")(h))


@keras.saving.register_keras_serializable(package="mctest_plan")
class SqrtMasked(keras.layers.Layer):
    """Position-wise and masked, but x ** 0.5 at padded zeros gives 0 * inf = NaN gradients."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        kept = keras.ops.cast(mask, x.dtype)[..., None] if mask is not None else 1.0
        return keras.ops.power(keras.ops.abs(x), 0.5) * kept


def test_output_axes_come_from_the_graph_not_from_sizes():
    """A per-sample output with as many classes as probe steps is not a padded axis."""
    seq = keras.Sequential([keras.Input((10, 20)), keras.layers.Masking(0.0),
                            keras.layers.LSTM(8), keras.layers.Dense(10, activation="softmax")])
    plan = _plan(seq)
    assert plan.length == 10 and plan.outputs[0].padded_axes == ()
    assert _plan(_tagger()).outputs[0].padded_axes == (1,)


def test_plan_reads_ignore_class_tokens_generators_and_structure():
    model = _tagger()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=-100))
    plan = _plan(model)
    [tokens] = plan.inputs
    assert (tokens.role, tokens.kind, tokens.generator, tokens.vocab) == ("data", "tokens", "emb", 50)
    assert plan.outputs[0].ignore_class == -100 and not plan.outputs[0].labels_perturbable
    assert plan.structure == "single" and "perturbed after 'emb'" in plan.describe()


def test_float_ids_feeding_an_embedding_are_tokens_and_a_list_model_stays_a_list():
    ids = keras.Input((None,), name="ids")  # float32, cast by the Embedding
    assert _plan(keras.Model(ids, keras.layers.Embedding(30, 4)(ids))).inputs[0].kind == "tokens"
    a, b = keras.Input((None, 3), name="a"), keras.Input((None, 3), name="b")
    plan = _plan(keras.Model([a, b], keras.layers.Add()([a, b])))
    assert plan.structure == "list" and [i.kind for i in plan.inputs] == ["values", "values"]


def test_probe_length_is_one_the_model_accepts():
    x = keras.Input((None, 4))
    h = keras.layers.MaxPooling1D(4)(keras.layers.Conv1D(8, 5)(x))
    h = keras.layers.MaxPooling1D(4)(keras.layers.Conv1D(8, 5)(h))
    plan = _plan(keras.Model(x, keras.layers.GlobalMaxPooling1D()(h)))
    assert plan.length >= 36 and plan.time_open


def test_gradients_are_probed_only_where_user_code_can_leak_into_them():
    assert _plan(_tagger()).gradient_code == ()
    x = keras.Input((None, 3))
    h = SqrtMasked(name="sqrt")(keras.layers.Masking(0.0)(x))
    assert _plan(keras.Model(x, keras.layers.Dense(2)(h))).gradient_code == ("sqrt",)


def test_gradient_only_leak_in_custom_code_is_mc303():
    """The loss is masked (unchanged), but padded zeros make the kernel's gradients NaN."""
    x = keras.Input((None, 3))
    h = keras.layers.Dense(3, use_bias=False)(keras.layers.Masking(0.0)(x))  # padded rows stay 0
    h = SqrtMasked(name="sqrt")(h)
    model = keras.Model(x, keras.layers.Dense(2, name="out")(h))
    model.compile(loss="mse")
    report = maskcheck.check(model, select=["MC303"], padding="post")
    [finding] = report.findings
    assert finding.rule == "MC303" and finding.layer == "out"
    assert finding.evidence["what"] == "inputs" and finding.evidence["loss_diff"] < 1e-6


def test_a_compiled_tagger_check_traces_each_program_once():
    """One inference trace (reused for both sides, every draw and the longer MC304
    batch) and one for the compiled loss."""
    model = _tagger()
    model.compile("adam", "sparse_categorical_crossentropy")
    report = maskcheck.check(model)
    assert report.models[0].error is None and "dynamic" not in report.models[0].stats
    assert report.models[0].stats["traces"] == 2
    assert not [f for f in report.all_findings if f.severity.value != "info"], report.findings
    uncompiled = maskcheck.check(_tagger())
    assert uncompiled.models[0].stats["traces"] == 1
