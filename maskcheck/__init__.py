"""maskcheck: find padding and masking bugs in Keras 3 models.

Importing this package is cheap: Keras and TensorFlow load only when a
model is actually checked, so `maskcheck --help` stays instant.
"""

from __future__ import annotations

from typing import Any

# maskcheck.assertions imports only the standard library and maskcheck.finding at
# import time, so `import maskcheck` stays free of TensorFlow.
from maskcheck.assertions import PaddingLeakError, assert_loss_ignores_padding, assert_padding_invariant
from maskcheck.finding import Finding, ModelReport, Report, Severity, TargetError

__version__ = "0.1.0"

__all__ = ["__version__", "check", "Finding", "ModelReport", "Report", "Severity", "TargetError",
           "PaddingLeakError", "assert_padding_invariant", "assert_loss_ignores_padding"]


def check(model: Any, mode: str = "all", data: Any = None, select: Any = None,
          ignore: Any = None, padding: str = "both", seed: int = 0,
          fail_on: str = "warning") -> Report:
    """Check one in-memory Keras model and return its Report.

    Args:
        model: a built Functional or Sequential `keras.Model`.
        mode: "static", "dynamic" or "all".
        data: probe data for the dynamic engine: x alone (an array, list or
            dict of arrays), an (x, y) pair, or a dict with inputs by name and
            optional "y", "mask", "lengths"; None synthesizes probe batches.
        select: rule codes, prefixes (``"MC1"``) or names to run; None runs all.
        ignore: rule codes, prefixes or names to skip.
        padding, seed: probe settings of the dynamic engine ("post", "pre" or
            "both" sides; results are deterministic for a seed).
        fail_on: lowest severity that makes `report.ok` False.

    Returns:
        A Report with one ModelReport.

    Example:
        >>> report = maskcheck.check(model, select=["MC102"])
        >>> report.ok
    """
    from maskcheck.config import Config
    from maskcheck.engine import CheckError, check_model

    config = Config.from_values(mode=mode, select=select, ignore=ignore, fail_on=fail_on,
                                padding=padding, seed=seed)
    try:
        result = check_model(model, target=model.name, config=config, data=data)
    except CheckError as exc:
        result = ModelReport(model.name, model.name, findings=exc.findings,
                             error=TargetError(exc.type, exc.message))
    return Report((result,), fail_on=fail_on)

