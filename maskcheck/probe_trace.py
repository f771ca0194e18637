"""Layer-call tracing for the dynamic engine: one compiled pass, every layer's tensors.

`Tracer` temporarily wraps the `call` of every sublayer and operation of a
model (Functional, Sequential, nested or subclassed alike) so that a single
`tf.function` returns the model outputs together with the inputs and outputs
of each layer call, in completion order (inner layers before the layer that
contains them). The same wrappers apply the padding perturbation right after
a mask generator (so the mask it computed from the raw values stays fixed)
and turn random layers (Dropout, GaussianNoise, ...) into identities so that
training-mode probes compare like with like. Everything is undone on exit;
no weight or attribute of the model is left changed.

Keras and TensorFlow are imported inside functions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

#: Layers whose output is random in training mode; probes bypass them.
RANDOM_LAYERS = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                           "GaussianNoise", "GaussianDropout", "AlphaDropout"})


@dataclass(frozen=True)
class CallRecord:
    """One layer call seen during tracing: where it sits and which traced tensors it read and wrote.

    `inputs` and `outputs` index the tracer's list of unique tensors (a tensor
    one layer writes and the next reads is returned once).
    """

    name: str
    class_name: str
    path: tuple[str, ...]
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()


#: Wrappers that call their inner layer once per time step inside `vectorized_map`;
#: tensors recorded in there belong to the loop and cannot be returned from the pass.
OPAQUE_WRAPPERS = frozenset({"TimeDistributed"})


def sublayers(model: Any) -> list[Any]:
    """Every layer and operation below `model`, depth first, each once, deterministic."""
    seen: set[int] = {id(model)}
    found: list[Any] = []

    def visit(obj: Any) -> None:
        if any(cls.__name__ in OPAQUE_WRAPPERS for cls in type(obj).__mro__):
            return  # its inner layer runs inside a vectorized map: record the wrapper only
        children = []
        operations = getattr(obj, "operations", None) if _is_functional(obj) else None
        if operations:
            children.extend(operations)
        if hasattr(obj, "_flatten_layers"):
            children.extend(obj._flatten_layers(include_self=False, recursive=False))
        for child in children:
            if id(child) in seen or type(child).__name__ == "InputLayer":
                continue
            seen.add(id(child))
            found.append(child)
            visit(child)

    visit(model)
    return found


def _is_functional(obj: Any) -> bool:
    from keras.src.models.functional import Functional

    return isinstance(obj, Functional) or isinstance(getattr(obj, "_functional", None), Functional)


class Tracer:
    """Context manager: wraps sublayer calls, records them inside a tf.function.

    Attributes set by the caller before a traced call:
        hooks: id(layer) -> function(output) -> output, applied after the call.
        recording: whether calls are recorded (only while tracing the function).
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.layers = sublayers(model)
        self.hooks: dict[int, Callable[[Any], Any]] = {}
        self.records: list[CallRecord] = []
        self.tensors: list[Any] = []
        self.recording = False
        self.active = False  # hooks apply (and calls are tracked) only while tracing
        self.graph: Any = None
        self.failed: CallRecord | None = None
        self._stack: list[str] = []
        self._saved: list[tuple[Any, bool, Any]] = []

    def __enter__(self) -> "Tracer":
        for layer in self.layers:
            had = "call" in layer.__dict__
            orig = layer.call
            self._saved.append((layer, had, layer.__dict__.get("call")))
            object.__setattr__(layer, "call", self._wrap(layer, orig))
        return self

    def __exit__(self, *exc: Any) -> None:
        for layer, had, value in reversed(self._saved):
            if had:
                object.__setattr__(layer, "call", value)
            else:
                layer.__dict__.pop("call", None)
        self._saved.clear()

    def start(self) -> None:
        """Begin recording; call inside the tf.function being traced."""
        import tensorflow as tf

        self.records, self.tensors, self.failed, self._stack = [], [], None, []
        self._index: dict[int, int] = {}
        self.graph = tf.compat.v1.get_default_graph()
        self.recording = self.active = True

    def start_hooks(self) -> None:
        """Apply hooks without recording (loss and gradient passes)."""
        self._stack, self.failed = [], None
        self.active, self.recording = True, False

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
            self._stack.append(layer.name)
            try:
                out = orig(*args, **kwargs)
            except Exception:
                if self.failed is None:
                    self.failed = CallRecord(layer.name, type(layer).__name__, path)
                raise
            finally:
                self._stack.pop()
            hook = self.hooks.get(id(layer))
            if hook is not None:
                out = hook(out)
            if self.recording:
                self._record(layer, path, args, kwargs, out)
            return out

        return call

    def _record(self, layer: Any, path: tuple[str, ...], args: Any, kwargs: Any, out: Any) -> None:
        import keras
        import tensorflow as tf

        def local(structure: Any) -> list[Any] | None:
            tensors = [t for t in keras.tree.flatten(structure) if tf.is_tensor(t)]
            if any(getattr(t, "graph", None) is not self.graph for t in tensors):
                return None  # inside a loop body (an RNN cell): not reachable from outside
            return tensors

        data_kwargs = {k: v for k, v in kwargs.items() if k not in ("training", "mask")}
        ins, outs = local((args, data_kwargs)), local(out)
        if ins is None or outs is None or not outs:
            return
        self.records.append(CallRecord(layer.name, type(layer).__name__, path,
                                       tuple(self._slot(t) for t in ins),
                                       tuple(self._slot(t) for t in outs)))

    def _slot(self, tensor: Any) -> int:
        key = id(tensor)
        if key not in self._index:
            self._index[key] = len(self.tensors)
            self.tensors.append(tensor)
        return self._index[key]
