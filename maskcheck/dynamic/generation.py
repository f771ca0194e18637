"""Generation probes: what a language model generates for a prompt alone and in padded batches.

A model generates through keras-hub's protocol when it has `generate_step(inputs,
stop_token_ids)` and a `sampler` its generation step calls with
``next(prompt, cache, index)``: a causal LM over ``{"token_ids", "padding_mask"}``
(every keras-hub `CausalLM` and a user's subclass of one; the prompt and the
generated tokens share one sequence), or a sequence-to-sequence LM over
``{"encoder_token_ids", "encoder_padding_mask", "decoder_token_ids",
"decoder_padding_mask"}`` (`Seq2SeqLM`: prompts are the encoder's input, tokens
are generated into the decoder's sequence). The probes swap in a greedy sampler
that records the next-token logits at every position it writes, run the model's
own `generate_step` (its cache building, its index, its stop handling) in one
`tf.function` whose batch axis is left open (so one trace serves every batch
size; a step that needs a fixed batch size gets one trace per batch shape), and
put the sampler back.

`generation_outcome(model, config, device)` measures once per model and never
names a rule: `GenerationOutcome.batch` holds the first prompt that generates
differently in a padded batch than alone (per side), `.cache` the first prompt
whose step-by-step logits through the cache differ from one full forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskcheck.dynamic.compare import Leak, Measured
from maskcheck.static.generation import packer_of

#: The two input layouts of keras-hub's generation protocol.
CAUSAL_KEYS = ("token_ids", "padding_mask")
SEQ2SEQ_KEYS = ("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids",
                "decoder_padding_mask")
#: Prompts per check, and the batch sizes they meet in (a prompt alone is batch size 1).
PROMPTS = 4
BATCH_SIZES = (2, 4)
#: Cached against full-pass logits count as different beyond this share of the reference
#: logits' range (or beyond --atol/--rtol, whichever is larger). The two paths round
#: differently: below 0.1% of the range on keras-hub's models (GPT-NeoX's rotary path is the
#: largest seen, 0.05%); a cache index, positions or a mask that are wrong move logits by
#: tens of percent of it.
SPREAD = 0.01
#: A prompt's logits in a padded batch count as different from alone beyond --atol/--rtol,
#: or beyond this many times the rounding measured between the same prompt alone and
#: repeated to fill a batch (no padding: only the batch shape differs), whichever is larger.
NOISE_MARGIN = 10.0


class NoGeneration(Exception):
    """The model has no generation path the probes can drive (said in stats, never an error)."""


@dataclass(frozen=True)
class GenerationPath:
    """What the probes need to know of a model's generation step."""

    vocabulary: int
    pad: int
    #: token ids the packer puts before every prompt (and after it, for an encoder prompt)
    start: tuple[int, ...]
    end: tuple[int, ...]
    stops: tuple[int, ...]
    #: "post" (right) and/or "pre" (left): the packer's side, else what --padding says
    sides: tuple[str, ...]
    max_length: int | None
    #: (ids key, mask key) of the prompts, and of the sequence generate_step writes
    prompt: tuple[str, str] = CAUSAL_KEYS
    output: tuple[str, str] = CAUSAL_KEYS
    #: a sequence-to-sequence model's decoder start ids; None for a causal LM
    decoder_start: tuple[int, ...] | None = None

    @property
    def causal(self) -> bool:
        return self.decoder_start is None


@dataclass
class Run:
    """One generation run: the token ids and output mask it returned, and the next-token
    logits the sampler recorded at every position it wrote (zeros elsewhere)."""

    ids: np.ndarray
    mask: np.ndarray
    logits: np.ndarray


@dataclass
class Layout:
    """One batch of prompts as the generation step takes it."""

    inputs: dict[str, np.ndarray]
    #: per row, where its generated tokens start in the output sequence
    starts: list[int]
    #: per row, where its prompt starts (causal: after its left padding)
    begins: list[int]


@dataclass
class GenerationOutcome:
    """The generation program's measurements (rules turn them into results)."""

    #: one per side at most: the first prompt that generates differently in a batch
    batch: list[Measured] = field(default_factory=list)
    #: the first prompt whose cached step-by-step logits differ from a full forward pass
    cache: Measured | None = None
    #: why nothing could be measured (no generation path, a step that raised), else None
    skipped: str | None = None
    sides: tuple[str, ...] = ()
    steps: int = 0
    traces: int = 0


