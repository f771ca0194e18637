"""keras-hub backbones from small configurations (no downloads), checked by both engines.

Opt-in: `pytest -m kerashub`. Encoders fed their padding_mask must come out
with no error finding under post-padding (keras-hub's own convention); every
dynamic finding that does appear, with either padding side, is re-checked
here by an independent perturbation run directly through the model: random
token ids at padded positions with the padding mask held fixed (MC301), or
more pre-padding (MC304).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

pytestmark = pytest.mark.kerashub
keras_hub = pytest.importorskip("keras_hub")

import keras  # noqa: E402

import maskcheck  # noqa: E402

VOCAB = 64
SMALL = dict(vocabulary_size=VOCAB, num_layers=2, num_heads=2, num_query_heads=2,
             num_key_value_heads=1, hidden_dim=16, intermediate_dim=32, max_sequence_length=32,
             embedding_dim=16, num_groups=1, num_inner_repetitions=1, head_dim=8, dropout=0.0)
#: Encoders take a padding_mask and must not leak under post-padding.
ENCODERS = ["BertBackbone", "RobertaBackbone", "DistilBertBackbone", "XLMRobertaBackbone",
            "AlbertBackbone", "DebertaV3Backbone"]
#: Decoders and encoder-decoders: findings must be real, whatever they are.
OTHERS = ["GPT2Backbone", "OPTBackbone", "BartBackbone", "LlamaBackbone", "MistralBackbone",
          "GemmaBackbone", "FNetBackbone"]


REQUIRED = frozenset({"BertBackbone", "RobertaBackbone", "DistilBertBackbone", "GPT2Backbone"})


def _build(name):
    cls = getattr(keras_hub.models, name, None)
    if cls is None:  # the issue names these four: they must be checked, never skipped
        assert name not in REQUIRED, f"keras-hub {keras_hub.__version__} has no {name}"
        pytest.skip(f"keras-hub {keras_hub.__version__} has no {name}")
    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in SMALL.items() if k in params}
    keras.utils.set_random_seed(1234)
    return cls(**kwargs)


def _names(model):
    return [t._keras_history.operation.name for t in model.inputs]


def _batch(model, t=12, lengths=(12, 6, 1), pre=False, seed=0):
    """Token ids (0 at padding), masks and zero segment ids for every model input."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((len(lengths), t), dtype="int32")
    for i, n in enumerate(lengths):
        mask[i, slice(t - n, t) if pre else slice(0, n)] = 1
    x = {}
    for name in _names(model):
        if "mask" in name:
            x[name] = mask
        elif "segment" in name:
            x[name] = np.zeros_like(mask)
        else:
            x[name] = np.where(mask.astype(bool), rng.integers(1, VOCAB, mask.shape), 0).astype("int32")
    return x, mask.astype(bool)


def _valid_diff(a, b, mask, align=lambda v: v):
    a, b = (a, b) if isinstance(a, dict) else ({"out": a}, {"out": b})
    worst = 0.0
    for key in a:
        va, vb = np.asarray(a[key]), align(np.asarray(b[key]))
        if va.ndim >= 2 and va.shape[1] == mask.shape[1]:
            diff = np.abs(va - vb) * mask.reshape(mask.shape + (1,) * (va.ndim - 2))
        else:
            diff = np.abs(va - vb)
        worst = max(worst, float(diff.max()))
    return worst


def _independent_change(model, pre):
    """Max change of valid outputs when padded token ids change (masks fixed)."""
    x, mask = _batch(model, pre=pre)
    rng = np.random.default_rng(99)
    x2 = {k: (np.where(mask, v, rng.integers(1, VOCAB, mask.shape)).astype("int32")
              if "mask" not in k and "segment" not in k else v) for k, v in x.items()}
    return _valid_diff(model(x, training=False), model(x2, training=False), mask)


def _amount_change(model, extra=6):
    """Max change of valid outputs when pre-padding grows by `extra` steps."""
    x, mask = _batch(model, pre=True)
    grown = {k: np.concatenate([np.zeros((v.shape[0], extra), v.dtype), v], axis=1) for k, v in x.items()}
    return _valid_diff(model(x, training=False), model(grown, training=False), mask,
                       align=lambda v: v[:, extra:] if v.ndim >= 2 and v.shape[1] == mask.shape[1] + extra else v)


@pytest.mark.parametrize("name", ENCODERS)
def test_encoder_with_padding_mask_has_no_error_finding(name):
    model = _build(name)
    report = maskcheck.check(model, mode="all", padding="post", seed=0)
    assert report.models[0].error is None, report.models[0].error
    assert "dynamic" not in report.models[0].stats, report.models[0].stats  # probes really ran
    assert not [f for f in report.all_findings if f.severity.value == "error"], \
        [(f.rule, f.layer, f.message) for f in report.all_findings]
    assert _independent_change(model, pre=False) < 1e-4


@pytest.mark.parametrize("name", ENCODERS + OTHERS)
def test_every_backbone_finding_is_verified_independently(name):
    model = _build(name)
    report = maskcheck.check(model, mode="all", padding="both", seed=0)
    assert report.models[0].error is None, report.models[0].error
    assert "dynamic" not in report.models[0].stats, report.models[0].stats
    for f in report.all_findings:
        if "dynamic" not in f.kind or f.evidence.get("refuted_by"):
            continue  # static-only findings are the static engine's tests' business
        code = f.evidence.get("confirmed_by", f.rule)
        pre = f.evidence.get("padding") == "pre"
        if code == "MC301":
            for side in f.evidence["sides"]:
                assert _independent_change(model, side == "pre") > 1e-4, (f.rule, f.layer, dict(f.evidence))
        elif code == "MC304":
            assert pre and _amount_change(model) > 1e-4, (f.rule, f.layer, dict(f.evidence))
        else:
            pytest.fail(f"unexpected dynamic finding {f.rule} at {f.layer}: {f.message}")
    # and the converse for the clean side: no MC301 under post means the outputs really hold
    if not any("post" in f.evidence.get("sides", ()) and "MC301" in (f.rule, f.evidence.get("confirmed_by"))
               for f in report.all_findings):
        assert _independent_change(model, pre=False) < 1e-4


def test_task_model_preprocessor_declares_pad_id_and_side():
    # SPEC 4 / issue 11: a task model's preprocessor says what padded token ids hold and
    # on which side its packer pads; the plan follows it (post only, once the packer exists).
    from maskcheck.config import Config
    from maskcheck.dynamic.plan import build_plan, preprocessor_padding
    from maskcheck.static.adapter import adapt_model
    from maskcheck.static.dataflow import analyze

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer=tokenizer,
                                                                   sequence_length=12)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocab), num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32,
                                             max_sequence_length=32)
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=preprocessor)
    assert preprocessor_padding(model) == (tokenizer.pad_token_id, ())
    preprocessor(["w1 w2"])  # builds the packer
    assert preprocessor_padding(model) == (tokenizer.pad_token_id, ("post",))
    graph = adapt_model(model)
    plan = build_plan(model, Config(), graph, analyze(graph))
    assert plan.sides == ("post",)
    report = maskcheck.check(model, seed=0)
    assert report.models[0].error is None
    assert {f.evidence.get("padding") for f in report.all_findings if "dynamic" in f.kind} <= {"post", None}
    assert not [f for f in report.all_findings if f.rule in ("MC301", "MC304")], \
        [(f.rule, f.layer) for f in report.all_findings]
