"""What padded positions hold, read statically (issue 22, part 3).

Each clean model is built the way public code builds it (shrunk), and beside it
a leaking twin that must still get its finding. A clean model is checked with
both engines (`mode="all"`): no error-severity finding at all.

* masked RNN outputs into Flatten, max pooling or a sum over a fixed-length
  axis: padded steps hold the RNN's carried state, computed from valid steps
  only, and with a fixed length the amount of padding is each sample's own;
* a causal convolution or a running sum over padded steps that hold zeros
  (the mask multiplied in) or a masked RNN's state (zeros before the valid
  steps);
* a custom pooling layer that takes the padding mask as an ordinary argument
  (positional or keyword; a model input or computed) and multiplies by it;
* a custom layer that reverses the steps and reverses the mask with them in
  `compute_mask`.
"""

from __future__ import annotations

import keras
import pytest
from keras import layers, ops

import maskcheck
from maskcheck.finding import Finding, Severity

MAXLEN = 12
LEAKS = ("MC102", "MC103", "MC105")


def _check(model, mode="static", **kwargs):
    report = maskcheck.check(model, mode=mode, **kwargs).models[0]
    assert report.error is None, report.error
    return report.findings


def _errors(findings):
    return [f"{f.rule}@{f.layer}" for f in findings if f.severity is Severity.ERROR]


def _leaks(findings):
    return [f for f in findings if f.rule in LEAKS and f.severity is not Severity.INFO]


def assert_clean(model, **kwargs) -> None:
    """No static leak finding, and no error-severity finding with the probes too."""
    static = _check(model, **kwargs)
    assert not _leaks(static), [f"{f.rule}@{f.layer}: {f.message}" for f in static]
    both = _check(model, mode="all", **kwargs)
    assert not _errors(both), [f"{f.rule}@{f.layer}: {f.message}" for f in both]


# --- masked RNN outputs into Flatten / max pooling / a sum, fixed length ------------------

def _rnn_classifier(head: str, mask_zero: bool = True, rnn: bool = True):
    """keras.io-style text classifier: pad_sequences(maxlen=12), Embedding(mask_zero=True),
    LSTM(return_sequences=True), then the time axis ends in `head`."""
    tokens = keras.Input((MAXLEN,), dtype="int32", name="tokens")
    h = layers.Embedding(200, 16, mask_zero=mask_zero)(tokens)
    h = layers.LSTM(8, return_sequences=True)(h) if rnn else layers.Dense(8)(h)
    if head == "flatten":
        h = layers.Flatten(name="head_pool")(h)
    elif head == "global_max":
        h = layers.GlobalMaxPooling1D(name="head_pool")(h)
    elif head == "max_pool":
        h = layers.Flatten()(layers.MaxPooling1D(2, name="head_pool")(h))
    elif head == "sum":  # Lambda(lambda x: K.sum(x, axis=1)) in attention-pooling code
        h = layers.Lambda(lambda x: ops.sum(x, axis=1), name="head_pool")(h)
    outputs = layers.Dense(1, activation="sigmoid")(layers.Dense(8, activation="relu")(h))
    return keras.Model(tokens, outputs)


@pytest.mark.parametrize("head", ["flatten", "global_max", "max_pool", "sum"])
def test_masked_rnn_outputs_into_fixed_length_pooling_are_clean(head):
    assert_clean(_rnn_classifier(head))


@pytest.mark.parametrize("head", ["flatten", "global_max", "max_pool", "sum"])
def test_unmasked_twins_still_leak(head):
    # no mask_zero: the LSTM reads the padding itself (and so does what pools it)
    assert "MC102" in {f.rule for f in _leaks(_check(_rnn_classifier(head, mask_zero=False)))}
    # a mask, but position-wise layers leave the padding values where the pool reads them
    found = _leaks(_check(_rnn_classifier(head, rnn=False)))
    culprits = [f.layer for f in found if f.rule == "MC102"]
    if head == "max_pool":  # the Flatten after the pool folds padded steps in too: its own culprit
        assert len(culprits) == 2 and "head_pool" in culprits, found
        assert any(layer.startswith("flatten") for layer in culprits), found
    else:
        assert culprits == ["head_pool"], found


def test_flatten_over_carried_state_no_longer_drops_a_needed_mask():
    findings = _check(_rnn_classifier("flatten"))
    assert not [f for f in findings if f.rule in ("MC101", "MC102")], findings


