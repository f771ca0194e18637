"""What to probe and how to read it, derived once per model from the static facts.

`build_plan(model, config, graph, flow)` returns a `ProbePlan`: which inputs
hold padding (and where that padding comes from: a mask generator, an
explicit mask input, a None-length axis, the user's declaration), which
inputs are token ids (they feed an Embedding, whatever their dtype), which
layers generate masks from values (probes perturb after them, so the mask
stays fixed), which output axes hold padding (from the dataflow, never from a
size that happens to match), how each compiled loss treats padded labels
(`ignore_class`, the output's mask, nothing), a probe length the model
accepts, and whether a training-mode probe is needed. Every later module
follows the plan; for subclassed models (no graph) the plan comes from the
model's layers and a symbolic call.

This is the first module of the engine (plan -> batches -> program ->
compare -> findings): it imports no other module of `maskcheck.dynamic`.
Keras is imported inside functions only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

#: SPEC 4 item 2: inputs with these names (or ending in ``_mask``) are explicit masks.
MASK_INPUT_NAMES = ("padding_mask", "attention_mask", "mask")
#: Layers whose output is random in training mode; probes bypass them.
RANDOM_LAYERS = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                           "GaussianNoise", "GaussianDropout", "AlphaDropout"})
#: Wrappers that call their inner layer once per time step inside `vectorized_map`.
OPAQUE_WRAPPERS = frozenset({"TimeDistributed"})
#: Layer classes whose training-mode output can depend on other samples.
BATCH_STAT_LAYERS = frozenset({"BatchNormalization", "SyncBatchNormalization"})
#: Probe lengths tried, in order, when the padded axis is open (None).
_CANDIDATE_LENGTHS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 512)


class ProbeError(ValueError):
    """The model cannot be probed; the message is one line naming why."""


class NotProbeable(ProbeError):
    """Probe inputs cannot be synthesized for this model (odd dtypes, no input signature)."""


class NoPadding(NotProbeable):
    """The model has no input that holds padding."""


@dataclass(frozen=True)
class PlannedInput:
    """One model input as the probes see it."""

    name: str
    shape: tuple[int | None, ...]  # per sample, without the batch axis
    dtype: str
    role: str  # "data" (holds padding), "mask" (explicit mask input), "static" (no padding)
    kind: str  # "tokens" (indexes an Embedding), "values" or "mask"
    padded_axes: tuple[int, ...] = ()
    source: str = ""  # where its padding comes from (SPEC 4), for --verbose and messages
    generator: str | None = None  # the layer that derives the mask from this input's values
    pad_value: float = 0.0
    vocab: int | None = None  # token ids stay below this (the Embedding's input_dim)
    #: why its padding is assumed (SPEC 4.6 convention); empty when declared or given
    assumed: str = ""


@dataclass(frozen=True)
class PlannedOutput:
    """One model output: its padded axes and how its loss treats padded labels."""

    name: str
    padded_axes: tuple[int, ...]
    masked: bool  # a mask reaches it (the loss then weights padded positions by 0)
    loss: str | None = None
    ignore_class: int | None = None

    @property
    def label_pad(self) -> float:
        """What padded label positions hold in the user's world."""
        return float(self.ignore_class) if self.ignore_class is not None else 0.0

    @property
    def labels_perturbable(self) -> bool:
        """Padded labels are worth changing: they have axes and are not `ignore_class`."""
        return bool(self.padded_axes) and self.ignore_class is None


