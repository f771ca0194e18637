"""Real-size models (issue 27): what a check holds stays bounded whatever the vocabulary.

The real-size benchmark (benchmarks/realsize_bench.py) measures BERT- and GPT-2-sized
models against using them; these tests pin each mechanism on small models, twins
asserted both ways: labels are built at the labels' size (never a vocabulary x
vocabulary identity), comparisons give exactly the float64 answer while screening in
float32 a few rows at a time, a probe whose outputs are wide runs in several passes
with the same verdict, `keras.ops` calls whose derivative is bounded add no backward
pass, and the probes run on the GPU when TensorFlow sees one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest

import maskcheck
from maskcheck.config import Config
from maskcheck.dynamic import build_plan, compare
from maskcheck.dynamic import plan as plan_module
from maskcheck.dynamic.batches import Probe, _one_hot, split_probe
from maskcheck.static.adapter import adapt_model
from maskcheck.static.dataflow import analyze


@pytest.fixture(autouse=True)
def _seeded_weights():
    keras.utils.set_random_seed(27)


def _wide_tagger(vocabulary=20000, leaking=False, length=None):
    """Token ids -> (batch, time, vocabulary) softmax, like a language model's head. The
    leaking twin mixes padded steps into valid ones with a Conv1D (which drops the mask)."""
    x = keras.Input((length,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(100, 8, mask_zero=True, name="emb")(x)
    if leaking:
        h = keras.layers.Conv1D(8, 3, padding="same", name="mixer")(h)
    out = keras.layers.Dense(vocabulary, activation="softmax", name="logits")(h)
    model = keras.Model(x, out, name="wide_leaking" if leaking else "wide_clean")
    model.compile(loss="sparse_categorical_crossentropy")
    return model


def _rules(report):
    return sorted({f.rule for f in report.models[0].findings if f.severity.value != "info"})


def _confirmed(report):
    """Rules whose findings the probes measured (dynamic evidence)."""
    return sorted({f.rule for f in report.models[0].findings if "dynamic" in f.kind})


#: What the leaking twin gets: the Conv1D drops the mask (MC102), so the loss counts padded
#: steps (MC201); the probes measure both.
LEAKING = ["MC102", "MC201"]


# -- labels -----------------------------------------------------------------------------------

def test_one_hot_labels_equal_identity_rows():
    ids = np.array([[0, 3, 1], [2, 2, 0]])
    assert np.array_equal(_one_hot(ids, 4), np.eye(4, dtype="float32")[ids])
    assert _one_hot(ids, 4).dtype == np.float32


def test_a_wide_output_check_never_builds_a_vocabulary_square():
    """Before issue 27 the one-hot label candidates indexed np.eye(vocabulary): 1.6 GB here,
    10 GB for GPT-2's 50,257 tokens. NumPy's allocations are what tracemalloc sees."""
    model = _wide_tagger()
    tracemalloc.start()
    try:
        report = maskcheck.check(model, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.models[0].error is None
    assert peak < 400 * 2**20, f"NumPy peaked at {peak / 2**20:.0f} MiB"
    assert _rules(report) == []


def test_the_leaking_wide_twin_is_still_found():
    report = maskcheck.check(_wide_tagger(leaking=True), seed=0)
    assert _rules(report) == LEAKING and _confirmed(report)


# -- comparisons ------------------------------------------------------------------------------

def _pairs(seed):
    """Values and references with differences just under, at and over the tolerance, and
    NaN and Inf in either."""
    rng = np.random.default_rng(seed)
    n, t, c = 6, 5, 7
    ref = rng.normal(size=(n, t, c)).astype("float32") * 10.0 ** rng.integers(-3, 3)
    atol, rtol = 1e-5, 1e-4
    tol = atol + rtol * np.abs(ref.astype(np.float64))
    scale = rng.choice([0.0, 0.49, 0.999, 1.0, 1.001, 2.0, 1e3], size=ref.shape)
    sign = rng.choice([-1.0, 1.0], size=ref.shape)
    new = (ref + sign * scale * tol).astype("float32")
    for a in (new, ref):
        a[rng.random(a.shape) < 0.02] = np.nan
        a[rng.random(a.shape) < 0.02] = np.inf
    valid = rng.random((n, t, 1)) < 0.7
    return new, ref, valid, atol, rtol


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("chunk", [1, 35, 1 << 22])
def test_screened_comparison_equals_the_exact_one(seed, chunk, monkeypatch):
    monkeypatch.setattr(compare, "CHUNK_ELEMENTS", chunk)
    new, ref, valid, atol, rtol = _pairs(seed)
    got = compare.diverge(new, ref, valid, atol, rtol)
    want = compare._diverge_exact(new, ref, valid, atol, rtol)
    assert np.array_equal(got.rows, want[0])
    assert np.array_equal(got.diff, want[1])
    assert np.array_equal(got.position, want[2])
    order = np.random.default_rng(seed).permutation(len(ref))
    indexed = compare.diverge(new, ref, valid, atol, rtol, ref_rows=order)
    assert np.array_equal(indexed.diff, compare._diverge_exact(new, ref[order], valid, atol, rtol)[1])


def test_clean_float32_rows_skip_the_exact_comparison(monkeypatch):
    """The screen is what keeps a clean model's comparison cheap: no exact pass runs."""
    calls = []
    exact = compare._diverge_exact
    monkeypatch.setattr(compare, "_diverge_exact", lambda *a: calls.append(1) or exact(*a))
    ref = np.random.default_rng(0).normal(size=(4, 6, 9)).astype("float32")
    assert not compare.diverge(ref.copy(), ref, np.ones((4, 6, 1), bool), 1e-5, 1e-4).rows.any()
    assert calls == []
    moved = ref.copy()
    moved[2, 3, 4] += 1.0
    div = compare.diverge(moved, ref, np.ones((4, 6, 1), bool), 1e-5, 1e-4)
    assert div.rows.tolist() == [False, False, True, False] and div.position[2] == 3
    assert calls


