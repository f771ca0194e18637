"""What a model's generation path declares, read without running it (MC110's facts).

keras-hub's generation protocol: `generate_step(inputs)` seeds a cache with
`_build_cache` and calls `call_with_cache(token_ids, cache, cache_update_index)`
step by step, one `cache_update_index` for every row of the batch. Whether that
is safe depends on where the prompts' padding sits: after the prompt (right),
every row's tokens keep their positions; before it (left), each row's positions
and cached keys include its pads unless the cached call also receives per-row
information (a padding mask, position ids) to correct for them.
"""

from __future__ import annotations

import inspect
from typing import Any


def packer_of(model: Any) -> Any:
    """The packer of the model's preprocessor that pads its prompts (`packer`, or a
    sequence-to-sequence model's `encoder_packer`), building the preprocessor first if
    needed (cheap: it creates the packers from the tokenizer's ids and touches no weight)."""
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None:
        return None
    if not getattr(preprocessor, "built", True):
        try:
            preprocessor.build(None)
        except Exception:  # a preprocessor that cannot build says nothing about padding
            return None
    return getattr(preprocessor, "packer", None) or getattr(preprocessor, "encoder_packer", None)


def packer_side(model: Any) -> str | None:
    """"post" or "pre": the side the model's packer pads prompts on; None when unknown."""
    side = str(getattr(packer_of(model), "padding_side", ""))
    return {"right": "post", "left": "pre"}.get(side)


def generation_facts(model: Any) -> dict[str, Any]:
    """{} for a model without a cached generation step; else its class, the packer's side,
    whether one cache index serves the whole batch, and the per-row inputs the cached call
    takes (parameters naming a mask or positions)."""
    call = getattr(model, "call_with_cache", None)
    if not callable(getattr(model, "generate_step", None)) or not callable(call):
        return {}
    try:
        params = tuple(inspect.signature(call).parameters)
    except (TypeError, ValueError):
        return {}
    return {
        "class": type(model).__name__,
        "side": packer_side(model),
        "shared_index": "cache_update_index" in params,
        "per_row": tuple(p for p in params if "mask" in p or "position" in p),
    }
