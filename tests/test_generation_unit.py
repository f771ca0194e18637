"""The generation probes' comparisons on hand-made runs (no model): what counts as a batch
changing a prompt's generation, and what does not. The keras-hub group checks them on real
causal LMs (tests/test_generation_hub.py)."""

from __future__ import annotations

import numpy as np

from maskcheck.config import Config
from maskcheck.dynamic.generation import (GenerationPath, Run, _batch_mismatch, _Floor, batches,
                                          layout, prompts)

PATH = GenerationPath(vocabulary=20, pad=0, start=(1,), end=(), stops=(2,), sides=("post",),
                      max_length=32)
STEPS = 3


def _logits(*tokens: int, length: int = 8) -> np.ndarray:
    """Logits whose argmax at positions 3, 4, 5 are `tokens` (a clear margin)."""
    out = np.zeros((1, length, PATH.vocabulary), dtype="float32")
    for s, token in enumerate(tokens):
        out[0, 3 + s, token] = 1.0
    return out


def _run(ids: list[int], logits: np.ndarray, mask: list[bool] | None = None) -> Run:
    ids_array = np.array([ids], dtype="int32")
    mask_array = np.array([mask if mask is not None else [True] * len(ids)])
    return Run(ids_array, mask_array, logits)


class NamedLM:
    """Only the name and class a finding reports (the comparisons never run a model)."""

    name = "lm"


def _compare(alone: Run, batched: Run):
    prompt = np.array([1, 7, 8], dtype="int32")
    laid_alone = layout(PATH, [prompt], "post", STEPS, 5)
    return _batch_mismatch(NamedLM(), None, PATH, [prompt], [laid_alone], [alone], (0,), "post",
                           laid_alone, batched, STEPS, Config(), _Floor(lambda: 0.0))


ALONE_IDS = [1, 7, 8, 5, 6, 9, 0, 0]


def test_the_same_tokens_and_logits_are_no_finding():
    alone = _run(ALONE_IDS, _logits(5, 6, 9))
    assert _compare(alone, _run(ALONE_IDS, _logits(5, 6, 9))) is None


def test_a_token_that_differs_where_the_logits_agree_is_a_tie_not_a_finding():
    alone = _run(ALONE_IDS, _logits(5, 6, 9))
    tie = _run([1, 7, 8, 5, 11, 12, 0, 0], _logits(5, 6, 9))
    assert _compare(alone, tie) is None


def test_logits_that_differ_at_a_later_step_name_that_step_and_the_tokens():
    alone = _run(ALONE_IDS, _logits(5, 6, 9))
    later = _run([1, 7, 8, 5, 11, 12, 0, 0], _logits(5, 11, 12))
    found = _compare(alone, later)
    assert found is not None
    assert found.fields["step"] == 1 and found.fields["what"] == "at step 1, token 11 instead of 6"
    assert found.fields["causes"] == ("tokens",) and found.leak.position == 4


def test_a_row_that_stopped_keeps_its_tokens_and_nothing_after_the_stop_counts():
    # alone the prompt generates 5 then the stop token 2; whatever follows is not compared
    alone = _run([1, 7, 8, 5, 2, 9, 0, 0], _logits(5, 2, 9))
    after_stop = _run([1, 7, 8, 5, 2, 13, 0, 0], _logits(5, 2, 13))
    assert _compare(alone, after_stop) is None
    # but an output mask that drops the row's own tokens in the batch is a finding
    dropped = _run([1, 7, 8, 5, 2, 9, 0, 0], _logits(5, 2, 9),
                   mask=[True, True, True, True, False, False, False, False])
    found = _compare(alone, dropped)
    assert found is not None and "output mask" in found.fields["what"]
    assert found.fields["step"] == 1


def test_layouts_put_the_padding_on_the_side_and_room_for_the_steps():
    short, long_ = np.array([1, 4], "int32"), np.array([1, 4, 5, 6], "int32")
    post = layout(PATH, [long_, short], "post", STEPS, 4)
    assert post.inputs["token_ids"].shape == (2, 7) and post.starts == [4, 2]
    assert post.inputs["padding_mask"][1].tolist() == [True, True] + [False] * 5
    pre = layout(PATH, [long_, short], "pre", STEPS, 4)
    assert pre.starts == [4, 4] and pre.begins == [0, 2]
    assert pre.inputs["token_ids"][1].tolist() == [0, 0, 1, 4, 0, 0, 0]


def test_prompts_avoid_special_ids_and_batches_meet_other_prompts():
    made = prompts(PATH, STEPS, seed=0)
    assert len({len(p) for p in made}) == len(made) == 4
    assert all(p[0] == 1 and not set(p[1:].tolist()) & {0, 1, 2} for p in made)
    assert prompts(PATH, STEPS, seed=0)[0].tolist() == made[0].tolist()  # deterministic
    assert batches(4) == [(0, 1), (3, 2), (0, 1, 2, 3), (3, 2, 1, 0)]
