"""Generation probes: what a causal LM generates for a prompt alone and in padded batches.

A model generates through keras-hub's protocol when it has `generate_step(inputs,
stop_token_ids)` over ``{"token_ids", "padding_mask"}`` and a `sampler` that its
generation step calls with ``next(prompt, cache, index)`` (every keras-hub
`CausalLM` and a user's subclass of one). The probes swap in a greedy sampler
that records the next-token logits at every position it writes, run the model's
own `generate_step` (its cache building, its index, its stop handling) compiled
once per batch shape, and put the sampler back. Every run has the same length
(the longest prompt plus the generated steps), so only the batch size makes a
new trace.

`generation_outcome(model, config)` measures once per model and never names a
rule: `GenerationOutcome.batch` holds the first prompt that generates
differently in a padded batch than alone (per side), `.cache` the first prompt
whose step-by-step logits through the cache differ from one full forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskcheck.dynamic.compare import Leak, Measured
from maskcheck.static.generation import packer_of

#: The inputs of the generation protocol this module drives.
TOKENS, MASK = "token_ids", "padding_mask"
#: Prompts per check and their batch sizes (a prompt alone is batch size 1).
PROMPTS = 4
BATCH_SIZES = (2, 4)


class NoGeneration(Exception):
    """The model has no generation path the probes can drive (said in stats, never an error)."""


@dataclass(frozen=True)
class GenerationPath:
    """What the probes need to know of a model's generation step."""

    vocabulary: int
    pad: int
    start: int | None
    stops: tuple[int, ...]
    #: "post" (right) and/or "pre" (left): the packer's side, else what config.padding says
    sides: tuple[str, ...]
    max_length: int | None


@dataclass
class Run:
    """One generation run: the token ids and output mask it returned, and the next-token
    logits the sampler recorded at every position it wrote (zeros elsewhere)."""

    ids: np.ndarray
    mask: np.ndarray
    logits: np.ndarray


@dataclass
class GenerationOutcome:
    """The generation program's measurements (rules turn them into results)."""

    #: one per side at most: the first prompt that generates differently in a batch
    batch: list[Measured] = field(default_factory=list)
    #: the first prompt whose cached step-by-step logits differ from a full forward pass
    cache: Measured | None = None
    #: why nothing could be measured (no generation path), else None
    skipped: str | None = None
    sides: tuple[str, ...] = ()
    steps: int = 0
    traces: int = 0


def generation_path(model: Any, padding: str = "both") -> GenerationPath:
    """The model's generation protocol, or NoGeneration saying why there is none."""
    step = getattr(model, "generate_step", None)
    if not callable(step) or not callable(getattr(model, "call_with_cache", None)):
        raise NoGeneration("the model has no generate_step/call_with_cache (not a causal LM)")
    names = [getattr(t, "name", "") for t in getattr(model, "inputs", None) or ()]
    keys = {n.split(":")[0].split("/")[0] for n in names}
    if keys != {TOKENS, MASK}:
        raise NoGeneration(f"the generation probes drive models whose inputs are exactly "
                           f"{TOKENS!r} and {MASK!r} (this one takes {sorted(keys)})")
    vocabulary = _vocabulary(model)
    preprocessor = getattr(model, "preprocessor", None)
    packer = packer_of(model)
    tokenizer = getattr(preprocessor, "tokenizer", None)
    pad = _int(getattr(packer, "pad_value", None))
    if pad is None:
        pad = _int(getattr(tokenizer, "pad_token_id", None))
    start = _int(getattr(packer, "start_value", None)) if packer is not None else None
    stops = tuple(i for i in (_int(getattr(tokenizer, "end_token_id", None)),) if i is not None)
    side = {"right": ("post",), "left": ("pre",)}.get(str(getattr(packer, "padding_side", "")), ())
    if padding != "both":
        sides = (padding,)
    else:
        sides = side or ("post", "pre")
    backbone = getattr(model, "backbone", None)
    max_length = _int(getattr(backbone, "max_sequence_length", None))
    return GenerationPath(vocabulary=vocabulary, pad=0 if pad is None else pad, start=start,
                          stops=stops, sides=sides, max_length=max_length)


def _int(value: Any) -> int | None:
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return None