def generation_path(model: Any, padding: str = "both") -> GenerationPath:
    """The model's generation protocol, or NoGeneration saying why there is none."""
    if not callable(getattr(model, "generate_step", None)):
        raise NoGeneration("the model has no generate_step (not a keras-hub language model)")
    names = [getattr(t, "name", "") for t in getattr(model, "inputs", None) or ()]
    keys = {n.split(":")[0].split("/")[0] for n in names}
    if keys not in (set(CAUSAL_KEYS), set(SEQ2SEQ_KEYS)):
        raise NoGeneration(f"the generation probes drive models whose inputs are "
                           f"{' and '.join(CAUSAL_KEYS)} or {', '.join(SEQ2SEQ_KEYS)} "
                           f"(this one takes {', '.join(sorted(keys)) or 'none'})")
    causal = keys == set(CAUSAL_KEYS)
    if causal and not callable(getattr(model, "call_with_cache", None)):
        raise NoGeneration("the model has no call_with_cache (keras-hub's cached decoding)")
    vocabulary = _vocabulary(model)
    preprocessor = getattr(model, "preprocessor", None)
    packer = packer_of(model)
    tokenizer = getattr(preprocessor, "tokenizer", None)
    pad = _int(getattr(packer, "pad_value", None))
    if pad is None:
        pad = _int(getattr(tokenizer, "pad_token_id", None))
    pad = 0 if pad is None else pad
    start = _ids(getattr(packer, "start_value", None))
    end = () if causal else _ids(getattr(packer, "end_value", None))
    stops = _ids(getattr(tokenizer, "end_token_id", None))
    side = {"right": ("post",), "left": ("pre",)}.get(str(getattr(packer, "padding_side", "")), ())
    sides = (padding,) if padding != "both" else (side or ("post", "pre"))
    backbone = getattr(model, "backbone", None)
    max_length = _int(getattr(backbone, "max_sequence_length", None))
    if causal:
        return GenerationPath(vocabulary, pad, start, end, stops, sides, max_length)
    decoder = getattr(preprocessor, "decoder_packer", None)
    decoder_start = _ids(getattr(decoder, "start_value", None)) or (1 if pad != 1 else 2,)
    return GenerationPath(vocabulary, pad, start, end, stops, sides, max_length,
                          prompt=SEQ2SEQ_KEYS[:2], output=SEQ2SEQ_KEYS[2:],
                          decoder_start=decoder_start)


def _int(value: Any) -> int | None:
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return None