# -- passes -----------------------------------------------------------------------------------

def test_split_probe_parts_are_balanced_and_keep_their_rows():
    x = np.arange(9 * 3).reshape(9, 3)
    probe = Probe({"a": x, "b": x * 2}, None, x > 4, ["post"] * 5 + ["pre"] * 4)
    parts = split_probe(probe, 2)
    assert [offset for offset, _ in parts] == [0, 3, 5, 7]
    assert [len(p.mask) for _, p in parts] == [3, 2, 2, 2]
    for offset, part in parts:
        rows = slice(offset, offset + len(part.mask))
        assert np.array_equal(part.x["b"], x[rows] * 2) and part.sides == probe.sides[rows]
    assert split_probe(probe, None) == [(0, probe)] and split_probe(probe, 9) == [(0, probe)]


def test_plan_sizes_passes_from_the_model_outputs():
    plan = build_plan(_wide_tagger(length=64), Config(), adapt_model(_wide_tagger(length=64)),
                      analyze(adapt_model(_wide_tagger(length=64))))
    assert plan.row_bytes == 64 * 20000 * 4
    assert plan.samples_per_pass(4) == max(2, plan_module.PASS_OUTPUT_BYTES // (4 * plan.row_bytes))
    narrow = _wide_tagger(vocabulary=5)
    small = build_plan(narrow, Config(), adapt_model(narrow), analyze(adapt_model(narrow)))
    assert small.samples_per_pass(4) >= 8  # the default probe's 8 samples fit one pass


@pytest.mark.parametrize("leaking", [False, True])
def test_a_probe_split_into_passes_keeps_its_verdict(leaking, monkeypatch):
    """The same model checked in one pass and, with a tiny output budget, in four passes of
    two samples: the same rules, and stats say how the probe was sized."""
    whole = maskcheck.check(_wide_tagger(vocabulary=300, leaking=leaking), seed=0)
    assert whole.models[0].stats["probe"]["passes"] == 1
    monkeypatch.setattr(plan_module, "PASS_OUTPUT_BYTES", 1)
    split = maskcheck.check(_wide_tagger(vocabulary=300, leaking=leaking), seed=0)
    probe = split.models[0].stats["probe"]
    assert probe["passes"] == 4 and probe["samples"] == 8 and probe["rows_per_pass"] == 8
    assert probe["device"] in ("/CPU:0", "/GPU:0")
    assert _rules(split) == _rules(whole) == (LEAKING if leaking else [])
    assert _confirmed(split) == _confirmed(whole)
    if leaking:
        samples = [f.evidence.get("sample") for f in split.models[0].findings if "dynamic" in f.kind]
        assert samples and all(s is None or 0 <= s < 8 for s in samples)


@pytest.mark.parametrize("leaking", [False, True])
def test_real_data_batches_split_into_passes_keep_their_verdict(leaking, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 100, (6, 10)).astype("int32")
    for row, n in enumerate([10, 7, 5, 3, 9, 2]):
        x[row, n:] = 0
    y = rng.integers(0, 300, (6, 10)).astype("int32")
    whole = maskcheck.check(_wide_tagger(vocabulary=300, leaking=leaking), data=(x, y), seed=0)
    monkeypatch.setattr(plan_module, "PASS_OUTPUT_BYTES", 1)
    split = maskcheck.check(_wide_tagger(vocabulary=300, leaking=leaking), data=(x, y), seed=0)
    assert split.models[0].stats["probe"]["passes"] == 3
    assert _rules(split) == _rules(whole) == (LEAKING if leaking else [])
    assert _confirmed(split) == _confirmed(whole)


def test_the_output_layers_tap_is_the_output_not_a_copy(monkeypatch):
    """The last layer's tap and the model output are one array: for a language model they
    are the largest tensor of a pass, and holding them twice doubled the pass."""
    from maskcheck.dynamic.program import Prober

    seen = []
    run = Prober.run

    def recording(self, *args, **kwargs):
        result = run(self, *args, **kwargs)
        seen.append(result)
        return result

    monkeypatch.setattr(Prober, "run", recording)
    maskcheck.check(_wide_tagger(vocabulary=300), seed=0, select=["MC301"])
    assert seen
    for result in seen:
        shared = [t for t in result.tensors if np.shares_memory(t, result.outputs[0])]
        assert len(shared) == 1 and shared[0] is result.outputs[0]


# -- gradients --------------------------------------------------------------------------------

def _plan_of(model):
    graph = adapt_model(model)
    return build_plan(model, Config(), graph, analyze(graph))


def test_bounded_derivative_ops_need_no_backward_pass():
    """A slice (BERT's pooled first token) cannot carry padding into the gradients without
    moving the loss; a square root at padded zeros can (0 * inf = NaN)."""
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(x)
    h = keras.layers.LSTM(8, return_sequences=True)(h)
    first = h[:, 0, :] * 2.0
    assert _plan_of(keras.Model(x, keras.layers.Dense(2)(first))).gradient_code == ()
    rooted = keras.ops.sqrt(keras.ops.abs(h[:, 0, :]))
    code = _plan_of(keras.Model(x, keras.layers.Dense(2)(rooted))).gradient_code
    assert len(code) == 1 and "sqrt" in code[0]


def test_gradient_differences_come_back_as_one_number_per_variable():
    """The backward pass is reduced in the graph: no copy of the gradients leaves it."""
    from maskcheck.dynamic.program import _largest_change
    import tensorflow as tf

    assert float(_largest_change(tf.constant([[1.0, -3.0], [2.0, 0.5]]))) == 3.0
    assert float(_largest_change(tf.constant([1.0, float("nan")]))) == float("inf")
    assert float(_largest_change(tf.zeros([0, 4]))) == 0.0


# -- device -----------------------------------------------------------------------------------

def _gpus():
    import tensorflow as tf

    return tf.config.list_logical_devices("GPU")


@pytest.mark.skipif("not _gpus()", reason="TensorFlow sees no GPU here")
@pytest.mark.parametrize("leaking", [False, True])
def test_probes_run_on_the_gpu_with_the_cpu_verdict(leaking):
    on_gpu = maskcheck.check(_wide_tagger(vocabulary=300, leaking=leaking), device="gpu", seed=0)
    on_cpu = maskcheck.check(_wide_tagger(vocabulary=300, leaking=leaking), device="cpu", seed=0)
    assert on_gpu.models[0].stats["probe"]["device"] == "/GPU:0"
    assert on_cpu.models[0].stats["probe"]["device"] == "/CPU:0"
    assert _rules(on_gpu) == _rules(on_cpu) == (LEAKING if leaking else [])
    assert _confirmed(on_gpu) == _confirmed(on_cpu)


def test_probes_say_the_device_they_ran_on():
    report = maskcheck.check(_wide_tagger(vocabulary=30), device="cpu", seed=0)
    assert report.models[0].stats["probe"]["device"] == "/CPU:0"


@pytest.mark.skipif("_gpus()", reason="a GPU is present: --device gpu is valid here")
def test_device_gpu_without_a_gpu_is_a_one_line_error(tmp_path):
    path = tmp_path / "m.keras"
    _wide_tagger(vocabulary=30).save(path)
    done = subprocess.run([sys.executable, "-m", "maskcheck", str(path), "--device", "gpu"],
                          capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--device gpu" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]
