"""`stats["data"]`: what the user's data said about padding, so they can confirm it was read
as they meant (issue 25, part 7). Real Keras models, real `check(data=...)` and `--data` runs."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import maskcheck
from maskcheck.cli import main

T, VOCAB = 10, 20
LENGTHS = (10, 8, 5, 3, 2, 7)  # one full-length sample, five padded


def tagger() -> keras.Model:
    """A sequence tagger: labels per step, so label padding and per-step weights apply."""
    tokens = keras.Input((T,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(VOCAB, 4, mask_zero=True)(tokens)
    h = keras.layers.LSTM(4, return_sequences=True)(h)
    model = keras.Model(tokens, keras.layers.Dense(3, name="tags")(h), name="tagger")
    model.compile(loss="sparse_categorical_crossentropy")
    return model


def post_padded() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids padded with 0 at the end, labels padded with -1, weights 0 on padding."""
    rng = np.random.default_rng(0)
    x = np.zeros((len(LENGTHS), T), "int32")
    y = np.full((len(LENGTHS), T), -1, "int32")
    w = np.zeros((len(LENGTHS), T), "float32")
    for row, n in enumerate(LENGTHS):
        x[row, :n], y[row, :n], w[row, :n] = rng.integers(1, VOCAB, n), rng.integers(0, 3, n), 1
    return x, y, w


def pre_padded() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same samples padded at the start, labels padded with 0, and weights of 1 everywhere
    (the padding counts in the loss)."""
    def roll(a: np.ndarray) -> np.ndarray:
        return np.stack([np.roll(row, T - n) for row, n in zip(a, LENGTHS)])

    x, y, _ = post_padded()
    y = np.where(roll(x) == 0, 0, roll(y))
    return roll(x), y, np.ones((len(LENGTHS), T), "float32")


def data_stats(model: keras.Model, data, **settings) -> dict:
    report = maskcheck.check(model, data=data, **settings)
    assert not report.errors, report.errors
    return report.to_dict()["models"][0]["stats"]["data"]


def test_post_padded_data_with_weights_zero_on_padding() -> None:
    stats = data_stats(tagger(), post_padded())
    assert stats == {
        "batches": 1, "samples": 6, "time_steps": 10,
        "padding_from": "pad value 0 of 'tokens'", "pad_value": {"tokens": 0},
        "post_padded": 5, "pre_padded": 0, "unpadded": 1, "all_padding": 0,
        "length_min": 2, "length_max": 10, "length_mean": 5.83,
        "label_pad_value": {"tags": -1}, "sample_weights": "zero on padding",
    }


def test_pre_padded_twin_with_weights_that_count_padding() -> None:
    stats = data_stats(tagger(), pre_padded())
    assert (stats["post_padded"], stats["pre_padded"], stats["unpadded"]) == (0, 5, 1)
    assert stats["pad_value"] == {"tokens": 0}
    assert (stats["length_min"], stats["length_max"], stats["length_mean"]) == (2, 10, 5.83)
    assert stats["label_pad_value"] == {"tags": 0}
    assert stats["sample_weights"] == "count padding"


def test_the_mask_the_user_gives_float_pad_values_and_no_labels() -> None:
    """A float input padded with -1 behind a Masking layer; an explicit mask marks padding,
    a fully padded sample is counted apart; per-sample weights never zero padded steps."""
    inputs = keras.Input((T, 2), name="signal")
    h = keras.layers.Masking(mask_value=-1.0)(inputs)
    model = keras.Model(inputs, keras.layers.GRU(3)(h), name="reader")
    x = np.full((4, T, 2), -1.0, "float32")
    mask = np.zeros((4, T), bool)
    for row, n in enumerate((T, 6, 3, 0)):
        x[row, :n], mask[row, :n] = 0.5, True
    stats = data_stats(model, {"x": x, "mask": mask}, select=["MC3"])
    assert stats["padding_from"] == "mask" and stats["pad_value"] == {"signal": -1}
    assert (stats["post_padded"], stats["unpadded"], stats["all_padding"]) == (2, 1, 1)
    assert (stats["length_min"], stats["length_max"]) == (0, T)
    assert stats["label_pad_value"] is None and stats["sample_weights"] == "none"
    weighted = data_stats(model, (x, np.zeros((4, 3), "float32"), np.ones(4, "float32")),
                          select=["MC3"])
    assert weighted["sample_weights"] == "per sample" and weighted["label_pad_value"] is None


def test_several_batches_are_summed_and_the_summary_is_deterministic() -> None:
    x, y, w = post_padded()
    data = (np.concatenate([x] * 6), np.concatenate([y] * 6), np.concatenate([w] * 6))
    first = data_stats(tagger(), data, data_batches=2)
    assert (first["batches"], first["samples"]) == (2, 32)  # 16 samples read per batch
    assert first["post_padded"] + first["pre_padded"] + first["unpadded"] + first["all_padding"] \
        == first["samples"]
    second = data_stats(tagger(), data, data_batches=2)
    assert json.dumps(first) == json.dumps(second)


def test_no_data_no_data_key() -> None:
    report = maskcheck.check(tagger())
    assert "data" not in report.to_dict()["models"][0]["stats"]
    assert "traces" in report.to_dict()["models"][0]["stats"]  # the probes did run


def test_cli_data_option_records_the_summary_in_json(tmp_path) -> None:
    model_path, data_path = tmp_path / "tagger.keras", tmp_path / "batch.npz"
    tagger().save(model_path)
    x, y, w = pre_padded()
    np.savez(data_path, x=x, y=y, sample_weight=w)
    result = CliRunner().invoke(main, [str(model_path), "--data", str(data_path), "--format",
                                       "json", "--fail-on", "never"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)["models"][0]["stats"]["data"]
    assert stats["pre_padded"] == 5 and stats["sample_weights"] == "count padding"
    static = CliRunner().invoke(main, [str(model_path), "--data", str(data_path), "--format",
                                       "json", "--mode", "static"], catch_exceptions=False)
    assert "data" not in json.loads(static.output)["models"][0]["stats"]  # nothing was read


@pytest.mark.parametrize("values, expected", [
    ([0.0, 0.0], 0), ([-100.0], -100), ([np.float32(0.1)], 0.1), ([1.0, 2.0], "varies"),
    ([float("nan")], "a fixed row"),
])
def test_values_read_as_the_user_writes_them(values, expected) -> None:
    from maskcheck.dynamic.realdata import _one_value

    assert _one_value([float(v) for v in values]) == expected
