"""What recording source locations costs while a model is built.

`maskcheck.record_locations()` wraps Keras's `Operation.__new__` and walks the
stack once per layer or symbolic op. This section builds the same Functional
model (an Embedding, then N blocks of Conv1D + LayerNormalization + Dense +
Add, 4 layers each) with and without recording, in one process, and prints
the ratio. Model building outside the context is untouched (nothing is
patched), so the only users who pay are those who asked for locations.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build(blocks: int):
    import keras

    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(100, 16, mask_zero=True)(tokens)
    for _ in range(blocks):
        h = keras.layers.Conv1D(16, 3, padding="same")(x)
        h = keras.layers.LayerNormalization()(h)
        h = keras.layers.Dense(16)(h)
        x = keras.layers.Add()([x, h])
    return keras.Model(tokens, x)


def seconds(blocks: int, repeats: int) -> tuple[float, float]:
    """Median build times (recording, plain), interleaved and in alternating order so drift
    and warm-up hit both alike."""
    import keras

    from maskcheck.adoption.locations import record_locations

    recorded, plain = [], []
    for repeat in range(repeats):
        pair = ((True, recorded), (False, plain))
        for recording, times in (pair if repeat % 2 == 0 else pair[::-1]):
            keras.backend.clear_session()
            started = time.perf_counter()
            if recording:
                with record_locations():
                    build(blocks)
            else:
                build(blocks)
            times.append(time.perf_counter() - started)
    return statistics.median(recorded), statistics.median(plain)


def main(quick: bool = False) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    blocks, repeats = (25, 4) if quick else (50, 6)
    build(2)  # warm up Keras and TensorFlow
    recorded, plain = seconds(blocks, repeats)
    layers = 2 + 4 * blocks
    print("Source locations: building a model with and without record_locations() (median)")
    print(f"  {layers}-layer Functional model, recording   {recorded:8.3f} s   "
          f"without {plain:8.3f} s   ratio {recorded / plain:5.2f}")


if __name__ == "__main__":
    main()
