"""keras-hub backbones from small configurations (no downloads), checked by both engines.

Opt-in: `pytest -m kerashub`. Encoders fed their padding_mask must come out
with no error finding; every finding that does appear is re-checked here by
an independent perturbation (random token ids at padded positions, the
padding_mask held fixed) run directly through the model.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.kerashub
keras_hub = pytest.importorskip("keras_hub")

import keras  # noqa: E402

import maskcheck  # noqa: E402

SMALL = dict(vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
             max_sequence_length=32)


def _build(name):
    keras.utils.set_random_seed(1234)
    cls = getattr(keras_hub.models, name)
    kwargs = dict(SMALL)
    if name == "DistilBertBackbone":
        kwargs["dropout"] = 0.0
    return cls(**kwargs)


def _batch(model, t=12, lengths=(12, 6, 1), pre=False, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 64, (len(lengths), t)).astype("int32")
    mask = np.zeros((len(lengths), t), dtype="int32")
    for i, n in enumerate(lengths):
        sl = slice(t - n, t) if pre else slice(0, n)
        mask[i, sl] = 1
    ids = np.where(mask.astype(bool), ids, 0).astype("int32")
    x = {"token_ids": ids, "padding_mask": mask}
    if any(inp.name == "segment_ids" or "segment" in inp.name for inp in model.inputs):
        x["segment_ids"] = np.zeros_like(ids)
    return x, mask.astype(bool)


def _independent_change(model, pre):
    """Max change of valid outputs when padded token ids change (mask fixed)."""
    x, mask = _batch(model, pre=pre)
    rng = np.random.default_rng(99)
    x2 = dict(x)
    x2["token_ids"] = np.where(mask, x["token_ids"], rng.integers(1, 64, mask.shape)).astype("int32")
    a, b = model(x, training=False), model(x2, training=False)
    worst = 0.0
    for key in (a if isinstance(a, dict) else {"out": a}):
        va = np.asarray(a[key] if isinstance(a, dict) else a)
        vb = np.asarray(b[key] if isinstance(b, dict) else b)
        if va.ndim >= 2 and va.shape[1] == mask.shape[1]:
            sel = mask.reshape(mask.shape + (1,) * (va.ndim - 2))
            diff = np.abs(va - vb) * sel
        else:
            diff = np.abs(va - vb)
        worst = max(worst, float(diff.max()))
    return worst


def _amount_change(model, extra=6):
    """Max change of valid outputs when pre-padding grows by `extra` steps."""
    x, mask = _batch(model, pre=True)
    grown = {k: np.concatenate([np.zeros((v.shape[0], extra), v.dtype), v], axis=1) for k, v in x.items()}
    a, b = model(x, training=False), model(grown, training=False)
    a, b = (a, b) if isinstance(a, dict) else ({"out": a}, {"out": b})
    worst = 0.0
    for key in a:
        va, vb = np.asarray(a[key]), np.asarray(b[key])
        if va.ndim >= 2 and va.shape[1] == mask.shape[1]:
            vb = vb[:, extra:]
            diff = np.abs(va - vb) * mask.reshape(mask.shape + (1,) * (va.ndim - 2))
        else:
            diff = np.abs(va - vb)
        worst = max(worst, float(diff.max()))
    return worst


ALL = ["BertBackbone", "RobertaBackbone", "DistilBertBackbone", "GPT2Backbone"]
ENCODERS = ["BertBackbone", "RobertaBackbone", "DistilBertBackbone"]


@pytest.mark.parametrize("name", ENCODERS)
def test_encoder_with_padding_mask_has_no_error_finding(name):
    report = maskcheck.check(_build(name), mode="all", padding="post", seed=0)
    assert report.models[0].error is None, report.models[0].error
    assert not [f for f in report.findings if f.severity.value == "error"], \
        [(f.rule, f.layer, f.message) for f in report.findings]


@pytest.mark.parametrize("name", ALL)
def test_every_backbone_finding_is_verified_independently(name):
    model = _build(name)
    report = maskcheck.check(model, mode="all", padding="both", seed=0)
    assert report.models[0].error is None, report.models[0].error
    for f in report.findings:
        code = f.evidence.get("confirmed_by", f.rule) if "dynamic" in f.kind else None
        if code is None:
            continue  # static-only findings are the static engine's tests' business
        pre = f.evidence.get("padding") == "pre"
        if code == "MC301":
            assert _independent_change(model, pre) > 1e-4, (f.rule, f.layer, dict(f.evidence))
        elif code == "MC304":
            assert pre and _amount_change(model) > 1e-4, (f.rule, f.layer, dict(f.evidence))
        else:
            pytest.fail(f"unexpected dynamic finding {f.rule} at {f.layer}: {f.message}")


def test_encoder_valid_outputs_ignore_padding_independently():
    model = _build("BertBackbone")
    assert _independent_change(model, pre=False) < 1e-4
