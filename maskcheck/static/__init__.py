"""The static engine: reads a model's graph and runs the padded-axis dataflow.

Modules, in the order a check uses them:

* `adapter`: turns a Keras model into a `graph.MaskGraph` (Keras-free values);
* `semantics`: what each built-in Keras layer and keras.ops call does to padded
  axes and masks (`semantics.keras`), and each keras-hub layer
  (`semantics.keras_hub`);
* `ops`: the operation-level reader for code maskcheck does not know (custom
  layers, Lambdas, custom `compute_mask` and `compute_loss`): it traces the code
  on symbolic inputs and runs the same dataflow over the backend operations;
* `dataflow`: the padded-axis dataflow over a MaskGraph, whose events the
  rules in `maskcheck.rules` turn into findings.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the static engine runs.

    The analysis allocates many small, acyclic values. With a large Keras
    model in memory, every full collection those allocations trigger walks
    the whole model, which made a 10,000-layer check superlinear (3.1 s,
    over 2x the per-layer time of a 100-layer one). Reference counting still
    frees everything; the collector is resumed (if it was on) afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
