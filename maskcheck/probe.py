"""Padding-perturbation probes: does padding change what a model computes or learns?

Public contract (used by the dynamic engine, the pytest plugin and users):

* ``find_leak(model, x, *, mask=None, lengths=None, padding="post",
  training=False, atol=1e-5, rtol=1e-4, seed=0) -> Leak | None``: perturb only
  the padded positions of ``x`` (several draws: natural-scale noise, large
  values, the batch's own values shuffled) while holding the mask fixed, and
  return the largest change of a valid output, localized to the first layer
  whose valid region diverges while its inputs' did not; None when valid
  outputs stay within ``atol + rtol * |reference|``.
* ``find_loss_leak(model, x, y, *, mask=None, lengths=None, padding="post",
  atol=1e-5, rtol=1e-4, seed=0) -> Leak | None``: the same for the compiled
  loss (``model.compute_loss``) and the gradients of the trainable weights,
  perturbing padded labels and padded inputs.

``x`` is an array, a list or a dict of arrays (as the model takes them). The
mask is a (batch, time) boolean array, True at valid positions; when None it
comes from ``lengths`` (with ``padding`` saying which side is padded), else
from an explicit mask input in ``x`` (``padding_mask``, ``attention_mask``,
``mask``, ``<name>_mask``), else from the model's mask generator applied to
``x`` (token 0 for ``Embedding(mask_zero=True)``, ``mask_value`` for
``Masking``). Where the mask derives from values, the perturbation is applied
to the generator's output at padded positions (never to the raw ids), so the
mask cannot move. Model weights are never changed (training-mode state is
restored exactly). Results are deterministic for a seed.

Raises ``ProbeError`` (a ValueError) with a one-line reason when the model
cannot be probed (its forward pass raises, no input holds padding, ...).
Keras, TensorFlow and NumPy are imported inside functions only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

MASK_INPUT_NAMES = ("padding_mask", "attention_mask", "mask")
#: Perturbation draws: (noise scale, shuffle). Scale multiplies N(0, 1) noise.
DRAWS = ((1.0, False), (100.0, False), (0.0, True))


class ProbeError(ValueError):
    """The model cannot be probed; the message is one line naming why."""


@dataclass(frozen=True)
class Leak:
    """Evidence that padding changes what the model computes or learns."""

    layer: str | None
    layer_class: str | None
    path: tuple[str, ...]
    sample: int
    position: int
    padding: str
    max_abs_diff: float
    output: str | None
    kind: str = "outputs"  # "outputs" | "loss" | "gradients"

    def describe(self) -> str:
        """A few readable lines: where the leak starts and how big it is."""
        where = (f"layer {self.layer!r} ({self.layer_class})" if self.layer
                 else "the model itself (no single layer)")
        what = {"outputs": "valid outputs", "loss": "the loss",
                "gradients": "the gradients of the trainable weights"}.get(self.kind, self.kind)
        position = f", position {self.position}" if self.position >= 0 else ""
        lines = [
            f"padding leak: {what} change by up to {self.max_abs_diff:.6g} when only padding changes",
            f"  starts at: {where}" + (f", path {'/'.join(self.path)}" if self.path else ""),
            f"  sample {self.sample}{position}, {self.padding}-padding"
            + (f", output {self.output!r}" if self.output else ""),
        ]
        return "\n".join(lines)


# --------------------------------------------------------------------------- inputs


@dataclass
class InputSpec:
    """One flat model input and how padding reaches it."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]  # per sample, without the batch axis
    role: str = "static"  # "data" (padded values), "mask" (explicit mask input), "static"
    generator: Any = None  # Embedding(mask_zero) / Masking layer reading it
    pad_value: float = 0.0
    vocab: int | None = None  # ids must stay below this (Embedding input_dim)
    n_padded: int = 1  # padded axes after the batch axis (2 for images)


def round_sig(value: float, digits: int = 6) -> float:
    """`value` rounded to `digits` significant digits (stable JSON evidence)."""
    if value != value or value in (float("inf"), float("-inf")) or value == 0:
        return float(value)
    return float(f"{value:.{digits}g}")


def _model_input_names(model: Any) -> list[str] | None:
    inputs = getattr(model, "inputs", None)
    try:
        if inputs:
            return [_input_layer_name(t) for t in inputs]
    except (AttributeError, ValueError):
        pass
    return None