@dataclass(frozen=True)
class ProbePlan:
    """Everything the probes of one model follow; a value, so tests can assert on it."""

    model: str
    inputs: tuple[PlannedInput, ...]
    outputs: tuple[PlannedOutput, ...]
    structure: str  # how the model takes its inputs: "single", "list" or "dict"
    generators: tuple[str, ...]  # layers whose outputs are perturbed (masks derive from values)
    length: int  # padded length of synthesized probes (one the model accepts)
    time_open: bool  # the padded length can change (MC304 probes more padding)
    n_padded: int  # padded axes per sample (1 for sequences, 2 for images)
    training_layers: tuple[str, ...] = ()  # layers whose training behaviour can mix samples
    has_graph: bool = True
    #: code whose gradients can carry padding while the loss does not (custom layers, ops,
    #: a custom loss or compute_loss): only then does the loss program add a backward pass
    gradient_code: tuple[str, ...] = ()
    #: padding sides the model itself declares (a keras-hub preprocessor's packer);
    #: empty when it declares none (then --padding decides)
    sides: tuple[str, ...] = ()
    #: rows every forward pass must hold (a stateful layer's state, else a fixed batch
    #: dimension the inputs declare); None when any batch size runs
    batch: int | None = None
    #: bytes of model outputs one stacked probe row holds at `length` (0 when unknown)
    row_bytes: int = 0

    def samples_per_pass(self, draws: int) -> int | None:
        """How many samples (each stacked `draws` times) one probe pass may hold so that its
        outputs stay within PASS_OUTPUT_BYTES; None when any number fits (or it is unknown)."""
        if not self.row_bytes:
            return None
        fits = PASS_OUTPUT_BYTES // (self.row_bytes * max(draws, 1))
        return max(MIN_PASS_SAMPLES, int(fits))

    @property
    def data_inputs(self) -> tuple[PlannedInput, ...]:
        return tuple(i for i in self.inputs if i.role == "data")

    def describe(self) -> str:
        """A few readable lines (for --verbose and test failures)."""
        lines = [f"probe plan for {self.model!r}: length {self.length}"
                 f"{' (open)' if self.time_open else ''}, {self.structure} inputs"]
        for i in self.inputs:
            lines.append(f"  input {i.name!r} {i.dtype} {i.shape}: {i.role}/{i.kind}"
                         + (f", padded axes {i.padded_axes} from {i.source}" if i.padded_axes else "")
                         + (f", perturbed after {i.generator!r}" if i.generator else ""))
        for o in self.outputs:
            lines.append(f"  output {o.name!r}: padded axes {o.padded_axes}, masked={o.masked}"
                         + (f", loss {o.loss} ignore_class={o.ignore_class}" if o.loss else ""))
        if self.training_layers:
            lines.append(f"  training-mode probe for {', '.join(self.training_layers)}")
        if self.gradient_code:
            lines.append(f"  gradients probed for {', '.join(self.gradient_code)}")
        if self.batch is not None:
            lines.append(f"  forward passes of {self.batch} rows (the model's declared batch size)")
        if self.row_bytes:
            lines.append(f"  outputs of {self.row_bytes / 2**20:.3g} MiB per probe row")
        return "\n".join(lines)


# --------------------------------------------------------------------------- model walking


def is_mask_name(name: str) -> bool:
    base = name.split(":")[0].split("/")[-1]
    return base in MASK_INPUT_NAMES or base.endswith("_mask")


def is_functional(obj: Any) -> bool:
    from keras.src.models.functional import Functional

    return isinstance(obj, Functional) or isinstance(getattr(obj, "_functional", None), Functional)


def sublayers(model: Any) -> list[Any]:
    """Every layer and operation below `model`, depth first, each once, deterministic."""
    seen: set[int] = {id(model)}
    found: list[Any] = []

    def visit(obj: Any) -> None:
        if any(cls.__name__ in OPAQUE_WRAPPERS for cls in type(obj).__mro__):
            return  # its inner layer runs inside a vectorized map: record the wrapper only
        children = []
        operations = getattr(obj, "operations", None) if is_functional(obj) else None
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


def stateful_layers(layers: list[Any]) -> list[Any]:
    """The layers that carry state from one call to the next (`stateful=True`, as Keras
    RNNs declare it) and can reset it."""
    return [layer for layer in layers if getattr(layer, "stateful", False) is True
            and callable(getattr(layer, "reset_state", None) or getattr(layer, "reset_states", None))]


def declared_batch(model: Any, layers: list[Any]) -> int | None:
    """The batch size the model is built for, when it fixes one: the batch of a stateful
    layer's state (its calls must hold exactly that many rows), else a fixed batch
    dimension every input declares (`keras.Input(batch_shape=...)` or `batch_size=`)."""
    for layer in stateful_layers(layers):
        states = getattr(layer, "states", None)
        flat = [s for s in (states if isinstance(states, (list, tuple)) else [states])
                if getattr(s, "shape", None) is not None and len(s.shape)]
        if flat and flat[0].shape[0]:
            return int(flat[0].shape[0])
    try:
        inputs = list(getattr(model, "inputs", None) or [])
    except (AttributeError, ValueError):
        inputs = []
    sizes = {getattr(t, "shape", (None,))[0] if getattr(t, "shape", ()) else None for t in inputs}
    if len(sizes) == 1 and None not in sizes:
        return int(next(iter(sizes)))
    return None


