"""The traced programs the probes run: inference with per-layer taps, training, loss and gradients.

`Tracer` temporarily wraps the `call` of every sublayer of a model so that
one `tf.function` returns the model outputs together with the inputs and
outputs of each layer call, perturbs the outputs of mask generators at
padded positions (the mask they computed from the raw values stays fixed),
and turns random layers into identities. `Prober` owns the inference and
training programs (traced once each, with the batch and padded axes open,
so every variant of a check reuses the trace); `LossProgram` computes the
loss of many label and input variants, and their gradients, from one
forward pass of the stacked batch in one trace. Every trace is counted in
`Prober.traces` (reported as ``stats["traces"]``).

Imports `plan` and `batches`; Keras and TensorFlow inside functions only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

from maskcheck.dynamic.batches import Rows, subset, take
from maskcheck.dynamic.plan import RANDOM_LAYERS, ProbeError, stateful_layers, sublayers


class ForwardError(ProbeError):
    """The model raised during a probe pass; `record` names the innermost layer."""

    def __init__(self, message: str, record: Any = None, exception: str = "") -> None:
        super().__init__(message)
        self.record = record
        self.exception = exception


@dataclass(frozen=True)
class CallRecord:
    """One layer call seen during tracing and the traced tensors it read and wrote.

    `inputs` and `outputs` index the tracer's list of unique tensors.
    """

    name: str
    class_name: str
    path: tuple[str, ...]
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()
    #: the call received a mask (a `mask=` argument or one attached to its first input)
    masked: bool = False
    #: id() of the layer object that made the call (names repeat across nested models)
    layer_id: int = 0


_NOISE = ("Exception encountered when calling", "Arguments received by", "•", "Detected at node",
          "File ", "Graph execution error", "[[", "defined at (most recent call last)")


def one_line(exc: BaseException) -> str:
    """The exception as one readable line: ANSI codes, Keras call context and TF node traces dropped."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    # TensorFlow's op context: "{{function_node __wrapped__Mul_device_/job:...}}" and "[Op:Mul] name:"
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:\w+\]( name: ?\S*)?", "", text)
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith(_NOISE)]
    body = " ".join(" ".join(kept[:2]).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {body}"[:300]


def resolve_device(device: str) -> str:
    """'/GPU:0' when asked (or auto and TensorFlow sees a GPU), else '/CPU:0'."""
    import tensorflow as tf

    if device == "cpu":
        return "/CPU:0"
    gpus = tf.config.list_logical_devices("GPU")
    if device == "gpu" and not gpus:
        raise ProbeError("--device gpu: TensorFlow sees no GPU")
    return "/GPU:0" if gpus else "/CPU:0"


def grow_device_memory() -> list[Any]:
    """Let TensorFlow take GPU memory as it is needed instead of nearly all of it when the
    first op runs (its default), so the device memory a check holds is the model's weights
    and the largest probe pass, as on the CPU; returns the GPUs TensorFlow sees.

    Left alone where the user decides (TF_FORCE_GPU_ALLOW_GROWTH set) and where TensorFlow
    already started its devices (an in-process caller's own setting stays)."""
    import os

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if "TF_FORCE_GPU_ALLOW_GROWTH" not in os.environ:
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except (RuntimeError, ValueError):  # devices already initialized
                pass
    return gpus


def output_names(model: Any, n: int) -> list[str]:
    names = list(getattr(model, "output_names", None) or [])
    if len(names) == n:
        return [str(x) for x in names]
    return [model.name] if n == 1 else [f"{model.name}[{i}]" for i in range(n)]


class quiet_tf:
    """Silence TensorFlow's Python logger (retracing notes) for the duration."""

    def __enter__(self) -> None:
        import tensorflow as tf

        self.logger = tf.get_logger()
        self.level = self.logger.level
        self.logger.setLevel("ERROR")

    def __exit__(self, *exc: Any) -> None:
        self.logger.setLevel(self.level)


def state_variables(model: Any) -> list[Any]:
    """Every variable a probe pass may touch (weights, metric and loss trackers), once."""
    seen: dict[int, Any] = {}
    for v in list(model.variables) + list(getattr(model, "metrics_variables", []) or []):
        seen.setdefault(id(v), v)
    return list(seen.values())


class restored:
    """Context manager: every state variable of `model` is put back exactly on exit."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.saved = [(v, v.numpy()) for v in state_variables(self.model)]

    def __exit__(self, *exc: Any) -> None:
        for variable, value in self.saved:
            variable.assign(value)


# --------------------------------------------------------------------------- tracing


class Tracer:
    """Context manager: wraps sublayer calls, records them inside a tf.function.

    Attributes set by the caller:
        hooks: id(layer) -> function(output, args) -> output, applied after the call.
        recording: whether calls are recorded (only while tracing the function).
        pin: (N,) row indices, or None: every mask a layer produces or receives is
            replaced by the mask of the row it names (each perturbed row's unperturbed
            base row), so perturbed rows see exactly their base rows' masks (SPEC 4).
        unmasked: strip every Keras mask (the "no padding, no mask" pass of SPEC 9).
        diagnose: note the first layer whose output mask no longer lines up
            with its output (eager passes only).
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.layers = sublayers(model)
        self.hooks: dict[int, Callable[[Any], Any]] = {}
        self.records: list[CallRecord] = []
        self.tensors: list[Any] = []
        self.recording = False
        self.active = False
        self.unmasked = False
        self.diagnose = False
        self.pin: Any = None
        self.graph: Any = None
        self.failed: CallRecord | None = None
        self.mismatch: tuple[CallRecord, str] | None = None
        self._stack: list[str] = []
        self._saved: list[tuple[Any, str, bool, Any]] = []
        self._producers: dict[int, CallRecord] = {}
        self._index: dict[int, int] = {}

    def __enter__(self) -> "Tracer":
        for layer in self.layers:
            self._patch(layer, "call", self._wrap(layer, layer.call))
            if self.unmasked:
                self._patch(layer, "compute_mask", lambda *args, **kwargs: None)
            elif hasattr(layer, "compute_mask"):  # layers, not bare operations
                self._patch(layer, "compute_mask", self._pinned(layer.compute_mask))
        return self

    def _pinned(self, compute_mask: Callable[..., Any]) -> Callable[..., Any]:
        def pinned(*args: Any, **kwargs: Any) -> Any:
            return self.pin_masks(compute_mask(*args, **kwargs))

        return pinned

    def pin_masks(self, structure: Any) -> Any:
        """`structure` with every batch-major mask tensor replaced by its pinned rows.

        A tensor whose batch size is not the probe batch's (a causal mask shared by
        all rows, an attention mask per head) is left as it is; that is decided in
        the graph, since the batch axis is open when tracing."""
        if self.pin is None or not self.active or structure is None:
            return structure
        import keras
        import tensorflow as tf

        pin = self.pin

        def one(t: Any) -> Any:
            if (not tf.is_tensor(t) or t.shape.rank is None or t.shape.rank < 1
                    or getattr(t, "_maskcheck_pinned", False)):
                return t
            # rows taken from the pin when the batch sizes agree, else each row itself (no
            # tf.cond: a cond per mask makes tracing a transformer twice as slow)
            m, n = tf.shape(t)[0], tf.shape(pin)[0]
            extended = tf.concat([pin, tf.range(n, n + m, dtype=pin.dtype)], 0)[:m]
            rows = tf.where(tf.equal(m, n), extended, tf.range(m, dtype=pin.dtype))
            pinned = tf.gather(t, rows)
            try:
                pinned._maskcheck_pinned = True
            except AttributeError:
                pass
            return pinned

        return keras.tree.map_structure(one, structure)

    def _pin_call_masks(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """The call's mask arguments pinned: `mask=` and other mask keywords, boolean
        tensors passed positionally after the first (a mask handed over by hand), and
        the masks attached to the input tensors."""
        import keras
        import tensorflow as tf
        from keras.src.backend import get_keras_mask

        from maskcheck.dynamic.plan import is_mask_name

        kwargs = {k: (self.pin_masks(v) if is_mask_name(k) else v) for k, v in kwargs.items()}
        args = tuple(self.pin_masks(a) if i and tf.is_tensor(a) and a.dtype == tf.bool else a
                     for i, a in enumerate(args))
        for t in keras.tree.flatten((args, kwargs)):
            mask = get_keras_mask(t) if tf.is_tensor(t) else None
            if mask is not None and not getattr(mask, "_maskcheck_pinned", False):
                _set_mask(t, self.pin_masks(mask))
        return args, kwargs

    def _patch(self, layer: Any, attr: str, value: Any) -> None:
        self._saved.append((layer, attr, attr in layer.__dict__, layer.__dict__.get(attr)))
        object.__setattr__(layer, attr, value)

    def __exit__(self, *exc: Any) -> None:
        for layer, attr, had, value in reversed(self._saved):
            if had:
                object.__setattr__(layer, attr, value)
            else:
                layer.__dict__.pop(attr, None)
        self._saved.clear()

    def start(self, recording: bool = True) -> None:
        """Begin a pass (inside the tf.function being traced, or eagerly)."""
        import tensorflow as tf

        self.records, self.tensors, self.failed, self._stack = [], [], None, []
        self.mismatch, self._producers, self._index = None, {}, {}
        self.graph = tf.compat.v1.get_default_graph() if recording else None
        self.recording, self.active = recording, True

    def stop(self) -> None:
        self.recording = self.active = False

    def _wrap(self, layer: Any, orig: Callable[..., Any]) -> Callable[..., Any]:
        random_layer = type(layer).__name__ in RANDOM_LAYERS

        def call(*args: Any, **kwargs: Any) -> Any:
            if random_layer and args:
                return args[0]
            if not self.active:
                return orig(*args, **kwargs)
            path = (self.model.name, *self._stack, layer.name)
            record = CallRecord(layer.name, type(layer).__name__, path, layer_id=id(layer))
            if self.unmasked:
                kwargs = {k: (None if k == "mask" else v) for k, v in kwargs.items()}
            if self.diagnose and self.mismatch is None and args:
                self._check_masks(args[0])
            if self.pin is not None:
                args, kwargs = self._pin_call_masks(args, kwargs)
            self._stack.append(layer.name)
            try:
                out = orig(*args, **kwargs)
            except Exception:
                if self.failed is None:
                    self.failed = record
                raise
            finally:
                self._stack.pop()
            if self.pin is not None:
                _pin_attached(self, out)
            hook = self.hooks.get(id(layer))
            if hook is not None:
                out = _keeping_mask(out, hook(out, args))
            if self.unmasked:
                _strip_masks(out)
            if self.diagnose:
                import keras

                for t in keras.tree.flatten(out):
                    self._producers[id(t)] = record
            if self.recording:
                self._record(record, args, kwargs, out)
            return out

        return call

    def _check_masks(self, first: Any) -> None:
        """Eager diagnosis: a mask whose length differs from its tensor's names its producer."""
        import keras

        for t in keras.tree.flatten(first):
            mask = getattr(t, "_keras_mask", None)
            shape = getattr(t, "shape", None)
            if mask is None or shape is None or len(shape) < 2 or len(mask.shape) < 2:
                continue
            if mask.shape[1] != shape[1] and id(t) in self._producers:
                self.mismatch = (self._producers[id(t)],
                                 f"its output has length {shape[1]} along axis 1 but carries a "
                                 f"mask of length {mask.shape[1]}")
                return

    def _record(self, record: CallRecord, args: Any, kwargs: Any, out: Any) -> None:
        import keras
        import tensorflow as tf

        def local(structure: Any) -> list[Any] | None:
            tensors = [t for t in keras.tree.flatten(structure) if tf.is_tensor(t)]
            if any(getattr(t, "graph", None) is not self.graph for t in tensors):
                return None  # inside a loop body (an RNN cell): not reachable from outside
            return tensors

        from keras.src.backend import get_keras_mask

        data_kwargs = {k: v for k, v in kwargs.items() if k not in ("training", "mask")}
        ins, outs = local((args, data_kwargs)), local(out)
        if ins is None or outs is None or not outs:
            return
        first = keras.tree.flatten(args[0]) if args else []
        masked = kwargs.get("mask") is not None or any(
            tf.is_tensor(t) and get_keras_mask(t) is not None for t in first)
        self.records.append(CallRecord(record.name, record.class_name, record.path,
                                       tuple(self._slot(t) for t in ins),
                                       tuple(self._slot(t) for t in outs), masked,
                                       record.layer_id))

    def _slot(self, tensor: Any) -> int:
        key = id(tensor)
        if key not in self._index:
            self._index[key] = len(self.tensors)
            self.tensors.append(tensor)
        return self._index[key]


def _pin_attached(tracer: Tracer, structure: Any) -> None:
    """Pin the masks a layer's `call` attached to its outputs itself (Masking does)."""
    import keras
    import tensorflow as tf
    from keras.src.backend import get_keras_mask

    for t in keras.tree.flatten(structure):
        mask = get_keras_mask(t) if tf.is_tensor(t) else None
        if mask is not None and not getattr(mask, "_maskcheck_pinned", False):
            _set_mask(t, tracer.pin_masks(mask))


def _keeping_mask(before: Any, after: Any) -> Any:
    """`after` (a perturbed output) with the mask the layer attached to `before`: a
    perturbation changes values, never the mask the layer made."""
    import tensorflow as tf
    from keras.src.backend import get_keras_mask

    if after is not before and tf.is_tensor(before) and tf.is_tensor(after):
        mask = get_keras_mask(before)
        if mask is not None and get_keras_mask(after) is None:
            _set_mask(after, mask)
    return after


def _set_mask(tensor: Any, mask: Any) -> None:
    from keras.src.backend import set_keras_mask

    try:
        set_keras_mask(tensor, mask)
    except AttributeError:  # a tensor type that takes no attributes keeps its mask
        pass


def _strip_masks(structure: Any) -> None:
    import keras

    for t in keras.tree.flatten(structure):
        if getattr(t, "_keras_mask", None) is not None:
            try:
                del t._keras_mask
            except AttributeError:
                pass


# --------------------------------------------------------------------------- programs


@dataclass
class Run:
    """What one compiled pass returned, as NumPy."""

    outputs: list[Any]
    output_names: list[str]
    output_masked: list[bool]
    records: list[Any]
    tensors: list[Any]  # unique traced tensors; records index into them
    #: the Keras mask attached to each output (None where there is none)
    output_masks: list[Any] | None = None

    def io(self, record: Any) -> tuple[list[Any], list[Any]]:
        """A record's input and output arrays."""
        return [self.tensors[i] for i in record.inputs], [self.tensors[i] for i in record.outputs]


def predictions(model: Any, run: Run, rows: Any) -> Any:
    """The run's outputs at `rows` as tensors in the model's output structure, each
    carrying the Keras mask the forward pass attached to it.

    A compiled loss reads the mask from its `y_pred` (Keras 3 weights masked
    positions by 0), so predictions handed to a loss without their masks are not
    what `fit` computes: a correctly masked tagger would count its padded labels."""
    import keras
    import tensorflow as tf
    from keras.src.backend import set_keras_mask

    masks = run.output_masks or [None] * len(run.outputs)
    flat = []
    for out, mask in zip(run.outputs, masks):
        t = tf.constant(out[rows])
        if mask is not None:
            set_keras_mask(t, tf.constant(mask[rows]))
        flat.append(t)
    struct = getattr(model, "_outputs_struct", None)
    if struct is not None and len(keras.tree.flatten(struct)) == len(flat):
        return keras.tree.pack_sequence_as(struct, flat)
    return flat[0] if len(flat) == 1 else flat


def _np(t: Any) -> Any:
    import numpy as np

    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def signature(inputs: Any, rows: Rows, batch: int | None = None) -> Any:
    """TensorSpecs with the batch and padded axes open, so one trace serves the stacked
    batch, the grown batch (MC304) and training batches alike; `batch` fixes the batch
    axis (a model built for one batch size runs in passes of exactly that many rows)."""
    import keras
    import tensorflow as tf

    padded = rows.mask.shape[1:]

    def spec(array: Any) -> Any:
        shape = [batch] + list(array.shape[1:])
        if tuple(array.shape[1:1 + len(padded)]) == tuple(padded):
            shape[1:1 + len(padded)] = [None] * len(padded)
        return tf.TensorSpec(shape, tf.as_dtype(array.dtype))

    k = len(padded)
    return [keras.tree.map_structure(spec, inputs), tf.TensorSpec([batch] + [None] * k, tf.bool),
            tf.TensorSpec([batch], tf.float32), tf.TensorSpec([batch], tf.bool),
            tf.TensorSpec([batch], tf.as_dtype(rows.draw.dtype)), tf.TensorSpec([batch], tf.int32)]


def pin_rows(rows: Rows) -> Any:
    """(N,) int32: for each row, the row whose masks it sees (its unperturbed base row
    when that row is in the batch, else itself)."""
    import numpy as np

    base = {(int(rows.sample[i]), rows.side[i]): i for i in range(rows.n) if rows.draw[i] == 0}
    return np.array([base.get((int(rows.sample[i]), rows.side[i]), i) for i in range(rows.n)],
                    dtype=np.int32)


def probe_args(rows: Rows, hooks: bool = True) -> list[Any]:
    """The tensors a probe program takes after the inputs: mask, scale, shuffle, draw, pin."""
    import numpy as np
    import tensorflow as tf

    draw = rows.draw if hooks else np.zeros_like(rows.draw)
    return [tf.constant(rows.mask), tf.constant(rows.scale), tf.constant(rows.shuffle),
            tf.constant(draw), tf.constant(pin_rows(rows))]


def is_embedder(layer: Any) -> bool:
    """A layer that turns token ids into vectors (an Embedding or a subclass of it)."""
    return isinstance(getattr(layer, "input_dim", None), int) and hasattr(layer, "output_dim")


class kept_states:
    """Context manager: the state variables of stateful layers are put back on exit (they
    are not among the model's variables, so `restored` does not keep them)."""

    def __init__(self, layers: list[Any]) -> None:
        self.variables = [v for layer in layers for v in _state_variables(layer)]

    def __enter__(self) -> None:
        self.saved = [(v, v.numpy()) for v in self.variables]

    def __exit__(self, *exc: Any) -> None:
        for variable, value in self.saved:
            variable.assign(value)


def _state_variables(layer: Any) -> list[Any]:
    import keras

    states = getattr(layer, "states", None)
    if states is None:
        return []
    return [v for v in keras.tree.flatten(states) if hasattr(v, "assign") and hasattr(v, "numpy")]


def join_runs(parts: list[tuple["Run", int]], batch: int) -> "Run":
    """One Run from passes of `batch` rows each (the first `keep` rows of each part are
    real; the rest repeat rows to fill the pass): batch-major arrays are concatenated."""
    import numpy as np

    def join(arrays: list[Any]) -> Any:
        if all(getattr(a, "ndim", 0) and a.shape[0] == batch for a in arrays):
            return np.concatenate([a[:keep] for a, (_, keep) in zip(arrays, parts)], axis=0)
        return arrays[0]

    first = parts[0][0]
    masks = None
    if first.output_masks is not None:
        masks = [None if m is None else join([p.output_masks[k] for p, _ in parts])
                 for k, m in enumerate(first.output_masks)]
    return Run([join([p.outputs[k] for p, _ in parts]) for k in range(len(first.outputs))],
               first.output_names, first.output_masked, first.records,
               [join([p.tensors[k] for p, _ in parts]) for k in range(len(first.tensors))], masks)


class Prober:
    """Runs a model in compiled programs that return every layer call's tensors.

    One Prober per model and probe session; each program (inference,
    training) is traced once, with the batch and padded axes open. A model
    built for one batch size (`batch`: a stateful RNN, a fixed batch dimension)
    runs in passes of exactly that many rows, its stateful layers reset before
    each pass (so every pass starts from the same state) and put back afterwards.
    """

    def __init__(self, model: Any, device: str = "auto", seed: int = 0,
                 generators: tuple[Any, ...] = (), open_axes: bool = True,
                 batch: int | None = None) -> None:
        self.model = model
        self.seed = seed
        self.device = resolve_device(device)
        self.tracer = Tracer(model)
        self.batch = batch
        self.stateful = stateful_layers(self.tracer.layers)
        self.traces = 0
        self.open_axes = open_axes and not _needs_static_shapes(self.tracer.layers)
        self._fns: dict[bool, Any] = {}
        self._meta: dict[bool, tuple[list[Any], list[str], list[bool]]] = {}
        self.hook_args: dict[str, Any] = {}
        self.generators = [g for g in generators if g is not None]
        self.tracer.hooks = {id(g): self._make_hook(k) for k, g in enumerate(self.generators)}
        # Token ids are never changed (a mask may be derived from them anywhere): padding
        # of a token input is perturbed at the output of each layer that embeds it.
        embedders = [l for l in self.tracer.layers if is_embedder(l) and id(l) not in self.tracer.hooks]
        for k, layer in enumerate(embedders, start=len(self.generators)):
            self.tracer.hooks[id(layer)] = self._make_hook(k, embeds=True)

    def _arm(self, mask: Any, scale: Any, shuffle: Any, draw: Any, pin: Any) -> None:
        """Set what the hooks and mask pinning read during one traced pass."""
        self.hook_args = {"mask": mask, "scale": scale, "shuffle": shuffle, "draw": draw}
        self.tracer.pin = pin

    def _disarm(self) -> None:
        self.hook_args = {}
        self.tracer.pin = None

    def _make_hook(self, k: int, embeds: bool = False) -> Any:
        def hook(out: Any, call_args: tuple = ()) -> Any:
            import tensorflow as tf
            from keras.src.backend import get_keras_mask, set_keras_mask

            args = self.hook_args
            if not args or not tf.is_tensor(out) or not out.dtype.is_floating:
                return out
            mask = args["mask"]
            rank = len(out.shape)
            if rank < mask.shape.rank:
                return out
            if embeds:  # only an embedding of ids laid out like the padding (not positions)
                ids = call_args[0] if call_args else None
                if (not tf.is_tensor(ids) or not ids.dtype.is_integer or rank != mask.shape.rank + 1
                        or out.shape[:mask.shape.rank].as_list() != mask.shape.as_list()):
                    return out
            shape = tf.shape(out)
            noise = tf.random.stateless_normal(shape, seed=[self.seed, 11 + k], dtype=out.dtype)
            bshape = [-1] + [1] * (rank - 1)
            scale = tf.cast(tf.reshape(args["scale"], bshape), out.dtype)
            shuffled = tf.roll(tf.roll(out, 1, axis=0), tf.maximum(shape[1] // 2, 1), axis=1)
            repl = tf.where(tf.reshape(args["shuffle"], bshape), shuffled, out + scale * noise)
            valid = tf.reshape(mask, tf.concat([tf.shape(mask), [1] * (rank - mask.shape.rank)], 0))
            perturbed = tf.reshape(args["draw"] > 0, bshape)
            result = tf.where(tf.logical_or(valid, tf.logical_not(perturbed)), out, repl)
            # a layer may attach its mask inside `call` (keras-hub TokenAndPositionEmbedding
            # does, with no compute_mask for Keras to rerun): the perturbed values carry the
            # same mask, or every later layer and the compiled loss would lose it
            mask_out = get_keras_mask(out)
            if mask_out is not None:
                set_keras_mask(result, mask_out)
            return result

        return hook

    def _fn(self, training: bool, inputs: Any, rows: Rows) -> Any:
        if training in self._fns:
            return self._fns[training]
        import keras
        import tensorflow as tf

        model, tracer = self.model, self.tracer

        def forward(inputs: Any, mask: Any, scale: Any, shuffle: Any, draw: Any, pin: Any) -> Any:
            self.traces += 1
            self._arm(mask, scale, shuffle, draw, pin)
            tracer.start()
            try:
                outputs = model(inputs, training=training)
            finally:
                tracer.stop()
                self._disarm()
            flat = keras.tree.flatten(outputs)
            names = output_names(model, len(flat))
            masks = [getattr(t, "_keras_mask", None) for t in flat]
            masked = [m is not None for m in masks]
            # a tap that is a model output (the last layer's) comes back once, as the output:
            # a language model's logits are the largest tensor of the pass
            outputs_at = {id(t): j for j, t in enumerate(flat)}
            aliases = {i: outputs_at[id(t)] for i, t in enumerate(tracer.tensors) if id(t) in outputs_at}
            self._meta[training] = (list(tracer.records), names, masked, aliases)
            masks = [tf.zeros([0], tf.bool) if m is None else tf.cast(m, tf.bool) for m in masks]
            taps = [tf.zeros([0]) if i in aliases else t for i, t in enumerate(tracer.tensors)]
            return flat, taps, masks

        sig = signature(inputs, rows, self.batch) if self.open_axes else None
        self._fns[training] = tf.function(forward, autograph=False, input_signature=sig)
        return self._fns[training]

    def chunks(self, n: int) -> list[tuple[Any, int]]:
        """The passes `n` rows take: (row indices, how many are real) each; one pass of all
        rows unless the model fixes its batch size (then the last pass repeats its rows)."""
        import numpy as np

        if self.batch is None:
            return [(None, n)]
        return [(np.resize(np.arange(start, min(start + self.batch, n)), self.batch),
                 min(self.batch, n - start)) for start in range(0, n, self.batch)]

    def reset_states(self) -> None:
        """Every stateful layer back to its initial state (Keras RNNs: zeros)."""
        for layer in self.stateful:
            (getattr(layer, "reset_state", None) or layer.reset_states)()

    def run(self, inputs: Any, rows: Rows, *, training: bool = False, hooks: bool = True) -> Run:
        """One pass over the stacked `inputs`; perturbs generator outputs per `rows`.

        A model built for one batch size runs in passes of that many rows, each from
        reset states (`chunks`), joined into one Run."""
        if self.batch is None and not self.stateful:
            return self._run(inputs, rows, training, hooks)
        with kept_states(self.stateful):
            if self.batch is None:  # stateful, with any batch size: one pass from reset states
                self.reset_states()
                return self._run(inputs, rows, training, hooks)
            parts = []
            for idx, keep in self.chunks(rows.n):
                self.reset_states()
                parts.append((self._run(take(inputs, idx), subset(rows, idx), training, hooks),
                              keep))
        return join_runs(parts, self.batch)

    def _run(self, inputs: Any, rows: Rows, training: bool, hooks: bool) -> Run:
        import numpy as np
        import tensorflow as tf

        fn = self._fn(training, inputs, rows)
        try:
            with restored(self.model) if training else contextlib.nullcontext(), self.tracer, \
                    tf.device(self.device), quiet_tf(), light_graphs():
                flat, tensors, masks = fn(inputs, *probe_args(rows, hooks))
        except ProbeError:
            raise
        except Exception as exc:  # the user's model may raise anything
            failed = self.tracer.failed
            eager = None
            if failed is None:
                eager = self.eager_error(inputs, training)
                failed = self.tracer.failed
            where = f" in layer {failed.name!r} ({failed.class_name})" if failed else ""
            line = one_line(eager or exc)
            raise ForwardError(f"the forward pass raises{where}: {line}", failed, line) from None
        records, names, masked, aliases = self._meta[training]
        outputs = [_np(t) for t in flat]
        return Run(outputs, names, masked, records,
                   [outputs[aliases[i]] if i in aliases else _np(t) for i, t in enumerate(tensors)],
                   [_np(m) if k else None for m, k in zip(masks, masked)])

    def eager_error(self, inputs: Any, training: bool = False, *, unmasked: bool = False,
                    diagnose: bool = False) -> BaseException | None:
        """Run the model eagerly once (no hooks); the exception it raises, or None.

        `unmasked` strips every Keras mask (SPEC 9's unpadded pass); `diagnose`
        notes in `tracer.mismatch` the first layer whose output mask stops lining up.
        """
        self.tracer.unmasked = unmasked
        self.tracer.diagnose = diagnose
        n = int(keras_rows(inputs).shape[0])
        try:
            with restored(self.model), kept_states(self.stateful), self.tracer, quiet_tf():
                for idx, _ in self.chunks(n):
                    self.reset_states()
                    self.tracer.start(recording=False)
                    try:
                        self.model(inputs if idx is None else take(inputs, idx), training=training)
                    finally:
                        self.tracer.stop()
        except Exception as exc:  # the user's model may raise anything
            return exc
        finally:
            self.tracer.unmasked = self.tracer.diagnose = False
        return None


def keras_rows(inputs: Any) -> Any:
    """The first array of an input structure (its rows are the batch's)."""
    import keras

    return keras.tree.flatten(inputs)[0]


class light_graphs:
    """Context manager: TensorFlow's graph optimizer (grappler) off while a probe program is
    instantiated, restored on exit. Probe batches are tiny, so the optimizations never pay
    back the second or more they cost on the first call of a recurrent model's program."""

    def __enter__(self) -> None:
        import tensorflow as tf

        self.saved = tf.config.optimizer.get_experimental_options()
        tf.config.optimizer.set_experimental_options({**self.saved, "disable_meta_optimizer": True})

    def __exit__(self, *exc: Any) -> None:
        import tensorflow as tf

        options = tf.config.optimizer.get_experimental_options()
        options.pop("disable_meta_optimizer", None)
        tf.config.optimizer.set_experimental_options(
            {**options, "disable_meta_optimizer": self.saved.get("disable_meta_optimizer", False)})


def _needs_static_shapes(layers: list[Any]) -> bool:
    """Keras 3.15's TimeDistributed miscounts time steps when the time axis is open in a
    traced function, so such models are traced per concrete shape instead."""
    from maskcheck.dynamic.plan import OPAQUE_WRAPPERS

    return any(cls.__name__ in OPAQUE_WRAPPERS for layer in layers for cls in type(layer).__mro__)


#: The last few Probers handed out by `cached_prober`, newest last (bounded: it holds models).
_RECENT_PROBERS: list[tuple[tuple, "Prober"]] = []
_RECENT_LIMIT = 4


def cached_prober(model: Any, device: str, seed: int, generators: tuple[Any, ...],
                  inputs: Any, rows: Rows, batch: int | None = None) -> Prober:
    """A Prober for `model`, reused across calls with the same settings.

    Property tests call `find_leak` on one model dozens of times; tracing anew
    each time costs ~0.5 s a call. Keyed on the model's identity (checked with
    `is`), the device, the seed, the generators and the input signature; keeps
    the last few only, so models a test drops are released soon after.
    """
    key = (id(model), resolve_device(device), seed, tuple(id(g) for g in generators),
           repr(signature(inputs, rows)), batch)
    for i, (cached_key, prober) in enumerate(_RECENT_PROBERS):
        if cached_key == key and prober.model is model:
            _RECENT_PROBERS.append(_RECENT_PROBERS.pop(i))
            return prober
    prober = Prober(model, device, seed, generators, batch=batch)
    _RECENT_PROBERS.append((key, prober))
    del _RECENT_PROBERS[:-_RECENT_LIMIT]
    return prober


# --------------------------------------------------------------------------- loss program


def has_loss(model: Any) -> bool:
    """The model is compiled with a loss, or overrides compute_loss."""
    import keras

    overrides = type(model).compute_loss is not keras.Model.compute_loss
    return overrides or getattr(model, "_compile_loss", None) is not None


@dataclass(frozen=True)
class LossGroup:
    """One variant the loss program evaluates: rows of the stacked batch and its labels."""

    rows: tuple[int, ...]
    labels: int  # index into the label structures passed to the program
    name: str  # e.g. "base:post", "labels:post:0", "inputs:post:1", "empty:all"
    #: output whose predictions at padded steps the group changes (masks kept), or None
    predictions: int | None = None


def change_padded(t: Any, valid: Any) -> Any:
    """`t` (B, T', ...) with its padded steps changed and its Keras mask kept: halfway towards
    class 1 (a distribution stays one, and a uniform one changes too), or +1 where a step
    holds one value."""
    import tensorflow as tf
    from keras.src.backend import get_keras_mask, set_keras_mask

    mask = get_keras_mask(t)
    rank = t.shape.rank
    if rank >= 3 and (t.shape[-1] or 0) > 1:
        changed = 0.5 * t + 0.5 * tf.one_hot(1, t.shape[-1], dtype=t.dtype)
    else:
        changed = t + 1
    shape = tf.concat([tf.shape(valid), tf.ones([rank - 2], tf.int32)], 0)
    out = tf.where(tf.reshape(valid, shape), t, changed)
    if mask is not None:
        set_keras_mask(out, mask)
    return out


def _with_changed(structure: Any, j: int, valid: Any) -> Any:
    import keras

    flat = keras.tree.flatten(structure)
    flat = [change_padded(t, valid) if k == j else t for k, t in enumerate(flat)]
    return flat[0] if not isinstance(structure, (list, tuple, dict)) else \
        keras.tree.pack_sequence_as(structure, flat)


@dataclass
class LossRun:
    losses: list[float]  # per group
    #: per trainable variable, max |gradient| of sum_g c_g (loss_g - loss_base(g)) over the
    #: perturbed groups (+inf where not finite): 0 when no variant moves the gradients
    delta_grads: list[Any]
    output_masked: list[bool]


def _largest_change(gradient: Any) -> Any:
    """max |gradient| as a scalar tensor, +inf when any entry is NaN or infinite."""
    import tensorflow as tf

    finite = tf.reduce_all(tf.math.is_finite(gradient))
    largest = tf.reduce_max(tf.abs(tf.cast(gradient, tf.float32))) if gradient.shape.num_elements() != 0 \
        else tf.constant(0.0)
    return tf.where(finite, largest, tf.constant(float("inf")))


class LossProgram:
    """Losses of many variants and one gradient set from one forward pass, one trace.

    The stacked batch (base rows and perturbed draws, both sides) runs
    forward once in inference mode; each group gathers its rows of the
    predictions (masks included) and calls `model.compute_loss` on them, so
    a custom `compute_loss` or `Loss` runs exactly as in `fit`. One backward
    pass gives the gradients of sum_g c_g (loss_g - loss_base) with distinct
    weights c_g: zero (up to rounding) exactly when no variant moves the
    gradients, so a second backward pass for the reference is not needed.
    """

    def __init__(self, model: Any, prober: Prober, groups: list[LossGroup],
                 base_of: dict[int, int], weights: dict[int, float], gradients: bool = True) -> None:
        self.model = model
        self.prober = prober
        self.groups = groups
        self.base_of = base_of  # perturbed group -> its base group
        self.weights = weights  # perturbed group -> c_g
        self.gradients = gradients  # add the backward pass (the plan says when it can matter)
        self._fn: Any = None
        self._masked: list[bool] = []

    def _compiled(self) -> Any:
        if self._fn is not None:
            return self._fn
        import keras
        import tensorflow as tf
        from keras.src.backend import get_keras_mask, set_keras_mask

        model, prober, groups = self.model, self.prober, self.groups

        def gather(structure: Any, idx: Any) -> Any:
            def one(t: Any) -> Any:
                g = tf.gather(t, idx)
                mask = get_keras_mask(t)
                if mask is not None:
                    set_keras_mask(g, tf.gather(mask, idx))
                return g
            return keras.tree.map_structure(one, structure)

        def program(x: Any, labels: Any, sample_weight: Any, valid: Any, mask: Any, scale: Any,
                    shuffle: Any, draw: Any, pin: Any) -> Any:
            prober.traces += 1
            prober._arm(mask, scale, shuffle, draw, pin)
            prober.tracer.start(recording=False)
            try:
                with tf.GradientTape() as tape:
                    y_pred = model(x, training=False)
                    self._masked = [get_keras_mask(t) is not None for t in keras.tree.flatten(y_pred)]
                    losses = []
                    for group in groups:
                        idx = tf.constant(group.rows, dtype=tf.int32)
                        xg, pg = gather(x, idx), gather(y_pred, idx)
                        if group.predictions is not None:
                            pg = _with_changed(pg, group.predictions,
                                               tf.gather(valid[group.predictions], idx))
                        yg = keras.tree.map_structure(lambda a: tf.gather(a, idx), labels[group.labels])
                        swg = (None if sample_weight is None else
                               keras.tree.map_structure(lambda a: tf.gather(a, idx), sample_weight))
                        try:
                            loss = model.compute_loss(x=xg, y=yg, y_pred=pg, sample_weight=swg,
                                                      training=False)
                        except TypeError:
                            loss = model.compute_loss(x=xg, y=yg, y_pred=pg, sample_weight=swg)
                        losses.append(tf.cast(loss, tf.float32))
                    delta = tf.add_n([self.weights[g] * (losses[g] - losses[b])
                                      for g, b in self.base_of.items() if g in self.weights]
                                     or [tf.constant(0.0)])
            finally:
                prober.tracer.stop()
                prober._disarm()
            if not self.gradients:
                return tf.stack(losses), []
            found = tape.gradient(delta, model.trainable_variables)
            # one number per variable, reduced in the graph: the largest change, +inf where it is
            # not finite. The full gradients (as large as the weights) are never held at once
            # nor copied out, so the backward pass costs the model's size once, not twice.
            worst = [_largest_change(tf.convert_to_tensor(g)) for g in found if g is not None]
            return tf.stack(losses), worst

        self._fn = tf.function(program, autograph=False)
        return self._fn

    def _compiled_on_outputs(self) -> Any:
        """The compiled loss alone, on the predictions the inference program returned.

        Used when the plan finds no code that could leak into the gradients: the loss
        then depends on the labels and the predictions (with their masks) only, so
        the model need not run again and the trace is tiny. The weight regularizers'
        penalties are added as `compute_loss` adds them, so each group's loss is the one
        `fit` reports (they cancel in the comparisons, but not in `base_loss`)."""
        if self._fn is not None:
            return self._fn
        import tensorflow as tf

        model, prober, groups = self.model, self.prober, self.groups

        def penalty() -> Any:
            regularizers = getattr(model, "_get_regularization_losses", None)
            terms = [tf.reduce_sum(tf.cast(t, tf.float32)) for t in (regularizers or list)()]
            return tf.add_n(terms) if terms else tf.constant(0.0)

        def program(y_pred: Any, masks: Any, labels: Any, sample_weight: Any, valid: Any) -> Any:
            prober.traces += 1
            losses: list[Any] = []
            for group in groups:
                # one group at a time: each gathers its rows of the predictions (vocabulary
                # wide for a language model), and run side by side they would all be held
                with tf.control_dependencies(losses[-1:]):
                    losses.append(self._group_loss(group, y_pred, masks, labels, sample_weight,
                                                   valid, penalty))
            return tf.stack(losses)

        self._fn = tf.function(program, autograph=False)
        return self._fn

    def _group_loss(self, group: LossGroup, y_pred: Any, masks: Any, labels: Any,
                    sample_weight: Any, valid: Any, penalty: Any) -> Any:
        """The compiled loss of one group's rows of the predictions (see `_compiled_on_outputs`)."""
        import keras
        import tensorflow as tf
        from keras.src.backend import set_keras_mask

        model = self.model
        idx = tf.constant(group.rows, dtype=tf.int32)
        preds = []
        for t, m in zip(y_pred, masks):
            g = tf.gather(t, idx)
            if m is not None:
                set_keras_mask(g, tf.gather(m, idx))
            preds.append(g)
        if group.predictions is not None:
            j = group.predictions
            preds[j] = change_padded(preds[j], tf.gather(valid[j], idx))
        yg = keras.tree.map_structure(lambda a: tf.gather(a, idx), labels[group.labels])
        struct = getattr(model, "_outputs_struct", None)
        pg = (keras.tree.pack_sequence_as(struct, preds) if struct is not None
              else preds[0] if len(preds) == 1 else preds)
        swg = (None if sample_weight is None else
               keras.tree.map_structure(lambda a: tf.gather(a, idx), sample_weight))
        return tf.cast(model._compile_loss(yg, pg, swg), tf.float32) + penalty()

    def run_on_outputs(self, run: Run, labels: list[Any], sample_weight: Any = None,
                       valid: Any = None) -> LossRun:
        """Losses of every group from the inference run's predictions (no backward pass).

        `sample_weight`, when given, has one row per stacked row (as the labels do)."""
        import numpy as np
        import tensorflow as tf

        fn = self._compiled_on_outputs()
        masks = run.output_masks or [None] * len(run.outputs)
        try:
            with restored(self.model), tf.device(self.prober.device), quiet_tf(), light_graphs():
                losses = fn([tf.constant(o) for o in run.outputs],
                            [None if m is None else tf.constant(m) for m in masks], labels,
                            sample_weight, valid)
        except Exception as exc:  # the user's loss may raise anything
            self._fn = None
            raise ProbeError(f"computing the loss raises: {one_line(exc)}") from None
        return LossRun([float(v) for v in np.asarray(losses)], [], list(run.output_masked))

    def run(self, x: Any, labels: list[Any], rows: Rows, sample_weight: Any = None,
            valid: Any = None) -> LossRun:
        """Losses of every group and the gradient difference. `valid` holds, per output, the
        (N, T') valid steps of its predictions (None where no group changes them)."""
        import numpy as np
        import tensorflow as tf

        fn = self._compiled()
        try:
            with restored(self.model), self.prober.tracer, tf.device(self.prober.device), quiet_tf(), \
                    light_graphs():
                losses, delta = fn(x, labels, sample_weight, valid, *probe_args(rows))
        except Exception as exc:  # the user's loss may raise anything
            self._fn = None
            raise ProbeError(f"computing the loss raises: {one_line(exc)}") from None
        return LossRun([float(v) for v in np.asarray(losses)], [np.asarray(g) for g in delta],
                       list(self._masked))


def overrides_train_step(model: Any) -> bool:
    """The model's class (not Keras) defines train_step."""
    for cls in type(model).__mro__:
        if "train_step" in cls.__dict__:
            return not cls.__module__.startswith("keras.")
    return False


def run_train_step(model: Any, prober: Prober, x: Any, y: Any) -> float:
    """The loss a custom `train_step` reports, with every weight, optimizer slot and
    metric restored afterwards; random layers are bypassed."""
    import numpy as np

    optimizer = model.optimizer
    if not getattr(optimizer, "built", True):
        optimizer.build(model.trainable_variables)
    state = {id(v): (v, v.numpy()) for v in
             list(state_variables(model)) + list(getattr(optimizer, "variables", []))}
    try:
        with prober.tracer:
            prober.tracer.start(recording=False)
            try:
                logs = model.train_step((x, y))
            finally:
                prober.tracer.stop()
    except Exception as exc:  # the user's train_step may raise anything
        raise ProbeError(f"train_step raises: {one_line(exc)}") from None
    finally:
        for variable, value in state.values():
            variable.assign(value)
    loss = logs.get("loss") if isinstance(logs, dict) else None
    if loss is None:
        raise ProbeError("train_step returns no 'loss' to compare")
    return float(np.asarray(loss))