def _input_layer_name(tensor: Any) -> str:
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return str(getattr(operation, "name", None) or tensor.name)


def flatten_x(model: Any, x: Any) -> tuple[list[Any], list[str], Any]:
    """(flat arrays, names, pack) where pack(flat) rebuilds x's structure."""
    import numpy as np

    if isinstance(x, dict):
        keys = list(x)
        return ([np.asarray(x[k]) for k in keys], keys,
                lambda flat: dict(zip(keys, flat)))
    if isinstance(x, (list, tuple)):
        names = _model_input_names(model) or [f"input_{i}" for i in range(len(x))]
        if len(names) != len(x):
            names = [f"input_{i}" for i in range(len(x))]
        kind = type(x)
        return [np.asarray(v) for v in x], names, lambda flat: kind(flat)
    names = _model_input_names(model) or ["input"]
    return [np.asarray(x)], names[:1], lambda flat: flat[0]


def mask_generators(model: Any) -> dict[str, Any]:
    """Model input name -> the first Embedding(mask_zero)/Masking layer downstream of it.

    Downstream through any layers (a lookup, a cast): the mask then derives
    from the input's values, so probes perturb after the generator. For
    subclassed models (no graph) the only generator is matched to every
    input, which is right for the usual one-input case.
    """
    from maskcheck.probe_trace import sublayers

    def is_generator(layer: Any) -> bool:
        name = type(layer).__name__
        return (name == "Masking" or (bool(getattr(layer, "mask_zero", False))
                                      and hasattr(layer, "input_dim")))

    found: dict[str, Any] = {}
    try:
        from maskcheck.keras_adapter import adapt_model

        graph = adapt_model(model)
    except Exception:
        graph = None
    if graph is not None:
        # the first generator downstream of each input: its mask derives from the
        # input's values even through lookups or casts, so probes perturb after it
        layers = {layer.name: layer for layer in sublayers(model)}
        consumers: dict[int, list[Any]] = {}
        for node in graph.nodes:
            for tid in node.inputs:
                consumers.setdefault(tid, []).append(node)
        for node in graph.nodes:
            if not node.is_input:
                continue
            frontier, seen = list(node.outputs), set()
            while frontier and node.name not in found:
                tid = frontier.pop(0)
                for nxt in consumers.get(tid, []):
                    if nxt.index in seen:
                        continue
                    seen.add(nxt.index)
                    layer = layers.get(nxt.name)
                    if layer is not None and is_generator(layer):
                        found[node.name] = layer
                        break
                    frontier.extend(nxt.outputs)
        return found
    generators = [layer for layer in sublayers(model) if is_generator(layer)]
    if len(generators) == 1:
        return {"*": generators[0]}
    return {}


def embedding_vocab(model: Any) -> dict[str, int]:
    """Model input name -> the input_dim of the Embedding reading it (functional only)."""
    from maskcheck.probe_trace import sublayers

    vocab: dict[str, int] = {}
    try:
        from maskcheck.keras_adapter import adapt_model

        graph = adapt_model(model)
    except Exception:
        dims = [int(l.input_dim) for l in sublayers(model) if hasattr(l, "input_dim")]
        return {"*": min(dims)} if dims else {}
    layers = {layer.name: layer for layer in sublayers(model)}
    by_tensor = {n.outputs[0]: n.name for n in graph.nodes if n.is_input}
    # follow each input through pointwise-free hops: direct consumers only
    for node in graph.nodes:
        layer = layers.get(node.name)
        dim = getattr(layer, "input_dim", None)
        if not isinstance(dim, int):
            continue
        for tid in node.inputs:
            if tid in by_tensor:
                name = by_tensor[tid]
                vocab[name] = min(vocab.get(name, dim), dim)
    if not vocab:
        dims = [int(l.input_dim) for l in sublayers(model) if isinstance(getattr(l, "input_dim", None), int)]
        if dims:
            vocab["*"] = min(dims)
    return vocab


def is_mask_name(name: str) -> bool:
    base = name.split(":")[0].split("/")[-1]
    return base in MASK_INPUT_NAMES or base.endswith("_mask")


# --------------------------------------------------------------------------- rows


@dataclass
class Rows:
    """A stacked probe batch: per row its base row, sample, side, draw and mask."""

    mask: Any  # (N, *S) bool, True at valid positions
    base_row: Any  # (N,) index of the unperturbed row with the same sample
    sample: Any  # (N,)
    side: list[str]
    draw: Any  # (N,) 0 for base rows
    scale: Any  # (N,) float noise scale (0 for base rows)
    shuffle: Any  # (N,) bool
    lengths: Any  # (N,) valid length

    @property
    def n(self) -> int:
        return len(self.base_row)