def layers_named(model: Any, names: set[str]) -> tuple[Any, ...]:
    """The sublayers of `model` with these names, each once, in sublayer order."""
    found: dict[str, Any] = {}
    for layer in sublayers(model):
        if layer.name in names:
            found.setdefault(layer.name, layer)
    return tuple(found.values())


def input_layer_name(tensor: Any) -> str:
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return str(getattr(operation, "name", None) or tensor.name)


def model_input_names(model: Any) -> list[str] | None:
    try:
        inputs = getattr(model, "inputs", None)
        if inputs:
            return [input_layer_name(t) for t in inputs]
    except (AttributeError, ValueError):
        pass
    return None


def input_structure(model: Any) -> str:
    """How the model takes its inputs: one tensor, a list (in order) or a dict by name."""
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict):
        return "dict"
    if isinstance(struct, (list, tuple)) and len(struct) > 1:
        return "list"
    names = model_input_names(model)
    return "list" if names and len(names) > 1 else "single"


def _is_generator_layer(layer: Any) -> bool:
    """A layer that derives a mask from its input values (subclassed models only)."""
    import keras

    if type(layer).__name__ == "Masking" or any(c.__name__ == "Masking" for c in type(layer).__mro__):
        return True
    if bool(getattr(layer, "mask_zero", False)) and hasattr(layer, "input_dim"):
        return True
    own = type(layer).compute_mask
    return own is not keras.layers.Layer.compute_mask and not type(layer).__module__.startswith("keras.")


def _is_embedding(layer: Any) -> bool:
    return isinstance(getattr(layer, "input_dim", None), int)


def _embedding_dims(layer: Any) -> list[int]:
    """input_dim of the layer, or of the Embeddings inside a custom layer."""
    if _is_embedding(layer):
        return [int(layer.input_dim)]
    if hasattr(layer, "_flatten_layers"):
        return [int(l.input_dim) for l in layer._flatten_layers(include_self=False, recursive=True)
                if _is_embedding(l)]
    return []