def _vocabulary(model: Any) -> int:
    backbone = getattr(model, "backbone", None)
    size = _int(getattr(backbone, "vocabulary_size", None))
    if size is None:
        shape = getattr(model.outputs[0], "shape", None) if getattr(model, "outputs", None) else None
        size = _int(shape[-1]) if shape is not None else None
    if size is None:
        raise NoGeneration("the model's vocabulary size is unknown")
    return size


def prompts(path: GenerationPath, steps: int, seed: int) -> list[np.ndarray]:
    """PROMPTS prompts of different lengths from the vocabulary (no tokenizer needed): real
    token ids (never the pad, start or stop ids), after the start token when the packer
    adds one. The longest leaves room for `steps` tokens within the model's length."""
    rng = np.random.default_rng([seed, 6])
    room = (path.max_length or 64) - steps - (path.start is not None)
    longest = max(1, min(8, room))
    lengths = [longest, min(2, longest), max(1, longest // 2), max(1, longest - 2)][:PROMPTS]
    special = {path.pad, path.start, *path.stops} - {None}
    choices = np.array([i for i in range(min(path.vocabulary, 4096)) if i not in special])
    out = []
    for n in lengths:
        body = rng.choice(choices, size=n)
        out.append(np.concatenate([[path.start], body]).astype("int32")
                   if path.start is not None else body.astype("int32"))
    return out


class Generator:
    """Runs the model's own `generate_step` with a recording greedy sampler, compiled
    once per batch shape (a `tf.function`); the model's sampler is put back after each run."""

    def __init__(self, model: Any, path: GenerationPath, device: str) -> None:
        self.model, self.path, self.device = model, path, device
        self.sampler = _recording_sampler(path.vocabulary)
        self.traces = 0
        self._compiled: dict[tuple[int, ...], Any] = {}

    def _function(self, shape: tuple[int, ...]) -> Any:
        """The compiled generation step for one batch shape (traced once)."""
        import tensorflow as tf

        if shape not in self._compiled:
            model, stops, sampler = self.model, self.path.stops or None, self.sampler

            def generate(token_ids: Any, padding_mask: Any) -> Any:
                self.traces += 1
                out = model.generate_step({TOKENS: token_ids, MASK: padding_mask},
                                          stop_token_ids=stops)
                return out[TOKENS], out[MASK], sampler.recorded

            self._compiled[shape] = tf.function(generate)
        return self._compiled[shape]

    def run(self, ids: np.ndarray, mask: np.ndarray) -> Run:
        import tensorflow as tf

        held = getattr(self.model, "sampler", None)
        self.model.sampler = self.sampler
        try:
            with tf.device(self.device):
                out, out_mask, logits = self._function(ids.shape)(tf.constant(ids, "int32"),
                                                                  tf.constant(mask, "bool"))
        finally:
            self.model.sampler = held
        return Run(np.asarray(out), np.asarray(out_mask).astype(bool), np.asarray(logits))

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One full forward pass: the logits at every position."""
        import tensorflow as tf

        with tf.device(self.device):
            out = self.model({TOKENS: tf.constant(ids, "int32"), MASK: tf.constant(mask, "bool")},
                             training=False)
        return np.asarray(out, dtype="float32")


def _recording_sampler(vocabulary: int) -> Any:
    """A keras-hub Sampler that picks the most likely token (greedy) and records the
    logits at each position it writes (`recorded`, shape (batch, length, vocabulary))."""
    from keras import ops
    from keras_hub.samplers import Sampler

    class RecordingGreedy(Sampler):
        def __call__(self, next, prompt, cache=None, index=0, mask=None, stop_token_ids=None,
                     hidden_states=None, model=None, **kwargs):
            length = ops.shape(prompt)[-1]
            index = ops.cast(index, "int32")
            mask = (ops.zeros_like(prompt, dtype="bool") if mask is None
                    else ops.cast(mask, "bool"))
            cache = () if cache is None else cache
            recorded = ops.zeros((ops.shape(prompt)[0], length, vocabulary), "float32")

            def body(prompt, cache, index, recorded):
                logits, _, cache = next(prompt, cache, index)
                logits = ops.cast(logits, "float32")
                token = ops.cast(ops.argmax(logits, axis=-1), prompt.dtype)
                token = ops.where(mask[:, index], prompt[:, index], token)
                prompt = ops.slice_update(prompt, [0, index], token[:, None])
                recorded = ops.slice_update(recorded, [0, index, 0], logits[:, None, :])
                return prompt, cache, index + 1, recorded

            prompt, _, _, recorded = ops.while_loop(
                lambda *_: True, body, (prompt, cache, index, recorded),
                maximum_iterations=length - index)
            self.recorded = recorded
            return prompt

    return RecordingGreedy()


def layout(batch: list[np.ndarray], side: str, length: int, pad: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(token ids, padding mask, where each row's generation starts) for prompts padded on
    `side` to a common prompt length, with room for the generated tokens on the right
    ("post": each row generates right after its prompt; "pre": prompts end together)."""
    ids = np.full((len(batch), length), pad, dtype="int32")
    mask = np.zeros((len(batch), length), dtype=bool)
    longest = max(len(p) for p in batch)
    starts = []
    for row, prompt in enumerate(batch):
        begin = longest - len(prompt) if side == "pre" else 0
        ids[row, begin:begin + len(prompt)] = prompt
        mask[row, begin:begin + len(prompt)] = True
        starts.append(begin + len(prompt))
    return ids, mask, starts


def batches(n: int) -> list[tuple[int, ...]]:
    """Batches of the prompts: each batch size in BATCH_SIZES, in order and reversed (a prompt
    meets other prompts, in other rows)."""
    out: list[tuple[int, ...]] = []
    for size in BATCH_SIZES:
        if size > n:
            continue
        for order in (list(range(n)), list(range(n))[::-1]):
            out.extend(tuple(order[i:i + size]) for i in range(0, n - size + 1, size))
    return list(dict.fromkeys(out))


#: Logits count as different beyond this share of the reference logits' range (or beyond
#: --atol/--rtol, whichever is larger). Float rounding between a cached and a full pass,
#: or between batch shapes, stays below 0.1% of the range on keras-hub's models (GPT-NeoX's
#: rotary path is the largest seen, 0.05%); a cache index, positions or pad keys that are
#: wrong move logits by tens of percent of it.
SPREAD = 0.01


def _tolerance(reference: np.ndarray, config: Any) -> float:
    spread = float(reference.max(initial=0.0) - reference.min(initial=0.0))
    return max(config.atol + config.rtol * float(np.abs(reference).max(initial=0.0)),
               SPREAD * spread)


def _steps_of(run: Run, row: int, start: int, steps: int, stops: tuple[int, ...]) -> int:
    """How many generated steps of a row count: up to and including its first stop token."""
    for s in range(steps):
        if start + s >= run.ids.shape[1]:
            return s
        if int(run.ids[row, start + s]) in stops:
            return s + 1
    return steps


def generation_outcome(model: Any, config: Any, device: str) -> GenerationOutcome:
    """Generate greedily for PROMPTS prompts alone and in padded batches on each side the
    model pads on; measure where a batch changes a prompt's tokens or next-token logits, and
    where the cached step-by-step logits differ from one full forward pass."""
    try:
        path = generation_path(model, config.padding)
    except NoGeneration as exc:
        return GenerationOutcome(skipped=str(exc))
    steps = config.generate_steps
    if path.max_length is not None and path.max_length < steps + 2:
        steps = max(1, path.max_length - 2)
    generator = Generator(model, path, device)
    prompt_list = prompts(path, steps, config.seed)
    length = max(len(p) for p in prompt_list) + steps
    alone = []
    for prompt in prompt_list:
        ids, mask, _ = layout([prompt], "post", length, path.pad)
        alone.append(generator.run(ids, mask))
    outcome = GenerationOutcome(sides=path.sides, steps=steps)
    outcome.cache = _cache_mismatch(model, generator, prompt_list, alone, steps, config)
    for side in path.sides:
        for batch in batches(len(prompt_list)):
            members = [prompt_list[k] for k in batch]
            ids, mask, starts = layout(members, side, length, path.pad)
            run = generator.run(ids, mask)
            found = _batch_mismatch(model, generator, path, prompt_list, alone, batch, side,
                                    (ids, mask, starts), run, steps, config)
            if found is not None:
                outcome.batch.append(found)
                break
    outcome.traces = generator.traces
    return outcome


def _batch_mismatch(model: Any, generator: Generator, path: GenerationPath,
                    prompt_list: list[np.ndarray], alone: list[Run], batch: tuple[int, ...],
                    side: str, laid: tuple, run: Run, steps: int, config: Any) -> Measured | None:
    """The first row of a batch whose generation differs from its prompt's alone."""
    ids, mask, starts = laid
    for row, k in enumerate(batch):
        own = len(prompt_list[k])
        counted = _steps_of(alone[k], 0, own, steps, path.stops)
        for s in range(counted):
            expected, got = int(alone[k].ids[0, own + s]), int(run.ids[row, starts[row] + s])
            reference = alone[k].logits[0, own + s]
            diff = float(np.abs(run.logits[row, starts[row] + s] - reference).max())
            if diff <= _tolerance(reference, config):
                if expected != got:  # a tie the batch broke the other way: not padding's doing
                    break
                continue
            what, causes = _what_changed(generator, path, ids, mask, starts, row, s, run,
                                        expected, got, config, reference)
            leak = Leak(layer=model.name, layer_class=type(model).__name__, path=(model.name,),
                        sample=row, position=starts[row] + s, padding=side,
                        max_abs_diff=diff, output=None, kind="generation")
            return Measured(leak, {"prompt": k, "prompt_length": own, "tokens": _tokens(own),
                                   "padding": side, "step": s,
                                   "batch": tuple(batch), "batch_size": len(batch),
                                   "expected_token": expected, "token": got,
                                   "what": what, "causes": tuple(causes),
                                   "prompt_ids": tuple(int(t) for t in prompt_list[k])})
    return None


def _what_changed(generator: Generator, path: GenerationPath, ids: np.ndarray, mask: np.ndarray,
                  starts: list[int], row: int, step: int, run: Run, expected: int, got: int,
                  config: Any, reference: np.ndarray) -> tuple[str, list[str]]:
    """What the batch changed for a row, in words, and the causes the fix follows:
    "pad-slots" (generated tokens written over the row's left padding), "attends-to-padding"
    (the pad tokens' values reach the row's logits), "positions" (the logits move with the
    amount of padding, not its values), "tokens" (a later step only)."""
    said = []
    own_start = int(np.argmax(mask[row])) if mask[row].any() else 0
    slots = [j for j in range(own_start) if int(run.ids[row, j]) != int(ids[row, j])]
    if slots:
        said.append(f"the batch wrote generated tokens into the row's left pad slots "
                    f"(positions {slots[0]}..{slots[-1]})")
    token = (f"token {got} instead of {expected}" if got != expected
             else f"the same token {got} from different next-token logits")
    causes = ["pad-slots"] if slots else []
    if step == 0 and mask[row].sum() and (~mask[row, :starts[row]]).any():
        # the prompt is complete at step 0: only padding can move its logits; is it the pad
        # tokens' values (attention to pad positions) or only how many there are (positions)?
        other = path.pad + 1 if path.pad + 1 < path.vocabulary else path.pad - 1
        changed = np.where(mask, ids, other).astype("int32")
        moved = generator.run(changed, mask)
        diff = float(np.abs(moved.logits[row, starts[row]] - run.logits[row, starts[row]]).max())
        if diff > _tolerance(reference, config):
            said.append(f"at step 0 the prompt's next-token logits depend on the pad tokens "
                        f"(the generation attends to pad positions): {token}")
            causes.append("attends-to-padding")
        else:
            said.append(f"at step 0 the prompt's next-token logits move with the amount of "
                        f"padding (positions count from the row's first slot): {token}")
            causes.append("positions")
    else:
        said.append(f"at step {step}, {token}")
    return "; ".join(said), causes or ["tokens"]


def _cache_mismatch(model: Any, generator: Generator, prompt_list: list[np.ndarray],
                    alone: list[Run], steps: int, config: Any) -> Measured | None:
    """The first prompt and step where the logits the cache gave (recorded while generating
    alone) differ from one full forward pass over the same tokens with every slot valid."""
    for k, (prompt, run) in enumerate(zip(prompt_list, alone)):
        own = len(prompt)
        full = generator.forward(run.ids, np.ones_like(run.ids, dtype=bool))
        for s in range(run.ids.shape[1] - own):
            cached, reference = run.logits[0, own + s], full[0, own + s - 1]
            diff = float(np.abs(cached - reference).max())
            if diff > _tolerance(reference, config):
                leak = Leak(layer=model.name, layer_class=type(model).__name__,
                            path=(model.name,), sample=0, position=own + s, padding="post",
                            max_abs_diff=diff, output=None, kind="generation")
                return Measured(leak, {"prompt": k, "prompt_length": own,
                                       "tokens": _tokens(own), "step": s, "position": own + s})
    return None


def _tokens(n: int) -> str:
    return f"{n} token" if n == 1 else f"{n} tokens"