# --- causal convolution and running sums over zeros or a masked RNN's state --------------

def _causal_over_rnn(op: str, masked: bool = True):
    """Embedding(mask_zero) -> LSTM(return_sequences) -> causal Conv1D (WaveNet-style
    head) or a running sum, over a variable length."""
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    h = layers.Embedding(200, 16, mask_zero=masked)(tokens)
    h = layers.LSTM(8, return_sequences=True)(h)
    if op == "conv":
        h = layers.Conv1D(8, 3, padding="causal", name="causal")(h)
    else:
        h = layers.Lambda(lambda x: ops.cumsum(x, axis=1), name="causal")(h)
    return keras.Model(tokens, layers.Dense(3)(h))


def _causal_over_zeros(op: str, zeroed: bool = True):
    """Features with a padding_mask input multiplied in by hand, then a causal op."""
    frames = keras.Input((None, 6), name="frames")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    h = layers.Dense(8)(frames)
    if zeroed:
        h = h * ops.expand_dims(ops.cast(padding_mask, h.dtype), -1)
    if op == "conv":
        h = layers.Conv1D(8, 3, padding="causal", use_bias=False, name="causal")(h)
    else:
        h = layers.Lambda(lambda x: ops.cumsum(x, axis=1), name="causal")(h)
    return keras.Model({"frames": frames, "padding_mask": padding_mask}, layers.Dense(2)(h))


@pytest.mark.parametrize("op", ["conv", "cumsum"])
@pytest.mark.parametrize("padding", ["post", "pre"])
def test_causal_ops_over_a_masked_rnn_state_are_clean(op, padding):
    assert_clean(_causal_over_rnn(op), padding=padding)


@pytest.mark.parametrize("op", ["conv", "cumsum"])
def test_causal_ops_over_zeroed_padding_are_clean(op):
    for padding in ("post", "pre"):
        assert not _leaks(_check(_causal_over_zeros(op), padding=padding))
    assert_clean(_causal_over_zeros(op), padding="pre")


@pytest.mark.parametrize("op", ["conv", "cumsum"])
def test_causal_twins_over_padding_values_leak_under_pre_padding(op):
    found = _leaks(_check(_causal_over_zeros(op, zeroed=False), padding="pre"))
    assert [f.layer for f in found] == ["causal"], found
    assert not _leaks(_check(_causal_over_zeros(op, zeroed=False), padding="post"))
    found = _leaks(_check(_causal_over_rnn(op, masked=False), padding="pre"))
    assert "MC102" in {f.rule for f in found}, found


# --- a pooling layer that takes the padding mask as an ordinary argument -----------------

class MaskedMeanPool(layers.Layer):
    """The masked mean pooling of many public repositories: the mask is an argument."""

    def call(self, inputs, mask):
        mask = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        return ops.sum(inputs * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1e-9)


class MaskedMaxPool(layers.Layer):
    def call(self, inputs, attention_mask=None):
        mask = ops.expand_dims(ops.cast(attention_mask, inputs.dtype), -1)
        return ops.max(inputs + (1.0 - mask) * -1e9, axis=1)


class MeanPoolIgnoringMask(layers.Layer):
    """The twin: it takes the mask and forgets to use it."""

    def call(self, inputs, mask):
        return ops.mean(inputs, axis=1)


def _pool_model(pool_cls, how: str, source: str):
    """keras-hub style: token_ids and padding_mask inputs (or a mask computed from the ids),
    an encoder body, then pooling with the mask handed over by hand."""
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    inputs = [token_ids]
    if source == "input":
        mask = keras.Input((None,), dtype="int32", name="padding_mask")
        inputs.append(mask)
        h = layers.Embedding(200, 16)(token_ids)
    else:  # computed from the ids beside an Embedding(mask_zero=True)
        mask = ops.not_equal(token_ids, 0)
        h = layers.Embedding(200, 16, mask_zero=True)(token_ids)
    h = layers.Dense(16, activation="gelu")(h)
    pool = pool_cls(name="pool")
    if how == "positional":
        pooled = pool(h, mask)
    else:
        keyword = "attention_mask" if pool_cls is MaskedMaxPool else "mask"
        pooled = pool(h, **{keyword: mask})
    return keras.Model(inputs, layers.Dense(2)(pooled))