def _is_keras_code(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return module.startswith(("keras.", "keras_hub.", "keras_nlp."))


def _gradient_code(model: Any, layers: list[Any], graph: Any) -> tuple[str, ...]:
    """What may leak padding into the gradients without moving the loss.

    Keras's own layers keep padding out of the backward pass the way they keep it
    out of the forward pass (they select or multiply by the mask, and a selected-away
    branch gets an exact zero gradient), so with valid outputs and the loss unchanged
    their gradients are unchanged too. User code can break that (a sqrt or log at
    padded zeros gives 0 * inf = NaN gradients): custom layers, `keras.ops` calls whose
    derivative can be infinite, Lambdas, a custom loss, `compute_loss` or model class. Only those make the loss
    program add a backward pass (tracing it through a recurrent stack costs seconds).
    """
    import keras

    names = []
    if type(model).compute_loss is not keras.Model.compute_loss:
        names.append(f"{type(model).__name__}.compute_loss")
    if graph is None and not _is_keras_code(type(model)):
        names.append(type(model).__name__)
    loss = getattr(model, "loss", None)
    for item in (loss.values() if isinstance(loss, dict) else
                 loss if isinstance(loss, (list, tuple)) else [loss]):
        if item is not None and not isinstance(item, str) and not _is_keras_code(item):
            names.append(getattr(item, "__name__", None) or type(item).__name__)
    for layer in layers:
        cls = type(layer)
        if cls.__name__ == "Lambda" or not _is_keras_code(cls):
            if not is_functional(layer) and cls.__name__ not in ("Functional", "Sequential"):
                names.append(layer.name)
    if graph is not None:
        # ops on floats (a boolean op such as the mask's not_equal carries no gradient) whose
        # derivative can be infinite at a finite value (see BOUNDED_DERIVATIVE_OPS)
        names.extend(n.name for n in graph.nodes if n.is_op
                     and n.class_name not in BOUNDED_DERIVATIVE_OPS
                     and any("float" in graph.tensors[t].dtype for t in n.outputs))
    return tuple(dict.fromkeys(names))


#: `keras.ops` operations whose local derivative is finite wherever their inputs are: they
#: move, select, add, multiply or contract values, or are activations with bounded slopes.
#: Where the loss does not depend on a padded value, its gradient there is exactly 0, and
#: 0 times a finite derivative stays 0, so such an op cannot carry padding into the
#: gradients without moving the loss (which the loss probe measures without a backward
#: pass). The others (sqrt, log, divide, power, exp, norms...) can: 0 * inf is NaN.
BOUNDED_DERIVATIVE_OPS = frozenset({
    "GetItem", "Slice", "Reshape", "Ravel", "Transpose", "Swapaxes", "Moveaxis", "Concatenate",
    "Stack", "Hstack", "Vstack", "Dstack", "Unstack", "Split", "ArraySplit", "Hsplit", "Vsplit",
    "Dsplit", "Squeeze", "ExpandDims", "Tile", "Repeat", "Pad", "Take", "TakeAlongAxis",
    "BroadcastTo", "Flip", "Fliplr", "Flipud", "Roll", "Rot90", "Cast", "Copy", "Tril", "Triu",
    "Diagonal", "Where", "Select", "StopGradient", "Cumsum", "ZerosLike", "OnesLike", "FullLike",
    "Append", "Add", "Subtract", "Multiply", "Negative", "Matmul", "Einsum", "Dot", "Tensordot",
    "Inner", "Outer", "Vdot", "Sum", "Mean", "Max", "Min", "Amax", "Amin", "Maximum", "Minimum",
    "Absolute", "Fabs", "Clip", "Square", "Sign", "Round", "Floor", "Ceil", "Trunc", "Relu",
    "Relu6", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Gelu", "Silu", "Softplus", "Softsign",
    "Elu", "Selu", "Celu", "LeakyRelu", "HardSigmoid", "HardSilu", "HardTanh", "LogSigmoid",
    "Erf", "Sin", "Cos", "OneHot",
})


def _training_layers(layers: list[Any]) -> tuple[str, ...]:
    """Layers whose training-mode output can depend on other samples (batch statistics,
    or unknown custom code that may compute them)."""
    names = []
    for layer in layers:
        cls = type(layer)
        if any(b.__name__ in BATCH_STAT_LAYERS for b in cls.__mro__):
            names.append(layer.name)
        elif (not cls.__module__.startswith(("keras.", "keras_hub.", "keras_nlp."))
              and cls.__name__ not in ("Functional", "Sequential") and hasattr(layer, "call")
              and not is_functional(layer)):
            names.append(layer.name)
    return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------- the plan


def build_plan(model: Any, config: Any, graph: Any = None, flow: Any = None,
               require_padding: bool = True) -> ProbePlan:
    """The probe plan of `model` (see the module docstring).

    `require_padding` is False when real data comes with the check: the data then
    says which inputs are padded, even where the model declares nothing.

    Args:
        graph, flow: the static engine's MaskGraph and MaskFlow when the model has
            a graph (None for subclassed models; they are then read from the layers).

    Raises:
        NotProbeable: the model declares no input signature, or has odd dtypes.
        NoPadding: no input holds padding (SPEC 4 sources 2 to 5).
    """
    layers = sublayers(model)
    by_name = {layer.name: layer for layer in layers}
    if graph is not None and flow is not None:
        inputs, generators, outputs = _from_graph(model, config, graph, flow, by_name)
    else:
        inputs, generators, outputs = _from_layers(model, config, layers)
    if not inputs:
        raise NotProbeable(f"model {model.name!r} declares no input signature (subclassed, not built "
                           "on a shape): pass probe data (--data or data=)")
    if not any(i.role == "data" for i in inputs) and require_padding:
        if not getattr(config, "assume_padding", True):
            raise NoPadding(f"model {model.name!r} has no padded input (--padded none, and no "
                            "mask input or mask generator)")
        first = inputs[0]
        example = (f"--padded {first.name}:1 --padded {first.name}:2" if len(first.shape) == 3
                   else f"--padded {first.name}:1")
        raise NoPadding(f"model {model.name!r} has no padded input (no None-length axis, mask "
                        "input, mask generator or token input); if its inputs are padded, declare "
                        f"it, e.g. {example}")
    for i in inputs:
        if i.role != "mask" and i.kind != "tokens" and not _synthesizable(i.dtype):
            raise NotProbeable(f"input {i.name!r} has dtype {i.dtype}, which probes cannot "
                               "synthesize; pass probe data (--data)")
    n_padded = max((len(i.padded_axes) for i in inputs if i.role == "data"), default=1)
    fixed = [i.shape[0] for i in inputs if i.role == "data" and i.shape and i.shape[0] is not None]
    time_open = not fixed
    structure = input_structure(model) if graph is not None else _built_structure(model)
    length = int(fixed[0]) if fixed else _accepted_length(model, inputs, structure, config.seq_len,
                                                          n_padded)
    if graph is None:
        outputs = _outputs_by_length(model, inputs, structure, length, n_padded)
    pad_id, sides = preprocessor_padding(model)
    if pad_id is not None:  # the model's own packer says what padded token ids hold
        inputs = [replace(i, pad_value=pad_id) if i.role == "data" and i.kind == "tokens"
                  and i.generator is None else i for i in inputs]
    return ProbePlan(model=model.name, inputs=tuple(inputs), outputs=tuple(outputs),
                     structure=structure, generators=tuple(generators), length=length,
                     time_open=time_open, n_padded=n_padded,
                     training_layers=_training_layers(layers), has_graph=graph is not None,
                     gradient_code=_gradient_code(model, layers, graph), sides=sides,
                     batch=declared_batch(model, layers), row_bytes=output_row_bytes(model, length))


#: Model outputs one probe pass may hold, in bytes (every perturbation draw of its samples
#: included): about what a batch of 8 rows of 128 positions over a 32,000-token vocabulary
#: outputs. Outputs are what grows with the vocabulary (a language model's logits hold
#: vocabulary x positions floats per row), and every comparison the probes make is sized
#: by them; a probe whose outputs are larger runs in passes of fewer samples.
PASS_OUTPUT_BYTES = 128 * 2**20
#: A pass never holds fewer samples: the shuffled draw takes padding from a neighbour row.
MIN_PASS_SAMPLES = 2


def output_row_bytes(model: Any, length: int) -> int:
    """Bytes of the model's outputs for one row at `length` (open axes read as `length`);
    0 when the model declares no symbolic outputs (then passes are not split)."""
    try:
        outputs = list(getattr(model, "outputs", None) or [])
    except Exception:  # a subclassed model that was never called symbolically
        return 0
    total = 0
    for out in outputs:
        shape = getattr(out, "shape", None)
        if shape is None:
            return 0
        size = 1
        for d in tuple(shape)[1:]:
            size *= int(d) if d is not None else length
        total += size * 4  # float32 as the probes read them (a float64 output doubles it)
    return total


def preprocessor_padding(model: Any) -> tuple[float | None, tuple[str, ...]]:
    """(pad token id, sides) that a keras-hub task model's preprocessor declares.

    Task models carry their preprocessor (`model.preprocessor`), whose packer
    (`StartEndPacker`, `MultiSegmentPacker`) pads with `pad_value` (or the
    tokenizer's `pad_token_id`) on `padding_side` ("right": post, "left": pre)."""
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None:
        return None, ()
    packer = getattr(preprocessor, "packer", None)  # None until the preprocessor is built
    pad = getattr(packer, "pad_value", None)
    if not isinstance(pad, (int, float)) or isinstance(pad, bool):
        pad = getattr(getattr(preprocessor, "tokenizer", None), "pad_token_id", None)
    pad = float(pad) if isinstance(pad, (int, float)) and not isinstance(pad, bool) else None
    side = {"right": ("post",), "left": ("pre",)}.get(str(getattr(packer, "padding_side", "")), ())
    return pad, side


def preprocessor_weights_cover_padding(model: Any) -> bool:
    """Whether the model's own preprocessor (a keras-hub task's, which `fit` runs on every
    batch) returns sample weights that are 0 at every padded position of its padding mask.

    Runs the preprocessor on two texts of different lengths made by detokenizing ordinary
    token ids (no tokenizer files needed); any failure, or no sample weights, is False."""
    import numpy as np

    preprocessor = getattr(model, "preprocessor", None)
    tokenizer = getattr(preprocessor, "tokenizer", None)
    if preprocessor is None or not callable(getattr(tokenizer, "detokenize", None)):
        return False
    try:
        size = int(tokenizer.vocabulary_size())
        special = {getattr(tokenizer, a, None) for a in
                   ("pad_token_id", "start_token_id", "end_token_id")}
        ids = [i for i in range(min(size, 512)) if i not in special][-8:]
        texts = tokenizer.detokenize([ids[:6], ids[6:]] if len(ids) >= 8 else [ids, ids[:1]])
        out = preprocessor(texts)
    except Exception:  # a preprocessor we cannot drive tells us nothing
        return False
    if not isinstance(out, tuple) or len(out) != 3 or not isinstance(out[0], dict):
        return False
    masks = [np.asarray(v) for k, v in out[0].items() if k.endswith("padding_mask")]
    weights = np.asarray(out[2])
    if len(masks) != 1 or masks[0].shape != weights.shape or masks[0].all():
        return False
    return bool(not (weights[~masks[0].astype(bool)] != 0).any())


def _synthesizable(dtype: str) -> bool:
    import numpy as np

    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        return False
    return kind in "iufb"


def _from_graph(model: Any, config: Any, graph: Any, flow: Any,
                by_name: dict[str, Any]) -> tuple[list[PlannedInput], list[str], list[PlannedOutput]]:
    """Inputs, generators and outputs from the static dataflow."""
    declared_masks = {mask for _, mask in config.mask_inputs}
    declared = {name: axis for name, axis in config.padded}
    # mask generators: nodes that create a mask from values (the flow names them as sources)
    generating = []
    for node in graph.nodes:
        if node.is_input or node.is_op:
            continue
        created = any(flow.states.get(t) is not None and flow.states[t].mask is not None
                      and flow.states[t].mask.source == node.name and not flow.states[t].is_mask
                      for t in node.outputs)
        if created and node.name in by_name:
            generating.append(node.name)

    def downstream(start: int) -> list[Any]:
        """Nodes reachable from tensor `start`, breadth first."""
        order, seen, frontier = [], set(), [start]
        while frontier:
            tid = frontier.pop(0)
            for nxt in graph.consumers(tid):
                if nxt.index not in seen:
                    seen.add(nxt.index)
                    order.append(nxt)
                    frontier.extend(nxt.outputs)
        return order

    from maskcheck.static.dataflow import token_inputs

    tokens = token_inputs(graph)
    mask_lengths = _mask_input_lengths(graph, flow, declared_masks)
    inputs: list[PlannedInput] = []
    used_generators: list[str] = []
    for node in graph.nodes:
        if not node.is_input:
            continue
        tensor = graph.tensors[node.outputs[0]]
        shape, dtype = tuple(tensor.shape[1:]), tensor.dtype
        state = flow.states.get(node.outputs[0])
        reach = downstream(node.outputs[0])
        generator = next((n.name for n in reach if n.name in generating), None)
        dims = [d for n in reach for d in _embedding_dims(by_name.get(n.name))]
        if node.name in tokens:
            dims.append(tokens[node.name][0])
        vocab = min(dims) if dims else None
        kind = "tokens" if dims else "values"
        if (state is not None and state.is_mask) or node.name in declared_masks or "bool" in dtype:
            inputs.append(PlannedInput(node.name, shape, dtype, "mask", "mask"))
            continue
        axes: tuple[int, ...] = ()
        source = assumed = ""
        if node.name in declared:
            axes = (1, 2) if (len(shape) == 3 and declared[node.name] == 2) else (int(declared[node.name]),)
            source = "--padded"
        elif generator is not None and shape:
            axes, source = (1,), f"mask generator {generator!r}"
        elif state is not None and state.padded:
            axes = tuple(p.axis for p in state.padded)
            source = "a None-length axis"
            if all(p.assumed for p in state.padded):
                assumed, source = state.padded[0].assumed, "the token-0 convention"
        elif shape and shape[0] in mask_lengths:
            axes, source = (1,), "an explicit mask input"
        pad_value = tokens.get(node.name, (0, 0.0))[1]
        if generator is not None:
            gen_layer = by_name.get(generator)
            pad_value = float(getattr(gen_layer, "mask_value", 0.0) or 0.0)
            used_generators.append(generator)
        inputs.append(PlannedInput(node.name, shape, dtype, "data" if axes else "static", kind,
                                   axes, source, generator, pad_value, vocab, assumed))
    outputs = []
    names = list(graph.output_names) or [f"output_{i}" for i in range(len(graph.outputs))]
    for j, tid in enumerate(graph.outputs):
        state = flow.states.get(tid)
        axes = tuple(p.axis for p in state.padded) if state is not None else ()
        masked = bool(state is not None and state.mask is not None)
        losses = graph.losses.get(j, ()) if graph.losses else ()
        loss = losses[0] if losses else None
        outputs.append(PlannedOutput(names[j] if j < len(names) else f"output_{j}", axes, masked,
                                     loss.get("name") if loss else None,
                                     loss.get("ignore_class") if loss else None))
    return inputs, list(dict.fromkeys(used_generators)), outputs


def _mask_input_lengths(graph: Any, flow: Any, declared_masks: set[str]) -> set[int | None]:
    """Axis-1 sizes of the explicit mask inputs: data inputs of that length hold the padding."""
    lengths: set[int | None] = set()
    for node in graph.nodes:
        if node.is_input:
            state = flow.states.get(node.outputs[0])
            shape = graph.tensors[node.outputs[0]].shape
            if (node.name in declared_masks or (state is not None and state.is_mask)) and len(shape) >= 2:
                lengths.add(shape[1])
    return lengths


def _built_shapes(model: Any) -> tuple[str, list[str], list[tuple]] | None:
    """(structure, names, shapes) of the inputs a subclassed model was built or first called
    on: one tensor, a list of tensors (`[source, target]`) or a dict of them."""
    shapes = getattr(model, "_build_shapes_dict", None)
    if not (isinstance(shapes, dict) and len(shapes) == 1):
        return None
    value = next(iter(shapes.values()))

    def is_shape(s: Any) -> bool:
        return (isinstance(s, (tuple, list)) and len(s) >= 2
                and all(isinstance(d, (int, type(None))) for d in s))

    if is_shape(value):
        return "single", ["input"], [tuple(value)]
    if isinstance(value, (list, tuple)) and value and all(is_shape(v) for v in value):
        return "list", [f"input_{i}" for i in range(len(value))], [tuple(v) for v in value]
    if isinstance(value, dict) and value and all(is_shape(v) for v in value.values()):
        return "dict", [str(k) for k in value], [tuple(v) for v in value.values()]
    return None


def built_inputs(model: Any) -> tuple[tuple[str, int], ...] | None:
    """A subclassed model's inputs as (name, rank) pairs, from the shapes it was built or
    first called on (the names the plan gives them); None when it records none."""
    built = _built_shapes(model)
    if built is None:
        return None
    _structure, names, shapes = built
    return tuple((name, len(shape)) for name, shape in zip(names, shapes))


def _built_structure(model: Any) -> str:
    built = _built_shapes(model)
    return built[0] if built else "single"


def _from_layers(model: Any, config: Any,
                 layers: list[Any]) -> tuple[list[PlannedInput], list[str], list[PlannedOutput]]:
    """Inputs and generators of a subclassed model, from its build shapes and layers.

    Every input the model was first called on holds padding along axis 1 (the shapes
    recorded then are one batch's, not the model's limits). Which inputs are token ids
    is found by symbolic calls: (batch, time) inputs take ids when the model embeds
    tokens, unless the model only accepts floats there."""
    built = _built_shapes(model)
    if built is None:
        return [], [], []
    structure, names, shapes = built
    dims = [int(l.input_dim) for l in layers if _is_embedding(l)]
    # the outermost mask generators (a custom layer wrapping an Embedding, not the Embedding)
    generators: list[str] = []
    inside: set[int] = set()
    for layer in layers:
        if id(layer) in inside:
            continue
        if _is_generator_layer(layer):
            generators.append(layer.name)
            if hasattr(layer, "_flatten_layers"):
                inside.update(id(l) for l in layer._flatten_layers(include_self=False, recursive=True))
    declared = dict(config.padded)
    generator = generators[0] if len(generators) == 1 and len(shapes) == 1 else None
    pad_value = 0.0
    if generator is not None:
        layer = next(l for l in layers if l.name == generator)
        pad_value = float(getattr(layer, "mask_value", 0.0) or 0.0)
    source = f"mask generator {generator!r}" if generator else "a None-length axis"
    planned = []
    for name, shape in zip(names, shapes):
        per_sample = (None, *shape[2:])
        axes = (1, 2) if (len(per_sample) == 3 and declared.get(name) == 2) else (1,)
        ids = bool(dims) and len(per_sample) == 1  # token ids are (batch, time)
        planned.append(PlannedInput(name, tuple(per_sample), "int32" if ids else "float32",
                                    "data", "tokens" if ids else "values", axes, source,
                                    generator, pad_value, min(dims) if ids else None))
    if dims and len(planned) > 1:
        planned = _token_inputs_by_trial(model, planned, structure)
    return planned, ([generator] if generator else []), []


def _token_inputs_by_trial(model: Any, planned: list[PlannedInput],
                           structure: str) -> list[PlannedInput]:
    """Of a multi-input model that embeds tokens, the inputs that take ids: the first
    assignment (all ids, then fewer) that a symbolic call accepts."""
    import itertools

    candidates = [k for k, p in enumerate(planned) if p.kind == "tokens"]
    for count in range(len(candidates), 0, -1):
        for chosen in itertools.combinations(candidates, count):
            trial = [p if k in chosen else replace(p, dtype="float32", kind="values", vocab=None)
                     for k, p in enumerate(planned)]
            try:
                model.compute_output_spec(_symbolic_inputs(trial, structure, 8, 1))
            except Exception:  # the user's model may raise anything for a wrong dtype
                continue
            return trial
    return planned


def _symbolic_inputs(inputs: list[PlannedInput], structure: str, length: int, n_padded: int) -> Any:
    import keras

    tensors = []
    for i in inputs:
        shape = tuple(length if (a + 1 in i.padded_axes or (s is None and a < n_padded)) else s
                      for a, s in enumerate(i.shape))
        shape = tuple(length if s is None else s for s in shape)
        tensors.append(keras.KerasTensor((2, *shape), dtype=i.dtype))
    return pack(tensors, [i.name for i in inputs], structure)


def pack(flat: list[Any], names: list[str], structure: str) -> Any:
    """Flat arrays in the structure the model takes."""
    if structure == "dict":
        return dict(zip(names, flat))
    if structure == "list":
        return list(flat)
    return flat[0]


def _accepted_length(model: Any, inputs: list[PlannedInput], structure: str, preferred: int,
                     n_padded: int) -> int:
    """The smallest probe length at least `preferred` that the model's layers accept.

    Valid convolutions and pooling need a minimum length; Keras computes the
    output shapes symbolically (no data), so each candidate costs little.
    """
    candidates = [preferred] + [c for c in _CANDIDATE_LENGTHS if c > preferred]
    for length in candidates:
        try:
            model.compute_output_spec(_symbolic_inputs(inputs, structure, length, n_padded))
            return length
        except Exception:  # the user's model may raise anything for a length it rejects
            continue
    return preferred


def _outputs_by_length(model: Any, inputs: list[PlannedInput], structure: str, length: int,
                       n_padded: int) -> list[PlannedOutput]:
    """Output padded axes of a model without a graph: the axes whose size follows the input
    length, found from two symbolic calls (no data)."""
    import keras

    try:
        a = keras.tree.flatten(model.compute_output_spec(
            _symbolic_inputs(inputs, structure, length, n_padded)))
        b = keras.tree.flatten(model.compute_output_spec(
            _symbolic_inputs(inputs, structure, length + 3, n_padded)))
    except Exception:  # unknown: compare outputs whole
        return []
    outputs = []
    for j, (x, y) in enumerate(zip(a, b)):
        axes = tuple(k for k in range(1, len(x.shape)) if x.shape[k] != y.shape[k])
        outputs.append(PlannedOutput(f"output_{j}", axes, False))
    return outputs