def mask_from_lengths(lengths: Sequence[int], sizes: tuple[int, ...], padding: str) -> Any:
    import numpy as np

    out = np.zeros((len(lengths), *sizes), dtype=bool)
    for i, length in enumerate(lengths):
        length = int(length)
        index = tuple(slice(0, length) if padding == "post" else slice(size - length, size)
                      for size in sizes)
        out[(i, *index)] = True
    return out


def stack_draws(mask: Any, sides: list[str], draws: tuple = DRAWS) -> Rows:
    """Rows for `mask` (the base samples) followed by one copy per draw."""
    import numpy as np

    b = mask.shape[0]
    d = len(draws) + 1
    sample = np.tile(np.arange(b), d)
    draw = np.repeat(np.arange(d), b)
    scale = np.array([0.0] + [s for s, _ in draws], dtype="float32")[draw]
    shuffle = np.array([False] + [sh for _, sh in draws])[draw]
    return Rows(mask=np.tile(mask, (d,) + (1,) * (mask.ndim - 1)), base_row=sample.copy(),
                sample=sample, side=[sides[i] for i in sample], draw=draw,
                scale=scale, shuffle=shuffle, lengths=np.tile(_lengths(mask), d))


def _lengths(mask: Any) -> Any:
    import numpy as np

    flat = mask.reshape(mask.shape[0], mask.shape[1], -1).any(axis=-1) if mask.ndim > 2 else mask
    return flat.sum(axis=1).astype(np.int64)