def _ids(value: Any) -> tuple[int, ...]:
    """A packer's start/end value (an id, a list of ids or None) as a tuple of ids."""
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value if _int(v) is not None)
    single = _int(value)
    return () if single is None else (single,)


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
    token ids (never the pad, start or stop ids) between the packer's start (and, for an
    encoder, end) ids. The longest leaves room for `steps` tokens within the model's length."""
    rng = np.random.default_rng([seed, 6])
    extra = len(path.start) + len(path.end) + (steps if path.causal else 0)
    longest = max(1, min(8, (path.max_length or 64) - extra))
    lengths = [longest, min(2, longest), max(1, longest // 2), max(1, longest - 2)][:PROMPTS]
    special = {path.pad, *path.start, *path.end, *path.stops, *(path.decoder_start or ())}
    choices = np.array([i for i in range(min(path.vocabulary, 4096)) if i not in special])
    return [np.concatenate([path.start, rng.choice(choices, size=n), path.end]).astype("int32")
            for n in lengths]


def layout(path: GenerationPath, batch: list[np.ndarray], side: str, steps: int,
           longest: int) -> Layout:
    """Prompts padded on `side` to the longest of the batch, with room for `steps` generated
    tokens. Causal: one sequence of `longest + steps` slots ("post": each row generates right
    after its own prompt; "pre": the prompts end together). Sequence-to-sequence: the
    prompts are the encoder's input; every row's decoder starts from the decoder start ids."""
    ids_key, mask_key = path.prompt
    width = max(len(p) for p in batch)
    length = longest + steps if path.causal else width
    ids = np.full((len(batch), length), path.pad, dtype="int32")
    mask = np.zeros((len(batch), length), dtype=bool)
    begins, starts = [], []
    for row, prompt in enumerate(batch):
        begin = width - len(prompt) if side == "pre" else 0
        ids[row, begin:begin + len(prompt)] = prompt
        mask[row, begin:begin + len(prompt)] = True
        begins.append(begin)
        starts.append(begin + len(prompt))
    inputs = {ids_key: ids, mask_key: mask}
    if not path.causal:
        first = len(path.decoder_start)
        decoder = np.full((len(batch), first + steps), path.pad, dtype="int32")
        decoder[:, :first] = path.decoder_start
        decoder_mask = np.zeros(decoder.shape, dtype=bool)
        decoder_mask[:, :first] = True
        inputs.update({path.output[0]: decoder, path.output[1]: decoder_mask})
        starts = [first] * len(batch)
    return Layout(inputs, starts, begins)


def batches(n: int) -> list[tuple[int, ...]]:
    """Batches of the prompts, each a different company and row order: pairs (the first two
    in order, the last two reversed) and all of them in order and reversed, so every prompt
    meets others in at least two rows."""
    out: list[tuple[int, ...]] = []
    for size in BATCH_SIZES:
        if size > n:
            continue
        if size * 2 <= n:
            out += [tuple(range(size)), tuple(range(n - 1, n - 1 - size, -1))]
        else:
            out += [tuple(range(size)), tuple(range(size - 1, -1, -1))]
    return list(dict.fromkeys(out))


class Generator:
    """Runs the model's own `generate_step` with a recording greedy sampler in a compiled
    function; the model's sampler is put back after each run."""

    def __init__(self, model: Any, path: GenerationPath, device: str) -> None:
        self.model, self.path, self.device = model, path, device
        self.sampler = _recording_sampler(path.vocabulary)
        self.traces = 0
        self._compiled: dict[tuple, Any] = {}
        self._per_shape = False

    def _function(self, inputs: dict[str, np.ndarray]) -> Any:
        """The compiled generation step: one trace for every batch size (and, for an
        encoder, every prompt length); one per input shape, with AutoGraph, for a step that
        cannot be traced so."""
        import tensorflow as tf

        open_axes = {self.path.prompt[0], self.path.prompt[1]} if not self.path.causal else set()
        specs = {key: tf.TensorSpec((None, None if key in open_axes else a.shape[1]),
                                    tf.int32 if a.dtype.kind in "iu" else tf.bool)
                 for key, a in inputs.items()}
        key = (tuple((k, a.shape) for k, a in sorted(inputs.items())) if self._per_shape
               else tuple((k, tuple(s.shape)) for k, s in sorted(specs.items())))
        if key not in self._compiled:
            model, stops, sampler, output = (self.model, self.path.stops or None, self.sampler,
                                             self.path.output)

            def generate(batch: Any) -> Any:
                self.traces += 1
                out = model.generate_step(dict(batch), stop_token_ids=stops)
                return out[output[0]], out[output[1]], sampler.recorded

            signature = None if self._per_shape else [specs]
            # keras-hub's generation steps need no AutoGraph (their loops are ops.while_loop),
            # which saves a tenth of the trace; the fallback keeps it for a step that does
            self._compiled[key] = tf.function(generate, input_signature=signature,
                                              autograph=self._per_shape)
        return self._compiled[key]

    def run(self, inputs: dict[str, np.ndarray]) -> Run:
        import tensorflow as tf

        from maskcheck.dynamic.program import quiet_tf

        held = getattr(self.model, "sampler", None)
        self.model.sampler = self.sampler
        try:
            with tf.device(self.device), quiet_tf():
                batch = {k: tf.constant(v, "int32" if v.dtype.kind in "iu" else "bool")
                         for k, v in inputs.items()}
                try:
                    out, out_mask, logits = self._function(inputs)(batch)
                except (ValueError, TypeError):
                    if self._per_shape:
                        raise
                    self._per_shape = True  # the step needs fixed shapes or AutoGraph
                    out, out_mask, logits = self._function(inputs)(batch)
        finally:
            self.model.sampler = held
        return Run(np.asarray(out), np.asarray(out_mask).astype(bool), np.asarray(logits))

    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """One full forward pass: the logits at every position of the output sequence."""
        import tensorflow as tf

        from maskcheck.dynamic.program import quiet_tf

        with tf.device(self.device), quiet_tf():
            out = self.model({k: tf.constant(v) for k, v in inputs.items()}, training=False)
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


def _tolerance(reference: np.ndarray, config: Any, floor: float = 0.0) -> float:
    """--atol/--rtol on the reference logits, or `floor`, whichever is larger."""
    return max(config.atol + config.rtol * float(np.abs(reference).max(initial=0.0)), floor)


def _spread(reference: np.ndarray) -> float:
    return SPREAD * float(reference.max(initial=0.0) - reference.min(initial=0.0))


def _counted(run: Run, row: int, start: int, steps: int, stops: tuple[int, ...]) -> int:
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
    where the cached step-by-step logits differ from one full forward pass. A generation
    step that raises is said in `skipped`, never raised."""
    try:
        path = generation_path(model, config.padding)
    except NoGeneration as exc:
        return GenerationOutcome(skipped=str(exc))
    except Exception as exc:  # an attribute that is not what keras-hub's protocol has
        return GenerationOutcome(skipped=f"the generation path could not be read ({_line(exc)})")
    steps = config.generate_steps
    if path.max_length is not None and path.max_length < steps + 2:
        steps = max(1, path.max_length - 2)
    generator = Generator(model, path, device)
    outcome = GenerationOutcome(sides=path.sides, steps=steps)
    try:
        _measure(model, path, generator, steps, config, outcome)
    except Exception as exc:  # a model we cannot drive: said, never a crash of the check
        outcome = GenerationOutcome(skipped=f"the generation step raised ({_line(exc)})")
    outcome.traces = generator.traces
    return outcome


def _measure(model: Any, path: GenerationPath, generator: Generator, steps: int, config: Any,
             outcome: GenerationOutcome) -> None:
    prompt_list = prompts(path, steps, config.seed)
    longest = max(len(p) for p in prompt_list)
    alone = [layout(path, [p], "post", steps, longest) for p in prompt_list]
    runs = [generator.run(one.inputs) for one in alone]
    outcome.cache, cache_rounding = _cache_mismatch(model, generator, path, prompt_list, alone,
                                                    runs, config)
    # in a batch, a longer prompt's last tokens go through the cache one by one (the batch
    # starts decoding at its shortest prompt) where alone they were seeded in one pass: the
    # two paths' rounding moves its logits too; the batch shape's rounding is measured only
    # when some difference needs it (two more runs)
    floor = _Floor(lambda: NOISE_MARGIN * max(cache_rounding, _rounding(
        generator, path, prompt_list, alone, runs, steps, longest)))
    for side in path.sides:
        for batch in batches(len(prompt_list)):
            laid = layout(path, [prompt_list[k] for k in batch], side, steps, longest)
            run = generator.run(laid.inputs)
            found = _batch_mismatch(model, generator, path, prompt_list, alone, runs, batch,
                                    side, laid, run, steps, config, floor)
            if found is not None:
                outcome.batch.append(found)
                break


class _Floor:
    """A tolerance floor computed on first use."""

    def __init__(self, compute: Any) -> None:
        self._compute, self._value = compute, None

    @property
    def value(self) -> float:
        if self._value is None:
            self._value = float(self._compute())
        return self._value


def _rounding(generator: Generator, path: GenerationPath, prompt_list: list[np.ndarray],
              alone: list[Layout], runs: list[Run], steps: int, longest: int) -> float:
    """How far a prompt's logits move when only the batch shape changes: the longest and the
    shortest prompt, each repeated to fill a batch (no padding), against alone, at the
    generated steps whose tokens agree."""
    order = sorted(range(len(prompt_list)), key=lambda k: len(prompt_list[k]))
    noise = 0.0
    for k, size in zip((order[-1], order[0]), BATCH_SIZES[::-1]):
        run = generator.run(layout(path, [prompt_list[k]] * size, "post", steps, longest).inputs)
        own = alone[k].starts[0]
        for s in range(steps):
            if int(run.ids[0, own + s]) != int(runs[k].ids[0, own + s]):
                break
            noise = max(noise, float(np.abs(run.logits[:, own + s] - runs[k].logits[0, own + s]).max()))
    return noise


def _batch_mismatch(model: Any, generator: Generator, path: GenerationPath,
                    prompt_list: list[np.ndarray], alone: list[Layout], runs: list[Run],
                    batch: tuple[int, ...], side: str, laid: Layout, run: Run, steps: int,
                    config: Any, floor: "_Floor") -> Measured | None:
    """The first row of a batch whose generation differs from its prompt's alone (beyond
    the tolerance, or `floor`, the rounding between batch shapes)."""
    for row, k in enumerate(batch):
        own = alone[k].starts[0]
        start = laid.starts[row]
        for s in range(_counted(runs[k], 0, own, steps, path.stops)):
            expected, got = int(runs[k].ids[0, own + s]), int(run.ids[row, start + s])
            reference = runs[k].logits[0, own + s]
            diff = float(np.abs(run.logits[row, start + s] - reference).max())
            kept, kept_alone = bool(run.mask[row, start + s]), bool(runs[k].mask[0, own + s])
            if diff <= _tolerance(reference, config) or diff <= _tolerance(reference, config,
                                                                           floor.value):
                if expected != got:  # a tie the batch broke the other way: not padding's doing
                    break
                if kept == kept_alone:
                    continue
                # the same token, but the output mask the step returns drops it in the batch
                what = (f"at step {s} the batch's output mask marks the row's generated token "
                        f"{got} as padding (its output is dropped while other rows go on)")
                causes = ["tokens"]
            else:
                what, causes = _what_changed(generator, path, laid, row, s, run, expected, got,
                                             _tolerance(reference, config, floor.value))
            leak = Leak(layer=model.name, layer_class=type(model).__name__, path=(model.name,),
                        sample=row, position=start + s, padding=side, max_abs_diff=diff,
                        output=None, kind="generation")
            length = len(prompt_list[k])
            return Measured(leak, {"prompt": k, "prompt_length": length, "tokens": _tokens(length),
                                   "padding": side, "step": s, "batch": tuple(batch),
                                   "batch_size": len(batch), "expected_token": expected,
                                   "token": got, "what": what, "causes": tuple(causes),
                                   "prompt_ids": tuple(int(t) for t in prompt_list[k])})
    return None


def _what_changed(generator: Generator, path: GenerationPath, laid: Layout, row: int, step: int,
                  run: Run, expected: int, got: int, tolerance: float) -> tuple[str, list[str]]:
    """What the batch changed for a row, in words, and the causes the fix follows:
    "pad-slots" (generated tokens written over the row's left padding), "attends-to-padding"
    (the pad tokens' values reach the row's logits), "positions" (the logits move with the
    amount of padding, not its values), "tokens" (a later step only)."""
    said, causes = [], []
    ids_key, mask_key = path.prompt
    ids, mask = laid.inputs[ids_key], laid.inputs[mask_key]
    if path.causal:
        slots = [j for j in range(laid.begins[row]) if int(run.ids[row, j]) != int(ids[row, j])]
        if slots:
            said.append(f"the batch wrote generated tokens into the row's left pad slots "
                        f"(positions {slots[0]}..{slots[-1]})")
            causes.append("pad-slots")
    token = (f"token {got} instead of {expected}" if got != expected
             else f"the same token {got} from different next-token logits")
    prompt_end = laid.starts[row] if path.causal else mask.shape[1]
    if step == 0 and (~mask[row, :prompt_end]).any():
        # the prompt is complete at step 0: only padding can move its logits; is it the pad
        # tokens' values (attention to pad positions) or only how many there are (positions)?
        other = path.pad + 1 if path.pad + 1 < path.vocabulary else path.pad - 1
        changed = dict(laid.inputs)
        changed[ids_key] = np.where(mask, ids, other).astype("int32")
        moved = generator.run(changed)
        start = laid.starts[row]
        diff = float(np.abs(moved.logits[row, start] - run.logits[row, start]).max())
        if diff > tolerance:
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


def _cache_mismatch(model: Any, generator: Generator, path: GenerationPath,
                    prompt_list: list[np.ndarray], alone: list[Layout], runs: list[Run],
                    config: Any) -> tuple[Measured | None, float]:
    """The first prompt and step where the logits the cache gave (recorded while generating
    alone) differ from one full forward pass over the same tokens with every slot valid;
    and the largest difference within tolerance (the two paths' rounding)."""
    out_ids, out_mask = path.output
    if path.causal:  # every prompt's sequence has the same length: one pass for all
        ids = np.concatenate([run.ids for run in runs], axis=0)
        full = generator.forward({out_ids: ids, out_mask: np.ones_like(ids, dtype=bool)})
        fulls = [full[k:k + 1] for k in range(len(runs))]
    else:  # the encoder's prompt as it was, the decoder's tokens as generated
        fulls = [generator.forward({**one.inputs, out_ids: run.ids,
                                    out_mask: np.ones_like(run.ids, dtype=bool)})
                 for one, run in zip(alone, runs)]
    rounding = 0.0
    for k, (one, run, full) in enumerate(zip(alone, runs, fulls)):
        own = one.starts[0]
        for s in range(run.ids.shape[1] - own):
            cached, reference = run.logits[0, own + s], full[0, own + s - 1]
            diff = float(np.abs(cached - reference).max())
            if diff <= _tolerance(reference, config, _spread(reference)):
                rounding = max(rounding, diff)
            else:
                leak = Leak(layer=model.name, layer_class=type(model).__name__,
                            path=(model.name,), sample=0, position=own + s, padding="post",
                            max_abs_diff=diff, output=None, kind="generation")
                length = len(prompt_list[k])
                return Measured(leak, {"prompt": k, "prompt_length": length,
                                       "tokens": _tokens(length), "step": s,
                                       "position": own + s}), rounding
    return None, rounding


def _line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


def _tokens(n: int) -> str:
    return f"{n} token" if n == 1 else f"{n} tokens"
