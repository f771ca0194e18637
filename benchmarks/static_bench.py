"""Static analysis time on large synthetic models and on a keras-hub style encoder.

`main()` prints one line per model: layers, static analysis time (graph
walk, dataflow and every static rule; model construction excluded) and the
time per layer, which must stay flat as models grow (linear analysis).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SIZES = (100, 1_000, 10_000)


def residual_chain(n_layers: int):
    """Embedding(mask_zero) followed by Dense + Add residual blocks: `n_layers` layers."""
    import keras

    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 4, mask_zero=True)(x)
    for _ in range(max((n_layers - 2) // 2, 1)):
        h = keras.layers.Add()([h, keras.layers.Dense(4)(h)])
    return keras.Model(x, h, name=f"residual_{n_layers}")


def transformer_encoder_stack(n_blocks: int = 4, length: int = 64, width: int = 64):
    """A keras-hub style encoder: token ids + padding_mask inputs, TransformerEncoder blocks."""
    import keras
    import keras_hub

    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    h = keras_hub.layers.TokenAndPositionEmbedding(1000, length, width)(token_ids)
    for i in range(n_blocks):
        h = keras_hub.layers.TransformerEncoder(width * 2, 4, name=f"encoder_{i}")(
            h, padding_mask=padding_mask)
    pooled = keras.layers.GlobalAveragePooling1D()(h, mask=padding_mask)
    return keras.Model({"token_ids": token_ids, "padding_mask": padding_mask},
                       keras.layers.Dense(2)(pooled), name="transformer_encoder")


def custom_block_stack(n_blocks: int = 48, width: int = 16):
    """`n_blocks` identical custom layers (a masked residual mix over features) that only
    the op-level reader understands: the first one is traced and read, the rest hit
    the per-class-and-config cache."""
    import keras

    @keras.saving.register_keras_serializable(package="maskcheck_bench")
    class GatedResidual(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True
            self.gate = keras.layers.Dense(width, activation="sigmoid")

        def call(self, x, mask=None):
            y = x + self.gate(x) * keras.ops.tanh(x)
            if mask is not None:
                y = y * keras.ops.cast(mask, y.dtype)[..., None]
            return y

    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(100, width, mask_zero=True)(x)
    for i in range(n_blocks):
        h = GatedResidual(name=f"block_{i}")(h)
    return keras.Model(x, keras.layers.Dense(2)(h), name=f"custom_blocks_{n_blocks}")


def time_static(model, repeat: int = 1, fresh: bool = False) -> float:
    """Best wall time (seconds) of adapting `model` and running every static rule
    (`fresh`: forget earlier op-level readings first, so their tracing is counted)."""
    from maskcheck.engine import run_rules
    from maskcheck.rules import ALL_RULES

    try:
        from maskcheck.static.adapter import adapt_model
    except ImportError:  # 0.1 and issue-14 releases, for before/after numbers
        from maskcheck.keras_adapter import adapt_model

    best = float("inf")
    for _ in range(repeat):
        if fresh:
            _forget_readings()
        started = time.perf_counter()
        run_rules(adapt_model(model), ALL_RULES)
        best = min(best, time.perf_counter() - started)
    return best


def _forget_readings() -> None:
    try:
        from maskcheck.static import ops
    except ImportError:  # before the op-level reader existed
        return
    ops.forget_readings()


def main(quick: bool = False) -> None:
    """Print the benchmark (`quick`: skip the 10,000-layer model, whose
    construction alone takes about a minute). Keras builds deep chains
    recursively, so it runs in a thread with a large stack and a raised
    recursion limit."""
    threading.stack_size(1 << 29)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 200_000))
    try:
        worker = threading.Thread(target=_run, args=(SIZES[:-1] if quick else SIZES,))
        worker.start()
        worker.join()
    finally:
        sys.setrecursionlimit(limit)
        threading.stack_size(0)


def _run(sizes: tuple[int, ...]) -> None:
    warnings.filterwarnings("ignore")
    rows = []
    for size in sizes:
        started = time.perf_counter()
        model = residual_chain(size)
        built = time.perf_counter() - started
        seconds = time_static(model, repeat=3 if size < 10_000 else 1)
        layers = len(model.layers)
        rows.append((model.name, layers, seconds))
        print(f"static  {model.name:<22} {layers:>6} layers  {seconds * 1000:9.1f} ms  "
              f"{seconds / layers * 1e6:7.1f} us/layer  (building the model: {built:.1f} s, not counted)")
    per_layer = [s / n for _, n, s in rows]
    print(f"static  per-layer ratio largest/smallest: {per_layer[-1] / per_layer[0]:.2f} "
          "(about 1 means linear)")
    model = custom_block_stack()
    seconds = time_static(model, repeat=3, fresh=True)
    print(f"static  {model.name:<22} {len(model.layers):>6} layers  {seconds * 1000:9.1f} ms  "
          "(48 identical custom layers, op-level reading included: traced once, then cached)")
    try:
        import keras_hub  # noqa: F401
    except ImportError:
        print("static  transformer_encoder: keras_hub not installed, skipped")
        return
    import tempfile
    from pathlib import Path

    import keras

    for blocks in (4, 12):
        model = transformer_encoder_stack(blocks)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "encoder.keras"
            model.save(path)
            loaded = keras.saving.load_model(path)
        seconds = time_static(loaded, repeat=3, fresh=True)
        print(f"static  {loaded.name + '_' + str(blocks):<22} {len(loaded.layers):>6} layers  "
              f"{seconds * 1000:9.1f} ms  (saved, loaded, then analysed, op-level readings "
              f"included; {blocks} keras-hub TransformerEncoder blocks with padding_mask)")


if __name__ == "__main__":
    main()
