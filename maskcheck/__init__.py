"""maskcheck: find padding and masking bugs in Keras 3 models.

Importing this package is cheap: Keras and TensorFlow load only when a
model is actually checked, so `maskcheck --help` stays instant.
"""

from __future__ import annotations

from typing import Any

# These modules import only the standard library and maskcheck's values at import time,
# so `import maskcheck` stays free of TensorFlow.
from maskcheck.adoption.locations import record_locations
from maskcheck.backends import UnsupportedBackendError
from maskcheck.finding import Finding, ModelReport, Report, Severity, TargetError
from maskcheck.integrations.assertions import (PaddingLeakError, assert_loss_ignores_padding,
                                               assert_padding_invariant)
from maskcheck.integrations.batch_equivalence import assert_batch_equivalent
from maskcheck.version import __version__

__all__ = ["__version__", "check", "record_locations", "Finding", "ModelReport", "Report", "Severity", "TargetError",
           "PaddingLeakError", "assert_padding_invariant", "assert_loss_ignores_padding",
           "assert_batch_equivalent", "UnsupportedBackendError"]


def check(model: Any, mode: str = "all", data: Any = None, select: Any = None,
          ignore: Any = None, padding: str = "both", seed: int = 0,
          fail_on: str = "warning", **settings: Any) -> Report:
    """Check one in-memory Keras model and return its Report.

    Every setting of the command line and of `[tool.maskcheck]` is a keyword here,
    under its Python name, validated the same way (a bad value raises
    `maskcheck.config.ConfigError`, a ValueError naming the option).

    Args:
        model: a built Functional, Sequential or subclassed `keras.Model`.
        mode: "static", "dynamic" or "all".
        data: real probe data (SPEC 4 item 1): arrays, an (x, y[, sample_weight])
            tuple, a dict (inputs by name, or "x"/"y"/"mask"/"lengths"/
            "sample_weight"), a `tf.data.Dataset`, a `keras.utils.PyDataset`, a
            generator, or a string naming an .npz file or `module:function`. The
            first `data_batches` batches are read; None synthesizes probes.
        select, ignore: rule codes, prefixes (``"MC1"``) or names.
        padding, seed: padding sides to probe ("post", "pre", "both") and the seed.
        fail_on: lowest severity that makes `report.ok` False.
        **settings: ``padded=("tokens:1",)`` or ``padded="none"``,
            ``mask_inputs={"tokens": "padding_mask"}`` (or ``("tokens=padding_mask",)``),
            ``atol``, ``rtol``, ``batch_size``, ``seq_len``, ``device``, ``data_batches``,
            ``generate_steps`` (tokens per prompt of the generation checks), ``imports`` (modules imported first), ``per_layer_ignores={"glob": ["MC102"]}``,
            ``baseline`` (a baseline file), ``warn_unused_ignores``. CLI-only settings
            (``format``, ``output``, ``statistics``, ``verbose``, ``unsafe``,
            ``write_baseline``) are validated and otherwise ignored: the Report is the result.

    `padded` and `mask_inputs` are checked against the model's inputs: naming an input the
    model lacks, or an axis its input does not have, raises ConfigError (one line listing
    the model's inputs). In a process whose Keras runs on another backend than TensorFlow,
    `maskcheck.UnsupportedBackendError` (a RuntimeError) says so and what to do.

    Findings carry `location` (and `# maskcheck: ignore` comments apply) when the
    model was built under `maskcheck.record_locations()`; models built outside it
    have no record of their source lines.

    Returns:
        A Report with one ModelReport.

    Example:
        >>> report = maskcheck.check(model, padded=("image:1", "image:2"))
        >>> report.ok
    """
    from maskcheck.config import Config, ConfigError, api_values
    from maskcheck.engine import check_in_memory

    values = api_values(settings)
    if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        values["data"], data = str(data if not isinstance(data, bytes) else data.decode()), None
    unknown = sorted(set(values) - set(Config.__dataclass_fields__) - {"source"})
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} (known: "
                          + ", ".join(sorted(f for f in Config.__dataclass_fields__ if f != "source"))
                          + ")")
    config = Config.from_values(mode=mode, select=select, ignore=ignore, fail_on=fail_on,
                                padding=padding, seed=seed, **values)
    if config.imports:
        from maskcheck.loading import import_modules

        import_modules(config.imports)
    return check_in_memory(model, config, data)