def perturb_raw(array: Any, spec: InputSpec, rows: Rows, seed: int) -> Any:
    """Replace padded positions of perturbed rows (draw > 0) in a raw input array."""
    import numpy as np

    rng = np.random.default_rng([seed, 7])
    valid = _expand(rows.mask, array.ndim)
    out = array.copy()
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        high = spec.vocab or int(max(array.max(), 1)) + 1
        repl = rng.integers(1 if high > 1 else 0, max(high, 2), size=array.shape).astype(array.dtype)
        if array.dtype == bool:
            repl = rng.integers(0, 2, size=array.shape).astype(bool)
    else:
        noise = rng.standard_normal(array.shape).astype(array.dtype)
        shuffled = np.roll(np.roll(array, 1, axis=0), max(array.shape[1] // 2, 1), axis=1)
        scale = rows.scale.reshape((-1,) + (1,) * (array.ndim - 1)).astype(array.dtype)
        shuf = rows.shuffle.reshape((-1,) + (1,) * (array.ndim - 1))
        repl = np.where(shuf, shuffled, array + scale * noise)
    perturbed = (rows.draw > 0).reshape((-1,) + (1,) * (array.ndim - 1))
    return np.where(valid | ~perturbed, out, repl)


def _expand(mask: Any, ndim: int) -> Any:
    return mask.reshape(mask.shape + (1,) * (ndim - mask.ndim))


# --------------------------------------------------------------------------- running


@dataclass
class Run:
    """What one compiled pass returned, as NumPy."""

    outputs: list[Any]
    output_names: list[str]
    output_masked: list[bool]
    records: list[Any]
    tensors: list[Any]  # unique traced tensors; records index into them

    def io(self, record: Any) -> tuple[list[Any], list[Any]]:
        """A record's input and output arrays."""
        return [self.tensors[i] for i in record.inputs], [self.tensors[i] for i in record.outputs]


class Prober:
    """Runs a model in one compiled function that returns every layer call's tensors.

    One Prober per model and probe session; the function is traced once per
    input signature and per training flag.
    """

    def __init__(self, model: Any, device: str = "auto", seed: int = 0) -> None:
        from maskcheck.probe_trace import Tracer

        self.model = model
        self.seed = seed
        self.device = resolve_device(device)
        self.tracer = Tracer(model)
        self._fns: dict[bool, Any] = {}
        self._hook_args: dict[str, Any] = {}
        self._generators: list[Any] = []
        self._meta: dict[bool, tuple[list[Any], list[str], list[bool]]] = {}

    def set_generators(self, layers: list[Any]) -> None:
        self._generators = [l for l in layers if l is not None]
        self.tracer.hooks = {id(l): self._make_hook(k) for k, l in enumerate(self._generators)}

    def _make_hook(self, k: int) -> Any:
        def hook(out: Any) -> Any:
            import tensorflow as tf

            args = self._hook_args
            if not args or not tf.is_tensor(out) or not out.dtype.is_floating:
                return out
            mask = args["mask"]
            rank = len(out.shape)
            if rank < mask.shape.rank:
                return out
            shape = tf.shape(out)
            noise = tf.random.stateless_normal(shape, seed=[self.seed, 11 + k], dtype=out.dtype)
            bshape = [-1] + [1] * (rank - 1)
            scale = tf.cast(tf.reshape(args["scale"], bshape), out.dtype)
            shuffled = tf.roll(tf.roll(out, 1, axis=0), tf.maximum(shape[1] // 2, 1), axis=1)
            repl = tf.where(tf.reshape(args["shuffle"], bshape), shuffled, out + scale * noise)
            valid = tf.reshape(mask, tf.concat([tf.shape(mask), [1] * (rank - mask.shape.rank)], 0))
            perturbed = tf.reshape(args["draw"] > 0, bshape)
            return tf.where(tf.logical_or(valid, tf.logical_not(perturbed)), out, repl)

        return hook

    def _fn(self, training: bool, inputs: Any = None, rows: Rows | None = None) -> Any:
        if training in self._fns:
            return self._fns[training]
        import keras
        import tensorflow as tf

        model, tracer = self.model, self.tracer

        def forward(inputs: Any, mask: Any, scale: Any, shuffle: Any, draw: Any) -> Any:
            self._hook_args = {"mask": mask, "scale": scale, "shuffle": shuffle, "draw": draw}
            tracer.start()
            try:
                outputs = model(inputs, training=training)
            finally:
                tracer.stop()
                self._hook_args = {}
            flat = keras.tree.flatten(outputs)
            names = output_names(model, len(flat))
            masked = [getattr(t, "_keras_mask", None) is not None for t in flat]
            self._meta[training] = (list(tracer.records), names, masked)
            return flat, list(tracer.tensors)

        signature = None
        if inputs is not None and rows is not None and not self._needs_static_shapes():
            signature = _signature(inputs, rows)
        self._fns[training] = tf.function(forward, autograph=False, input_signature=signature)
        return self._fns[training]

    def _needs_static_shapes(self) -> bool:
        """Keras 3.15's TimeDistributed miscounts time steps when the time axis is open
        in a traced function (it returns batch-size steps), so such models are traced
        per concrete shape instead of once with open axes."""
        from maskcheck.probe_trace import OPAQUE_WRAPPERS

        return any(cls.__name__ in OPAQUE_WRAPPERS
                   for layer in self.tracer.layers for cls in type(layer).__mro__)

    def _eager_error(self, inputs: Any, training: bool) -> BaseException | None:
        """The same call run eagerly, for a readable error (static shapes) and the failing layer."""
        import keras

        try:
            with self.tracer:
                self.tracer.start_hooks()
                try:
                    self.model(inputs, training=training)
                finally:
                    self.tracer.stop()
        except Exception as exc:  # the user's model may raise anything
            return exc
        return None

    def run(self, inputs: Any, rows: Rows, *, training: bool = False, hooks: bool = True) -> Run:
        """One pass over the stacked `inputs`; perturbs generator outputs per `rows`."""
        import numpy as np
        import tensorflow as tf

        fn = self._fn(training, inputs, rows)
        draw = rows.draw if hooks else np.zeros_like(rows.draw)
        snapshot = _snapshot(self.model) if training else None
        try:
            with self.tracer, tf.device(self.device), _quiet_tf():
                flat, tensors = fn(inputs, tf.constant(rows.mask), tf.constant(rows.scale),
                                   tf.constant(rows.shuffle), tf.constant(draw))
        except ProbeError:
            raise
        except Exception as exc:
            eager = self._eager_error(inputs, training) if self.tracer.failed is None else None
            failed = self.tracer.failed
            where = f" in layer {failed.name!r} ({failed.class_name})" if failed else ""
            raise ForwardError(f"the forward pass raises{where}: {_one_line(eager or exc)}",
                               failed) from None
        finally:
            if snapshot is not None:
                _restore(self.model, snapshot)
        records, names, masked = self._meta[training]
        return Run([_np(t) for t in flat], names, masked, records, [_np(t) for t in tensors])


#: The last few Probers handed out by `cached_prober`, newest last (bounded: it holds models).
_RECENT_PROBERS: list[tuple[tuple, "Prober"]] = []
_RECENT_LIMIT = 4


def cached_prober(model: Any, device: str, seed: int, generators: list[Any],
                  inputs: Any, rows: "Rows") -> "Prober":
    """A Prober for `model`, reused across calls with the same settings.

    Property tests call `find_leak` on one model dozens of times; tracing its
    compiled function anew each time costs ~0.5 s a call. The cache is keyed
    on the model's identity (checked with `is`, not only `id`), the device,
    the seed, the mask generators perturbed and the input signature the
    function is traced for (dtypes, open axes), and keeps the last few only,
    so models a test drops are released soon after.
    """
    key = (id(model), resolve_device(device), seed, tuple(id(g) for g in generators if g is not None),
           repr(_signature(inputs, rows)))
    for i, (cached_key, prober) in enumerate(_RECENT_PROBERS):
        if cached_key == key and prober.model is model:
            _RECENT_PROBERS.append(_RECENT_PROBERS.pop(i))
            return prober
    prober = Prober(model, device, seed)
    prober.set_generators(generators)
    _RECENT_PROBERS.append((key, prober))
    del _RECENT_PROBERS[:-_RECENT_LIMIT]
    return prober


class _quiet_tf:
    """Silence TensorFlow's Python logger (retracing notes) for the duration."""

    def __enter__(self) -> None:
        import tensorflow as tf

        self.logger = tf.get_logger()
        self.level = self.logger.level
        self.logger.setLevel("ERROR")

    def __exit__(self, *exc: Any) -> None:
        self.logger.setLevel(self.level)



def _signature(inputs: Any, rows: Rows) -> Any:
    """TensorSpecs with the batch and padded axes left open, so one trace serves
    the stacked batch, the grown batch (MC304) and training batches alike."""
    import keras
    import tensorflow as tf

    padded = rows.mask.shape[1:]

    def spec(array: Any) -> Any:
        shape = [None] + list(array.shape[1:])
        if tuple(array.shape[1:1 + len(padded)]) == tuple(padded):
            shape[1:1 + len(padded)] = [None] * len(padded)
        return tf.TensorSpec(shape, tf.as_dtype(array.dtype))

    k = len(padded)
    return [keras.tree.map_structure(spec, inputs), tf.TensorSpec([None] * (k + 1), tf.bool),
            tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.bool),
            tf.TensorSpec([None], tf.as_dtype(rows.draw.dtype))]


class ForwardError(ProbeError):
    """The model raised during a probe pass; `record` names the innermost layer."""

    def __init__(self, message: str, record: Any = None) -> None:
        super().__init__(message)
        self.record = record


def _np(t: Any) -> Any:
    import numpy as np

    value = t.numpy() if hasattr(t, "numpy") else np.asarray(t)
    return value


_NOISE = ("Exception encountered when calling", "Arguments received by", "•", "Detected at node",
          "File ", "Graph execution error", "[[", "defined at (most recent call last)")


def _one_line(exc: BaseException) -> str:
    """The exception as one readable line: ANSI codes, Keras call context and TF node traces dropped."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith(_NOISE)]
    body = " ".join(" ".join(kept[:2]).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {body}"[:300]


def _snapshot(model: Any) -> list[tuple[Any, Any]]:
    return [(v, v.numpy()) for v in model.variables]


def _restore(model: Any, snapshot: list[tuple[Any, Any]]) -> None:
    for variable, value in snapshot:
        variable.assign(value)


def resolve_device(device: str) -> str:
    """'/GPU:0' when asked (or auto and TensorFlow sees a GPU), else '/CPU:0'."""
    import tensorflow as tf

    if device == "cpu":
        return "/CPU:0"
    gpus = tf.config.list_logical_devices("GPU")
    if device == "gpu" and not gpus:
        raise ProbeError("--device gpu: TensorFlow sees no GPU")
    return "/GPU:0" if gpus else "/CPU:0"


def output_names(model: Any, n: int) -> list[str]:
    names = list(getattr(model, "output_names", None) or [])
    if len(names) == n:
        return [str(x) for x in names]
    return [model.name] if n == 1 else [f"{model.name}[{i}]" for i in range(n)]


# --------------------------------------------------------------------------- comparing


def valid_region(shape: tuple[int, ...], mask: Any) -> Any:
    """Boolean array broadcastable to `shape`: entries that index only valid positions.

    With one padded axis of length T, every axis of size T after the batch
    axis is treated as a time axis (so attention scores (B, H, T, T) count
    only valid query/key pairs); with two (images) the axes 1 and 2. A tensor
    without such axes is compared whole.
    """
    import numpy as np

    n = shape[0]
    k = mask.ndim - 1
    region = np.ones((n,) + (1,) * (len(shape) - 1), dtype=bool)
    if k == 1:
        t = mask.shape[1]
        for axis in range(1, len(shape)):
            if shape[axis] == t:
                view = [n] + [1] * (len(shape) - 1)
                view[axis] = t
                region = region & mask.reshape(view)
        return region
    if len(shape) >= 1 + k and tuple(shape[1:1 + k]) == tuple(mask.shape[1:]):
        return _expand(mask, len(shape))
    return region


@dataclass
class Divergence:
    rows: Any  # (N,) bool: row diverges
    diff: Any  # (N,) max abs diff per row (over the compared region)
    position: Any  # (N,) index along axis 1 of the max diff, -1 if none


def diverge(new: Any, ref: Any, valid: Any, atol: float, rtol: float) -> Divergence:
    """Where `new` differs from `ref` beyond tolerance, inside `valid`."""
    import numpy as np

    new = np.asarray(new, dtype=np.float64) if new.dtype != np.float64 else new
    ref = np.asarray(ref, dtype=np.float64) if ref.dtype != np.float64 else ref
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(new) & np.isfinite(ref)
        same_nonfinite = ~finite & ((np.isnan(new) & np.isnan(ref)) | (new == ref))
        diff = np.where(finite, np.abs(new - ref), np.where(same_nonfinite, 0.0, np.inf))
        exceed = (diff > atol + rtol * np.where(finite, np.abs(ref), 0.0)) & valid
    n = new.shape[0]
    flat_exceed = exceed.reshape(n, -1)
    flat_diff = np.where(exceed, diff, 0.0).reshape(n, -1)
    rows = flat_exceed.any(axis=1)
    arg = flat_diff.argmax(axis=1)
    best = flat_diff[np.arange(n), arg]
    if new.ndim >= 2:
        position = np.unravel_index(arg, new.shape[1:])[0].astype(np.int64)
    else:
        position = np.full(n, -1, dtype=np.int64)
    return Divergence(rows, best, np.where(rows, position, -1))


def localize(run: Run, ref: Run | None, rows: Any, base_index: Any, mask: Any,
             atol: float, rtol: float, ref_index: Any = None) -> Any:
    """The first recorded call whose outputs diverge (on `rows`) while its inputs do not.

    Compares `run` rows against `ref` (or `run` itself) at `base_index`.
    Falls back to the first call whose outputs diverge; None if none does.
    """
    import numpy as np

    ref = ref or run
    ref_index = base_index if ref_index is None else ref_index
    first_any = None
    if len(ref.records) != len(run.records):
        return None
    for record, ref_record in zip(run.records, ref.records):
        ins, outs = run.io(record)
        ins_ref, outs_ref = ref.io(ref_record)

        def any_div(arrays: list[Any], refs: list[Any]) -> bool:
            for a, r in zip(arrays, refs):
                if a.ndim == 0 or a.shape[0] != len(base_index) or a.shape != r.shape:
                    continue
                a_rows, r_rows = a[rows], r[ref_index[rows]]
                valid = valid_region(a_rows.shape, mask[rows])
                if diverge(a_rows, r_rows, valid, atol, rtol).rows.any():
                    return True
            return False

        if any_div(outs, outs_ref):
            if first_any is None:
                first_any = record
            if not any_div(ins, ins_ref):
                return record
    return first_any


# --------------------------------------------------------------------------- public API


@dataclass
class _Prepared:
    flat: list[Any]
    names: list[str]
    pack: Any
    specs: list[InputSpec]
    mask: Any
    generators: list[Any] = field(default_factory=list)


def _prepare(model: Any, x: Any, mask: Any, lengths: Any, padding: str,
             extra_masks: tuple[str, ...] = ()) -> _Prepared:
    import numpy as np

    if padding not in ("post", "pre"):
        raise ProbeError(f"padding must be 'post' or 'pre', not {padding!r}")
    flat, names, pack = flatten_x(model, x)
    if not flat or any(a.ndim == 0 for a in flat):
        raise ProbeError("x must be an array, a list or a dict of arrays with a batch axis")
    if any(a.shape[0] == 0 for a in flat):
        raise ProbeError("x is an empty batch")
    gens = mask_generators(model)
    vocab = embedding_vocab(model)
    specs = [InputSpec(n, str(a.dtype), tuple(a.shape[1:])) for n, a in zip(names, flat)]
    for spec in specs:
        spec.generator = gens.get(spec.name, gens.get("*"))
        spec.vocab = vocab.get(spec.name, vocab.get("*"))
        if spec.generator is not None and type(spec.generator).__name__ == "Masking":
            spec.pad_value = float(spec.generator.mask_value)
    explicit = [i for i, n in enumerate(names) if is_mask_name(n) or n in extra_masks]
    if mask is None and lengths is not None:
        t = _time_length(flat, explicit)
        mask = mask_from_lengths(list(lengths), (t,), padding)
    if mask is None and explicit:
        mask = np.asarray(flat[explicit[0]]).astype(bool)
    if mask is None:
        for spec, array in zip(specs, flat):
            gen = spec.generator
            if gen is None or array.ndim < 2:
                continue
            if type(gen).__name__ == "Masking":
                mask = np.any(array != spec.pad_value, axis=-1)
                mask = mask if mask.ndim == 2 else mask.reshape(mask.shape[0], mask.shape[1], -1).any(-1)
            else:
                mask = array != 0
            break
    if mask is None:
        raise ProbeError("no mask for the probe batch: give a mask or lengths (mask=/lengths=, or "
                         "'mask'/'lengths' arrays in the --data file), or a model with a padding "
                         "mask input or a mask generator (Embedding(mask_zero=True), Masking)")
    mask = np.asarray(mask).astype(bool)
    if mask.ndim < 2 or mask.shape[0] != flat[0].shape[0]:
        raise ProbeError(f"mask must have shape (batch, time), got {mask.shape}")
    for i, (spec, array) in enumerate(zip(specs, flat)):
        if i in explicit:
            spec.role = "mask"
        elif array.ndim >= mask.ndim and tuple(array.shape[1:mask.ndim]) == tuple(mask.shape[1:]):
            spec.role = "data"
            spec.n_padded = mask.ndim - 1
    if not any(s.role == "data" for s in specs):
        raise ProbeError(f"no input has the mask's padded shape {mask.shape[1:]}")
    gens_used = [s.generator for s in specs if s.role == "data" and s.generator is not None]
    return _Prepared(flat, names, pack, specs, mask, gens_used)


def _time_length(flat: list[Any], explicit: list[int]) -> int:
    for i, array in enumerate(flat):
        if array.ndim >= 2:
            return int(array.shape[1])
    raise ProbeError("lengths= needs an input with a time axis")


def _stacked_inputs(prep: _Prepared, rows: Rows, seed: int) -> Any:
    import numpy as np

    d = rows.n // prep.mask.shape[0]
    stacked = []
    for spec, array in zip(prep.specs, prep.flat):
        tiled = np.concatenate([array] * d, axis=0)
        if spec.role == "data" and spec.generator is None:
            tiled = perturb_raw(tiled, spec, rows, seed)
        stacked.append(tiled)
    return prep.pack(stacked)


def find_leak(model: Any, x: Any, *, mask: Any = None, lengths: Sequence[int] | None = None,
              padding: str = "post", training: bool = False, atol: float = 1e-5,
              rtol: float = 1e-4, seed: int = 0, device: str = "auto") -> Leak | None:
    """The largest change of a valid output when only padded values change, or None.

    Args:
        model: a Keras model (Functional, Sequential or subclassed).
        x: the inputs, an array, list or dict of arrays as the model takes them.
        mask: (batch, time) booleans, True at valid positions.
        lengths: valid lengths per sample, used when `mask` is None.
        padding: which side `lengths` pads ("post" or "pre"); reported in the Leak.
        training: probe in training mode (batch statistics). Each draw then runs
            as its own batch, since stacking would change the statistics.
        atol, rtol: a valid output differs when |new - old| > atol + rtol * |old|.
        seed: the perturbations are deterministic for a seed.

    Returns:
        A `Leak` localized to the first layer whose valid region diverges while
        its inputs' do not, or None.

    Raises:
        ProbeError: the model cannot be probed (one-line reason).

    Example:
        >>> leak = find_leak(model, tokens)          # mask from Embedding(mask_zero)
        >>> assert leak is None, leak.describe()
    """
    import numpy as np

    prep = _prepare(model, x, mask, lengths, padding)
    b = prep.mask.shape[0]
    rows = stack_draws(prep.mask, [padding] * b)
    inputs = _stacked_inputs(prep, rows, seed)
    prober = cached_prober(model, device, seed, prep.generators, inputs, rows)
    if not training:
        run = prober.run(inputs, rows)
        return _output_leak(run, None, rows, np.arange(rows.n) >= b, rows.base_row, None,
                            padding, atol, rtol)
    # training: base batch and each draw as separate batches
    base_rows = _subset(rows, np.arange(b))
    ref = prober.run(_take(inputs, np.arange(b)), base_rows, training=True)
    best: Leak | None = None
    for draw in range(1, rows.n // b):
        idx = np.arange(draw * b, (draw + 1) * b)
        sub = _subset(rows, idx)
        sub.base_row = np.arange(b)
        run = prober.run(_take(inputs, idx), sub, training=True)
        leak = _output_leak(run, ref, sub, np.ones(b, dtype=bool), np.arange(b), None,
                            padding, atol, rtol)
        if leak is not None and (best is None or leak.max_abs_diff > best.max_abs_diff):
            best = leak
    return best


def _take(inputs: Any, idx: Any) -> Any:
    import keras

    return keras.tree.map_structure(lambda a: a[idx], inputs)


def _subset(rows: Rows, idx: Any) -> Rows:
    return Rows(rows.mask[idx], rows.base_row[idx], rows.sample[idx], [rows.side[i] for i in idx],
                rows.draw[idx], rows.scale[idx], rows.shuffle[idx], rows.lengths[idx])


def _output_leak(run: Run, ref: Run | None, rows: Rows, compare: Any, base_index: Any,
                 ref_index: Any, padding: str | None, atol: float, rtol: float,
                 kind: str = "outputs") -> Leak | None:
    """Leak over the model outputs for rows selected by `compare` (rows with valid positions)."""
    import numpy as np

    ref = ref or run
    ref_index = base_index if ref_index is None else ref_index
    compare = compare & (rows.lengths > 0)
    best = None
    for out, ref_out, name in zip(run.outputs, ref.outputs, run.output_names):
        if out.ndim == 0 or out.shape[0] != rows.n:
            continue
        valid = valid_region(out.shape, rows.mask) & _expand(compare, out.ndim)
        div = diverge(out, ref_out[ref_index], valid, atol, rtol)
        if div.rows.any():
            r = int(np.argmax(np.where(div.rows, div.diff, -1.0)))
            timed = out.ndim >= 2 and out.shape[1] == rows.mask.shape[1]
            if best is None or div.diff[r] > best[0]:
                best = (float(div.diff[r]), r, int(div.position[r]) if timed else -1, name, div.rows)
    if best is None:
        return None
    diff, r, position, name, leaking = best
    record = localize(run, ref, leaking, base_index, rows.mask, atol, rtol, ref_index)
    return Leak(layer=record.name if record else None,
                layer_class=record.class_name if record else None,
                path=record.path if record else (),
                sample=int(rows.sample[r]), position=position,
                padding=padding or rows.side[r], max_abs_diff=round_sig(diff),
                output=name, kind=kind)


def find_loss_leak(model: Any, x: Any, y: Any, *, mask: Any = None,
                   lengths: Sequence[int] | None = None, padding: str = "post",
                   atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0,
                   device: str = "auto") -> Leak | None:
    """A change of the compiled loss or of its gradients when only padding changes, or None.

    Perturbs padded labels (label positions the mask marks as padding) and,
    separately, padded inputs (as `find_leak` does), and compares
    `model.compute_loss` and the gradients of the trainable weights with
    those of the unperturbed batch. The model must be compiled with a loss
    (or override `compute_loss`).

    Returns:
        A `Leak` with kind "loss" or "gradients" at the output whose labels or
        loss changed, or None.

    Raises:
        ProbeError: the model has no loss, or cannot be probed.
    """
    from maskcheck.probe_loss import loss_leak

    prep = _prepare(model, x, mask, lengths, padding)
    result = loss_leak(model, prep, y, padding=padding, atol=atol, rtol=rtol, seed=seed,
                       device=device)
    return result.leak if result is not None else None