@pytest.mark.parametrize("pool_cls", [MaskedMeanPool, MaskedMaxPool])
@pytest.mark.parametrize("how", ["positional", "keyword"])
def test_pool_given_the_padding_mask_input_is_masked(pool_cls, how):
    assert_clean(_pool_model(pool_cls, how, "input"))


@pytest.mark.parametrize("how", ["positional", "keyword"])
def test_pool_given_a_computed_mask_is_masked(how):
    assert not _leaks(_check(_pool_model(MaskedMeanPool, how, "computed")))


class ListPool(layers.Layer):
    def call(self, inputs):
        values, mask = inputs
        mask = ops.expand_dims(ops.cast(mask, values.dtype), -1)
        return ops.sum(values * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


def test_pool_given_data_and_mask_as_one_list_is_masked():
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    h = layers.Dense(8)(layers.Embedding(200, 16)(token_ids))
    model = keras.Model([token_ids, padding_mask], ListPool(name="pool")([h, padding_mask]))
    assert_clean(model)


@pytest.mark.parametrize("how", ["positional", "keyword"])
@pytest.mark.parametrize("source", ["input", "computed"])
def test_pool_that_ignores_the_mask_it_is_given_leaks(how, source):
    found = _leaks(_check(_pool_model(MeanPoolIgnoringMask, how, source)))
    assert [(f.rule, f.layer) for f in found] == [("MC102", "pool")], found


# --- a custom layer that reverses the steps, and the mask with them ------------------------

class ReverseSteps(layers.Layer):
    """Reverses time, the way public code writes it (`x[:, ::-1]`), mask reversed too."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return inputs[:, ::-1]

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[:, ::-1]


class ReverseStepsFlip(ReverseSteps):
    def call(self, inputs, mask=None):
        return ops.flip(inputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else ops.flip(mask, axis=1)


class ReverseStepsKeepMask(ReverseSteps):
    """The twin: steps reversed, the mask handed on as it came."""

    def compute_mask(self, inputs, mask=None):
        return mask


def _reversed_encoder(cls):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    h = layers.Embedding(200, 16, mask_zero=True)(tokens)
    backward = layers.LSTM(8)(cls(name="reverse")(h))
    return keras.Model(tokens, layers.Dense(2)(backward))


@pytest.mark.parametrize("cls", [ReverseSteps, ReverseStepsFlip])
def test_reversal_with_reversed_mask_lines_up(cls):
    assert_clean(_reversed_encoder(cls))


def test_reversal_keeping_the_mask_is_a_mismatch():
    found = _leaks(_check(_reversed_encoder(ReverseStepsKeepMask)))
    assert [(f.rule, f.layer) for f in found] in ([("MC103", "reverse")], [("MC105", "reverse")])


# --- what the evidence says when the engines disagree -------------------------------------

def _finding(**evidence) -> Finding:
    return Finding(rule="MC102", name="unmasked-mixing", severity=Severity.ERROR, kind=("static",),
                   layer="conv", layer_class="Conv1D", path=("m", "conv"), message="m.", fix="f.",
                   evidence={"padding": "both", **evidence})


def _covered(**overrides):
    return {"values": True, "sides": {"post", "pre"}, "amount": True, "training": False,
            **overrides}


def _weigh(finding, covered, diverging, dynamic):
    """The merge of one static finding with what the probes covered (no measurement)."""
    from maskcheck.merge import ProbeFacts, merge
    from maskcheck.rules import RULES_BY_CODE

    facts = ProbeFacts(covered=frozenset(k for k in ("values", "amount", "training") if covered[k]),
                       sides=frozenset(covered["sides"]), diverging=frozenset(diverging))
    (merged,) = merge((finding,), tuple(dynamic), facts, RULES_BY_CODE)
    return merged


def test_static_leak_the_probes_cannot_reproduce_says_so_and_why():
    kept = _weigh(_finding(amount_only=True, padded_holds=("valid",)), _covered(), set(), [])
    assert kept.severity is Severity.ERROR
    assert kept.evidence["dynamic"] == "not reproduced"
    assert "biases" in kept.evidence["kept_because"] and "kept because" in kept.message
    known = _weigh(_finding(), _covered(), set(), [])
    assert known.severity is Severity.ERROR and "Conv1D" in known.evidence["kept_because"]


def test_a_guess_the_probes_cannot_reproduce_is_no_error():
    guessed = _weigh(_finding(assumed_semantics=True), _covered(), set(), [])
    assert guessed.severity is Severity.INFO and guessed.evidence["refuted_by"] == "MC301"


def test_a_claim_the_probes_did_not_cover_is_left_alone():
    finding = _finding(amount_only=True)
    assert _weigh(finding, _covered(amount=False), set(), []) == finding  # fixed length
    assert _weigh(_finding(), _covered(sides={"post"}), set(), []) == _finding()
    assert _weigh(_finding(), _covered(), {"conv"}, []) == _finding()  # the layer diverged


def test_untrained_biases_hide_an_amount_leak_the_finding_says_so():
    """Zeroed padding through a Dense holds its bias (zero until trained), then a 'same'
    convolution reads it: the probes' untrained weights cannot show the leak, trained
    ones do. The error stands, with the disagreement and the reason in its evidence."""
    frames = keras.Input((None, 6), name="frames")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    h = frames * ops.expand_dims(ops.cast(padding_mask, frames.dtype), -1)
    h = layers.Dense(8, name="proj")(h)
    h = layers.Conv1D(8, 3, padding="same", name="conv")(h)
    model = keras.Model({"frames": frames, "padding_mask": padding_mask}, layers.Dense(2)(h))
    static = [f for f in _check(model) if f.rule == "MC102"]
    assert [f.layer for f in static] == ["conv"] and static[0].evidence["amount_only"]
    assert static[0].evidence["padded_holds"] == ("valid",)
    both = [f for f in _check(model, mode="all") if f.rule == "MC102"]
    assert [f.severity for f in both] == [Severity.ERROR], both
    assert both[0].evidence["dynamic"] == "not reproduced"
    assert "biases" in both[0].evidence["kept_because"]


# --- steps moved out of place and moved back ------------------------------------------------

def _signal_model(*steps):
    signal = keras.Input((None, 4), name="signal")
    h = signal
    for step in steps:
        h = step(h)
    return keras.Model(signal, layers.Dense(2)(h))


def _flip(h):
    return ops.flip(h, axis=1)


def test_reversed_twice_is_in_place():
    assert not _leaks(_check(_signal_model(_flip, layers.Dense(4), _flip)))
    found = _leaks(_check(_signal_model(_flip, layers.Dense(4))))  # the twin: read reversed
    assert [f.rule for f in found] == ["MC102"] and found[0].layer.startswith("flip"), found


def test_backward_rnn_flipped_back_reads_only_valid_steps_under_pre_padding():
    backward = layers.LSTM(4, return_sequences=True, go_backwards=True, name="backward")
    assert not _leaks(_check(_signal_model(backward, _flip), padding="pre"))
    backward = layers.LSTM(4, return_sequences=True, go_backwards=True, name="backward")
    found = _leaks(_check(_signal_model(backward), padding="pre"))
    assert [(f.rule, f.layer) for f in found] == [("MC102", "backward")], found


def test_a_forward_window_of_two_is_safe_under_pre_padding_only():
    def model():
        return _signal_model(layers.MaxPooling1D(2, strides=1, padding="same", name="window"))

    assert not _leaks(_check(model(), padding="pre"))
    found = _leaks(_check(model(), padding="post"))
    assert [(f.rule, f.layer) for f in found] == [("MC102", "window")], found


def test_max_over_a_masked_rnn_repeating_its_last_output_is_clean_under_post_padding():
    """Variable length: trailing padding repeats the last valid output, which a max already
    has; leading padding holds the initial zero state, which a max may pick."""
    def model():
        tokens = keras.Input((None,), dtype="int32", name="tokens")
        h = layers.Embedding(200, 16, mask_zero=True)(tokens)
        h = layers.LSTM(8, return_sequences=True)(h)
        h = layers.Dense(8, activation="tanh")(h)  # position-wise: still the last step's
        return keras.Model(tokens, layers.Dense(2)(layers.GlobalMaxPooling1D(name="pool")(h)))

    assert_clean(model(), padding="post")
    found = _leaks(_check(model(), padding="pre"))
    assert [(f.rule, f.layer) for f in found] == [("MC102", "pool")], found
    # the Dense maps the leading zero state to a constant: values of no padded step
    assert found[0].evidence["amount_only"] and found[0].evidence["padded_holds"] == ("valid",)
