"""The keras-hub rows of the semantics table (`maskcheck.static.semantics.keras_hub`), checked against keras-hub.

Opt-in: `pytest -m kerashub`. Measured the way `tests/test_semantics.py`
measures the Keras rows, on tiny layers:

* `along`: change only the padded steps' inputs of sample 0 and look at its
  valid outputs, with no mask, under post- and pre-padding (pointwise: no
  change; causal: a change under pre-padding only; mixing: both);
* `uses_mask`: the same with the layer's mask keyword (``padding_mask``,
  ``decoder_padding_mask``, ``attention_mask``): no change; and the call takes
  such a keyword (what the static adapter reads);
* whether the layer also applies the mask Keras attached to its input
  (``_keras_mask``): measured and pinned below, not a table column;
* `propagates` / `generates`: the output carries a mask, on the symbolic graph
  and at run time (`mask_at_runtime`: at run time only);
* `mixes_features`: changing one feature changes the others at that step;
* `absolute_positions`: the same valid steps, masked, left-padded to T and to
  T + 3: their outputs change (for rotary embeddings: the query-key products
  of rotated queries and keys, which is what attention reads);
* per backbone (BERT, GPT-2, Llama, Bloom, DeBERTa-v3): the same left-padding
  probe through the whole model, next to what the table says about its graph.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

pytestmark = [pytest.mark.kerashub, pytest.mark.filterwarnings("ignore::UserWarning")]
keras_hub = pytest.importorskip("keras_hub")

import keras  # noqa: E402
from keras import ops  # noqa: E402
from keras.src.backend.common.masking import get_keras_mask, set_keras_mask  # noqa: E402

from maskcheck.static.adapter import adapt_model  # noqa: E402
from maskcheck.static.semantics.keras import KERAS_TABLE  # noqa: E402
from maskcheck.static.semantics.keras_hub import HUB_TABLE  # noqa: E402
from maskcheck.static.semantics import (CAUSAL, MIXING, POINTWISE, TABLE, effect_on_axis,  # noqa: E402
                                        lookup, semantics_for)

T, F, LENGTH, EXTRA = 8, 8, 5, 3  # sample 0 holds LENGTH valid steps out of T
TOL = 1e-4
BUCKETS = 3  # RelativeEmbedding's output length, 2 * BUCKETS, differs from T


def _hub_class(path: str) -> type:
    """A keras-hub class by its module path (backbone-specific layers are not exported)."""
    module, name = path.rsplit(".", 1)
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        pytest.skip(f"keras-hub {keras_hub.__version__} has no {path}")


def _pairs(mask: Any) -> Any:
    """A (batch, T) mask as the (batch, T, T) attention mask the attention sub-layers take."""
    m = ops.cast(mask, "int32")
    return ops.expand_dims(m, 1) * ops.expand_dims(m, 2)


_REL = np.random.default_rng(5).normal(size=(2, 2 * BUCKETS, F)).astype("float32")

_LLAMA = "keras_hub.src.models.llama"
_BLOOM = "keras_hub.src.models.bloom"
_DEBERTA = "keras_hub.src.models.deberta_v3"


@dataclass(frozen=True)
class Case:
    row: str
    factory: Callable[[], Any]
    #: call(layer, x, mask): mask is a (batch, T) mask for the layer's keyword, or None
    call: Callable[[Any, Any, Any], Any]
    #: config the call records (read by `semantics_for`), e.g. use_causal_mask=False
    config: dict = field(default_factory=dict)
    #: keras-hub fails when the layer gets no mask at all: "no mask" is an all-valid one
    needs_mask: bool = False
    #: it fails unless its keyword is given (the input's _keras_mask is not enough)
    needs_keyword: bool = False
    #: measured: the mask Keras attached to the input (_keras_mask) is applied
    reads_keras_mask: bool = False
    #: how positions are measured: on the outputs, on rotated query-key products, or not
    #: at all (a mixing layer with no mask: every change is a leak already)
    positions: str = "outputs"


def _kw(name: str) -> Callable[[Any, Any, Any], Any]:
    return lambda layer, x, m: layer(x) if m is None else layer(x, **{name: m})


CASES = {
    "TransformerEncoder": Case(
        "TransformerEncoder", lambda: keras_hub.layers.TransformerEncoder(16, 2),
        _kw("padding_mask"), reads_keras_mask=True),
    "TransformerDecoder": Case(
        "TransformerDecoder", lambda: keras_hub.layers.TransformerDecoder(16, 2),
        _kw("decoder_padding_mask"), reads_keras_mask=True),
    "TransformerDecoder-noncausal": Case(
        "TransformerDecoder", lambda: keras_hub.layers.TransformerDecoder(16, 2),
        lambda l, x, m: l(x, decoder_padding_mask=m, use_causal_mask=False),
        config={"call:use_causal_mask": False}, reads_keras_mask=True),
    "CachedMultiHeadAttention": Case(
        "CachedMultiHeadAttention", lambda: keras_hub.layers.CachedMultiHeadAttention(2, 4),
        lambda l, x, m: l(x, x, attention_mask=None if m is None else _pairs(m))),
    "FNetEncoder": Case(
        "FNetEncoder", lambda: keras_hub.layers.FNetEncoder(16), lambda l, x, m: l(x),
        positions="none"),
    "PositionEmbedding": Case(
        "PositionEmbedding", lambda: keras_hub.layers.PositionEmbedding(16),
        lambda l, x, m: l(x)),
    "SinePositionEncoding": Case(
        "SinePositionEncoding", lambda: keras_hub.layers.SinePositionEncoding(),
        lambda l, x, m: l(x)),
    "RotaryEmbedding": Case(
        "RotaryEmbedding", lambda: keras_hub.layers.RotaryEmbedding(), lambda l, x, m: l(x),
        positions="scores"),
    "LlamaTransformerDecoder": Case(
        "LlamaTransformerDecoder",
        lambda: _hub_class(f"{_LLAMA}.llama_decoder.LlamaTransformerDecoder")(16, 2, 1),
        _kw("decoder_padding_mask"), reads_keras_mask=True),
    "LlamaAttention": Case(
        "LlamaAttention", lambda: _hub_class(f"{_LLAMA}.llama_attention.LlamaAttention")(2, 1),
        lambda l, x, m: l(x, attention_mask=None if m is None else _pairs(m))),
    "LlamaRotaryEmbedding": Case(
        "LlamaRotaryEmbedding",
        lambda: _hub_class(f"{_LLAMA}.llama_rotary_embedding.LlamaRotaryEmbedding")(),
        lambda l, x, m: l(x), positions="scores"),
    "LlamaLayerNorm": Case(
        "LlamaLayerNorm", lambda: _hub_class(f"{_LLAMA}.llama_layernorm.LlamaLayerNorm")(),
        lambda l, x, m: l(x)),
    "GemmaDecoderBlock": Case(
        "GemmaDecoderBlock",
        lambda: _hub_class("keras_hub.src.models.gemma.gemma_decoder_block.GemmaDecoderBlock")(
            F, 16, 4, 2, 1),
        _kw("padding_mask")),
    "MistralTransformerDecoder": Case(
        "MistralTransformerDecoder",
        lambda: _hub_class("keras_hub.src.models.mistral.mistral_transformer_decoder."
                           "MistralTransformerDecoder")(16, 2, 1),
        _kw("decoder_padding_mask"), reads_keras_mask=True),
    "Qwen3TransformerDecoder": Case(
        "Qwen3TransformerDecoder",
        lambda: _hub_class("keras_hub.src.models.qwen3.qwen3_decoder.Qwen3TransformerDecoder")(
            16, 2, 1, head_dim=4),
        _kw("decoder_padding_mask"), reads_keras_mask=True),
    "GPTNeoXDecoder": Case(
        "GPTNeoXDecoder",
        lambda: _hub_class("keras_hub.src.models.gpt_neo_x.gpt_neo_x_decoder.GPTNeoXDecoder")(
            16, 2, rotary_percentage=1.0),
        _kw("decoder_padding_mask"), reads_keras_mask=True),
    "Phi3Decoder": Case(
        "Phi3Decoder",
        lambda: _hub_class("keras_hub.src.models.phi3.phi3_decoder.Phi3Decoder")(F, 16, 2, 1),
        _kw("decoder_padding_mask"), reads_keras_mask=True),
    "BloomDecoder": Case(
        "BloomDecoder", lambda: _hub_class(f"{_BLOOM}.bloom_decoder.BloomDecoder")(2, 16),
        _kw("decoder_padding_mask"), reads_keras_mask=True),
    "BloomDecoder-noncausal": Case(
        "BloomDecoder", lambda: _hub_class(f"{_BLOOM}.bloom_decoder.BloomDecoder")(2, 16),
        lambda l, x, m: l(x, decoder_padding_mask=m, use_causal_mask=False),
        config={"call:use_causal_mask": False}, needs_mask=True, reads_keras_mask=True),
    "BloomAttention": Case(
        "BloomAttention", lambda: _hub_class(f"{_BLOOM}.bloom_attention.BloomAttention")(2),
        lambda l, x, m: l(x, attention_mask=_pairs(m)), needs_mask=True, needs_keyword=True),
    "DisentangledAttentionEncoder": Case(
        "DisentangledAttentionEncoder",
        lambda: _hub_class(f"{_DEBERTA}.disentangled_attention_encoder."
                           "DisentangledAttentionEncoder")(16, 2, 32, BUCKETS),
        lambda l, x, m: l(x, _REL) if m is None else l(x, _REL, padding_mask=m),
        needs_mask=True, reads_keras_mask=True),
    "DisentangledSelfAttention": Case(
        "DisentangledSelfAttention",
        lambda: _hub_class(f"{_DEBERTA}.disentangled_self_attention."
                           "DisentangledSelfAttention")(2, F, 32, BUCKETS),
        lambda l, x, m: l(x, _REL, attention_mask=_pairs(m)), needs_mask=True,
        needs_keyword=True),
    "RelativeEmbedding": Case(
        "RelativeEmbedding",
        lambda: _hub_class(f"{_DEBERTA}.relative_embedding.RelativeEmbedding")(F, BUCKETS),
        lambda l, x, m: l(x)),
}


def _build(case: Case) -> Any:
    keras.utils.set_random_seed(0)
    return case.factory()


def _no_mask(case: Case, mask: np.ndarray) -> np.ndarray | None:
    return np.ones_like(mask) if case.needs_mask else None


def _batches(side: str, t: int = T):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, t, F)).astype("float32")
    mask = np.ones((2, t), bool)
    padded = slice(LENGTH, t) if side == "post" else slice(0, t - LENGTH)
    mask[0, padded] = False
    x[0, padded] = 0.0
    perturbed = x.copy()
    perturbed[0, padded] = rng.normal(size=perturbed[0, padded].shape) * 3.0 + 1.0
    return x, perturbed, mask


def _tensor(data: np.ndarray, keras_mask: np.ndarray | None = None) -> Any:
    tensor = ops.convert_to_tensor(data)
    if keras_mask is not None:
        set_keras_mask(tensor, ops.convert_to_tensor(keras_mask))
    return tensor


def _valid(out: Any, mask: np.ndarray, sample: int = 0) -> np.ndarray:
    out = np.asarray(out)[sample]
    return out[mask[sample]] if out.shape[0] == mask.shape[1] else out


def _leak(case: Case, layer: Any, side: str, how: str) -> float:
    """Largest change of sample 0's valid outputs when only its padded inputs change.

    how: "none" (no mask), "keyword" (the layer's mask keyword) or "keras_mask" (the
    mask attached to the input, as an upstream Embedding(mask_zero=True) would)."""
    x, perturbed, mask = _batches(side)
    outs = []
    for data in (x, perturbed):
        if how == "keyword":
            outs.append(case.call(layer, _tensor(data), mask))
        elif how == "keras_mask":
            keyword = np.ones_like(mask) if case.needs_keyword else None
            outs.append(case.call(layer, _tensor(data, mask), keyword))
        else:
            outs.append(case.call(layer, _tensor(data), _no_mask(case, mask)))
    return float(np.max(np.abs(_valid(outs[0], mask) - _valid(outs[1], mask))))


def _left_padded(t_extra: int):
    """The batch of `_batches("pre")`, with `t_extra` more padded steps in front."""
    x, _, mask = _batches("pre")
    x2 = np.concatenate([np.zeros((2, t_extra, F), "float32"), x], axis=1)
    mask2 = np.concatenate([np.zeros((2, t_extra), bool), mask], axis=1)
    return x, mask, x2, mask2


def _position_change(case: Case, layer: Any, uses_mask: bool) -> float:
    """Largest change of valid outputs between left-padding to T and to T + EXTRA."""
    x, mask, x2, mask2 = _left_padded(EXTRA)
    kw, kw2 = (mask, mask2) if uses_mask else (_no_mask(case, mask), _no_mask(case, mask2))
    a, b = np.asarray(case.call(layer, _tensor(x), kw)), np.asarray(case.call(layer, _tensor(x2), kw2))
    if a.shape[1] != T:  # no time axis in the output (RelativeEmbedding)
        return float(np.max(np.abs(a - b)))
    b = b[:, EXTRA:]
    return max(float(np.max(np.abs(a[i][mask[i]] - b[i][mask[i]]))) for i in range(2))


def _score_change(layer: Any) -> tuple[float, float]:
    """Rotary embeddings on queries and keys (batch, T, heads, dim), left-padded to T and
    T + EXTRA: the change of the rotated outputs, and of the valid query-key products."""
    rng = np.random.default_rng(3)
    q, k = (rng.normal(size=(2, T, 2, F)).astype("float32") for _ in range(2))
    pad = np.zeros((2, EXTRA, 2, F), "float32")
    q2, k2 = np.concatenate([pad, q], 1), np.concatenate([pad, k], 1)
    rq, rk = np.asarray(layer(q)), np.asarray(layer(k))
    rq2, rk2 = np.asarray(layer(q2))[:, EXTRA:], np.asarray(layer(k2))[:, EXTRA:]
    scores = np.einsum("bqhd,bkhd->bhqk", rq, rk)
    scores2 = np.einsum("bqhd,bkhd->bhqk", rq2, rk2)
    valid = slice(T - LENGTH, T)
    return (float(np.max(np.abs(rq - rq2))),
            float(np.max(np.abs(scores[..., valid, valid] - scores2[..., valid, valid]))))


def _feature_change(case: Case, layer: Any) -> float:
    """Change of the other features at one step when one feature of that step changes."""
    x, _, mask = _batches("post")
    x2 = x.copy()
    x2[1, 2, 0] += 3.0
    kw = _no_mask(case, mask)
    a, b = np.asarray(case.call(layer, _tensor(x), kw)), np.asarray(case.call(layer, _tensor(x2), kw))
    return float(np.max(np.abs(a[1, 2, 1:] - b[1, 2, 1:])))


def _symbolic(case: Case, layer: Any):
    """The layer after Masking in a Functional model: its graph node, its row, its output."""
    x_in = keras.Input((None, F))
    m_in = keras.Input((None,), dtype="int32")
    h = keras.layers.Masking(mask_value=-99.0)(x_in)
    out = case.call(layer, h, m_in if case.needs_keyword else None)
    model = keras.Model([x_in, m_in] if case.needs_keyword else x_in, out)
    node = next(n for n in adapt_model(model).nodes if n.name == layer.name)
    return node, semantics_for(node.class_name, node.config, bases=node.bases), out


def _predicted_leak(sem, config, side: str) -> bool:
    effect = effect_on_axis(sem, config, 1, 3)
    return effect == MIXING or (effect == CAUSAL and side == "pre")


def test_hub_rows_are_merged_into_the_table_and_override_no_keras_row() -> None:
    assert all(TABLE[name] is row for name, row in HUB_TABLE.items())
    assert not set(HUB_TABLE) & set(KERAS_TABLE)


def test_hub_table_imports_neither_keras_nor_keras_hub() -> None:
    for first in ("maskcheck.static.semantics.keras_hub", "maskcheck.static.semantics"):
        code = (f"import sys, {first}; from maskcheck.static.semantics import TABLE; "
                "from maskcheck.static.semantics.keras_hub import HUB_TABLE; "
                "assert all(TABLE[k] is v for k, v in HUB_TABLE.items()); "
                "assert not {'keras', 'keras_hub', 'tensorflow'} & set(sys.modules)")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_every_hub_row_is_measured_here() -> None:
    measured = {case.row for case in CASES.values()} | {"TokenAndPositionEmbedding", "AlibiBias"}
    assert set(HUB_TABLE) <= measured, sorted(set(HUB_TABLE) - measured)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_hub_row_matches_keras_hub(case_id: str) -> None:
    case = CASES[case_id]
    layer = _build(case)
    node, sem, out = _symbolic(case, layer)
    assert sem == semantics_for(case.row, case.config), (node.class_name, node.config)
    assert lookup(case.row) is HUB_TABLE[case.row]
    # the call takes a mask keyword exactly when the row applies a mask
    assert node.takes_mask == sem.uses_mask, f"{case_id}: takes_mask={node.takes_mask}"
    # propagates: on the symbolic graph and at run time, from the input's _keras_mask
    symbolic = getattr(out, "_keras_mask", None) is not None
    x, _, mask = _batches("post")
    eager = case.call(layer, _tensor(x, mask), np.ones_like(mask) if case.needs_keyword else None)
    at_run_time = get_keras_mask(eager) is not None
    assert symbolic == at_run_time == sem.propagates, (
        f"{case_id}: output mask symbolically {symbolic}, at run time {at_run_time}; "
        f"table propagates={sem.propagates}")
    assert not sem.generates and not sem.mask_at_runtime
    # along: only the padded inputs of sample 0 change, no mask
    for side in ("post", "pre"):
        diff = _leak(case, layer, side, "none")
        assert (diff > TOL) == _predicted_leak(sem, case.config, side), (
            f"{case_id} ({side}-padding, no mask): change {diff:.3g} at valid steps, "
            f"table says {effect_on_axis(sem, case.config, 1, 3)}")
        if sem.uses_mask:
            diff = _leak(case, layer, side, "keyword")
            assert diff < TOL, f"{case_id} ({side}-padding, mask keyword): change {diff:.3g}"
        # where the layer leaks without a mask (a causal one under pre-padding only), the
        # mask Keras attached to its input stops the leak only if the layer reads it
        if sem.along != POINTWISE and _predicted_leak(sem, case.config, side):
            diff = _leak(case, layer, side, "keras_mask")
            assert (diff < TOL) == case.reads_keras_mask, (
                f"{case_id} ({side}-padding, _keras_mask only): change {diff:.3g}")
    assert (_feature_change(case, layer) > TOL) == sem.mixes_features, case_id
    # absolute positions
    if case.positions == "outputs":
        diff = _position_change(case, layer, sem.uses_mask)
        assert (diff > TOL) == sem.absolute_positions, (
            f"{case_id}: valid outputs change by {diff:.3g} under {EXTRA} more left-padded "
            f"steps; table absolute_positions={sem.absolute_positions}")
    elif case.positions == "scores":
        outputs, scores = _score_change(layer)
        assert outputs > TOL  # each step is rotated by its own position's angle ...
        assert (scores > TOL) == sem.absolute_positions  # ... but q.k sees distances only


def test_alibi_bias_is_relative() -> None:
    layer = keras_hub.layers.AlibiBias()
    sem = lookup("AlibiBias")
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(2, 2, T, T)).astype("float32")
    # left padding: the bias counts keys from the last one, so valid keys keep theirs
    grown = np.zeros((2, 2, T + EXTRA, T + EXTRA), "float32")
    grown[..., EXTRA:, EXTRA:] = scores
    a, b = np.asarray(layer(scores)), np.asarray(layer(grown))[..., EXTRA:, EXTRA:]
    left = float(np.max(np.abs(a - b)))
    # post padding: valid keys' biases move by one constant per query row, which the
    # softmax over the valid keys cancels
    grown = np.zeros((2, 2, T + EXTRA, T + EXTRA), "float32")
    grown[..., :T, :T] = scores
    b = np.asarray(layer(grown))[..., :T, :T]
    shift = a - b
    post = float(np.max(np.abs(keras.ops.softmax(a, -1) - keras.ops.softmax(b, -1))))
    assert left < TOL and post < TOL and float(np.ptp(shift, axis=-1).max()) < TOL
    assert float(np.max(np.abs(shift))) > TOL  # the raw bias did move
    assert not sem.absolute_positions and sem.along == POINTWISE


# --- embeddings: the mask they generate ---------------------------------------------

def _ids(side: str = "post") -> np.ndarray:
    ids = np.array([[7, 3, 9, 4, 2, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8]], "int32")
    if side == "pre":
        ids[0] = np.roll(ids[0], T - LENGTH)
    return ids


def _tpe(mask_zero: bool, name: str = "tpe") -> Any:
    keras.utils.set_random_seed(0)
    return keras_hub.layers.TokenAndPositionEmbedding(50, 32, F, mask_zero=mask_zero, name=name)


@pytest.mark.parametrize("mask_zero", [True, False])
def test_token_and_position_embedding_mask_exists_at_run_time_only(mask_zero: bool) -> None:
    x = keras.Input((None,), dtype="int32")
    layer = _tpe(mask_zero)
    h = layer(x)
    node = next(n for n in adapt_model(keras.Model(x, h)).nodes if n.name == "tpe")
    sem = semantics_for(node.class_name, node.config, bases=node.bases)
    assert getattr(h, "_keras_mask", None) is None  # Keras shows no mask on the graph
    assert node.keras_output_masks == (False,)
    eager = get_keras_mask(layer(_ids()))
    assert (eager is not None) == mask_zero  # ... but attaches it at run time
    if mask_zero:
        np.testing.assert_array_equal(np.asarray(eager), _ids() != 0)
    assert sem.generates == sem.mask_at_runtime == mask_zero
    assert sem.absolute_positions and sem.along == POINTWISE and not sem.propagates


@pytest.mark.parametrize("mask_zero", [True, False])
@pytest.mark.parametrize("causal", [True, False])
def test_the_run_time_mask_reaches_the_next_transformer_decoder(mask_zero: bool,
                                                                causal: bool) -> None:
    """Token ids -> TokenAndPositionEmbedding -> TransformerDecoder, in a Functional model.

    Padded steps hold id 0 and nothing else, so what reaches the decoder from them is
    embedding row 0: change that row and nothing else (ids, positions and padding stay
    the same), and the decoder's valid outputs hold exactly when it applies the mask.
    The causal decoder is probed under pre-padding (post-padding cannot leak through a
    causal mask), the non-causal one under post-padding."""
    x = keras.Input((None,), dtype="int32")
    tpe = _tpe(mask_zero)
    out = keras_hub.layers.TransformerDecoder(16, 2)(tpe(x), use_causal_mask=causal)
    assert getattr(out, "_keras_mask", None) is None
    model = keras.Model(x, out)
    ids = _ids("pre" if causal else "post")
    valid = ids[0] != 0
    weights = tpe.token_embedding.embeddings
    before = np.asarray(model(ids))[0][valid]
    changed = np.asarray(weights).copy()
    changed[0] = np.random.default_rng(1).normal(size=F) * 5.0
    weights.assign(changed)
    after = np.asarray(model(ids))[0][valid]
    diff = float(np.max(np.abs(before - after)))
    assert (diff < TOL) == mask_zero, f"valid outputs changed by {diff:.3g}"
    assert (get_keras_mask(model(ids)) is not None) == mask_zero  # and it passes it on
    if mask_zero and causal:  # compiled (model.predict) too, not only eager
        first = model.predict(ids, verbose=0)[0][valid]
        changed[0] *= -3.0
        weights.assign(changed)
        second = model.predict(ids, verbose=0)[0][valid]
        assert float(np.max(np.abs(first - second))) < TOL


def test_token_and_position_embedding_is_position_wise_over_ids_and_absolute() -> None:
    layer = _tpe(False)
    for side in ("post", "pre"):
        ids = _ids(side)
        valid = ids[0] != 0
        other = ids.copy()
        other[0, ~valid] = np.arange(1, T - LENGTH + 1) + 20
        diff = np.abs(np.asarray(layer(ids))[0][valid] - np.asarray(layer(other))[0][valid])
        assert float(diff.max()) == 0.0, side
    ids = _ids("pre")
    grown = np.concatenate([np.zeros((2, EXTRA), "int32"), ids], axis=1)
    diff = np.abs(np.asarray(layer(ids))[0, T - LENGTH:] - np.asarray(layer(grown))[0, T - LENGTH + EXTRA:])
    assert float(diff.max()) > TOL
    assert lookup("TokenAndPositionEmbedding").absolute_positions


@pytest.mark.parametrize("module", ["keras", "keras_hub"])
def test_reversible_embedding_mask_exists_at_run_time_only(module: str) -> None:
    cls = (keras if module == "keras" else keras_hub).layers.ReversibleEmbedding
    for mask_zero in (True, False):
        x = keras.Input((None,), dtype="int32")
        layer = cls(20, F, mask_zero=mask_zero, name="emb")
        h = layer(x)
        logits = layer(h, reverse=True)
        nodes = [n for n in adapt_model(keras.Model(x, logits)).nodes if n.name == "emb"]
        embed, reverse = (semantics_for(n.class_name, n.config, bases=n.bases) for n in nodes)
        assert getattr(h, "_keras_mask", None) is None
        assert (get_keras_mask(layer(_ids())) is not None) == mask_zero
        assert embed.generates == embed.mask_at_runtime == mask_zero
        assert embed.along == POINTWISE and not embed.absolute_positions
        # reverse=True: logits over the vocabulary, no mask made or passed on
        masked = _tensor(np.ones((2, T, F), "float32"), _ids() != 0)
        assert get_keras_mask(layer(masked, reverse=True)) is None
        assert reverse.mixes_features and not (reverse.generates or reverse.propagates)


# --- backbones: absolute positions under left padding -----------------------------

SMALL = dict(vocabulary_size=64, num_layers=2, num_heads=2, num_query_heads=2,
             num_key_value_heads=1, hidden_dim=16, intermediate_dim=32, max_sequence_length=32,
             dropout=0.0)
#: backbone -> (valid outputs change under more left padding, the keyword its
#: Transformer layers take the padding mask through)
BACKBONES = {
    "BertBackbone": (True, "padding_mask"),
    "GPT2Backbone": (True, "decoder_padding_mask"),
    "LlamaBackbone": (False, "decoder_padding_mask"),
    "BloomBackbone": (False, "decoder_padding_mask"),
    "DebertaV3Backbone": (False, "padding_mask"),
}
TOKENS = np.array([5, 9, 17, 33, 2], "int32")


def _backbone(name: str) -> Any:
    cls = getattr(keras_hub.models, name, None)
    if cls is None:
        pytest.skip(f"keras-hub {keras_hub.__version__} has no {name}")
    params = inspect.signature(cls.__init__).parameters
    keras.utils.set_random_seed(0)
    return cls(**{k: v for k, v in SMALL.items() if k in params})


def _inputs(model: Any, t: int, side: str) -> dict[str, np.ndarray]:
    """TOKENS in both samples, padded to `t` on `side`, with padding_mask and segment_ids."""
    n = len(TOKENS)
    steps = slice(t - n, t) if side == "pre" else slice(0, n)
    mask = np.zeros((2, t), "int32")
    mask[:, steps] = 1
    ids = np.zeros((2, t), "int32")
    ids[:, steps] = TOKENS
    names = [i._keras_history.operation.name for i in model.inputs]
    return {k: mask if "mask" in k else np.zeros_like(mask) if "segment" in k else ids
            for k in names}


def _sequence(model: Any, x: dict) -> np.ndarray:
    out = model(x, training=False)
    return np.asarray(out["sequence_output"] if isinstance(out, dict) else out)


def _bases(cls: type) -> list[str]:
    return [c.__name__ for c in cls.__mro__[1:]]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_left_padding_matches_the_table(name: str) -> None:
    changes, keyword = BACKBONES[name]
    model = _backbone(name)
    n = len(TOKENS)
    short, long_ = (_sequence(model, _inputs(model, t, "pre"))[:, -n:] for t in (T, T + EXTRA))
    left = float(np.max(np.abs(short - long_)))
    assert (left > TOL) == changes, f"{name}: valid outputs change by {left:.3g} under more left padding"
    short, long_ = (_sequence(model, _inputs(model, t, "post"))[:, :n] for t in (T, T + EXTRA))
    assert float(np.max(np.abs(short - long_))) < TOL, f"{name}: post-padding control"
    # the table says the same about the graph: a layer with absolute positions in it
    graph = adapt_model(model)
    rows = [(node, semantics_for(node.class_name, node.config, bases=node.bases, is_op=node.is_op))
            for node in graph.nodes if not node.is_input]
    absolute = sorted({node.class_name for node, sem in rows if sem.absolute_positions})
    assert bool(absolute) == changes, absolute
    assert all(sem.known for _, sem in rows), [n.class_name for n, s in rows if not s.known]
    # its Transformer layers take the padding mask through `keyword`, and apply it
    masked = [(node, sem) for node, sem in rows if node.mask_inputs]
    assert masked and all(sem.uses_mask and node.takes_mask for node, sem in masked)
    assert {kw for node, _ in masked for kw, _ in node.mask_inputs} == {keyword}
    # every keras-hub class inside it, sub-layers included, has a row
    classes = {type(l) for l in model._flatten_layers(include_self=False, recursive=True)
               if type(l).__module__.startswith("keras_hub.")}
    assert all(lookup(c.__name__, _bases(c)).known for c in classes), sorted(
        c.__name__ for c in classes if not lookup(c.__name__, _bases(c)).known)
