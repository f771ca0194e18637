"""The training program's measurement: does one sample's padding reach the others?

In training mode, batch statistics (BatchNormalization over padded steps) can carry
one sample's padding into another sample's valid outputs. Imports batches, compare,
plan and program.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskcheck.dynamic.batches import Rows, subset, take
from maskcheck.dynamic.compare import Measured, by_layer, output_leak
from maskcheck.dynamic.plan import ProbeError
from maskcheck.dynamic.program import Prober


def cross_sample(prober: Prober, inputs: Any, rows: Rows, config: Any) -> list[Measured]:
    """In training mode, perturb one sample's padding, compare the others.

    Both sides and both variants (reference, one sample's padding changed)
    run as separate batches of the training program (one trace)."""
    results: list[Measured] = []
    for side in dict.fromkeys(rows.side):
        base = np.nonzero((rows.draw == 0) & np.array([s == side for s in rows.side]))[0]
        if len(base) < 2:
            continue
        lengths = rows.lengths[base]
        other = int(base[int(np.argmin(lengths))])
        large = np.nonzero((rows.draw == 2) & (rows.sample == rows.sample[other])
                           & np.array([s == side for s in rows.side]))[0]
        if not len(large) or lengths.min() == rows.mask[base[0]].size:
            continue
        # The unperturbed copy of the changed sample rides along in both batches (last
        # row), so the changed row's masks are pinned to it like everywhere else; it is
        # never compared.
        idx = np.append(base, other)
        swapped = np.append(np.where(base == other, large[0], base), other)
        ref_rows = subset(rows, idx)
        new_rows = subset(rows, swapped)
        try:
            ref = prober.run(take(inputs, idx), ref_rows, training=True)
            new = prober.run(take(inputs, swapped), new_rows, training=True)
        except ProbeError:
            continue
        compare = np.array([i != other for i in idx])
        new_rows.base_row = np.arange(len(idx))
        new_rows.sample = rows.sample[idx]
        leak = output_leak(new, ref, new_rows, compare, np.arange(len(idx)), None, side,
                           config.atol, config.rtol)
        if leak is not None:
            results.append(Measured(leak, {"other": int(rows.sample[other])}))
    return by_layer(results)

