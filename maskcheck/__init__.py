"""maskcheck: find padding and masking bugs in Keras 3 models.

Importing this package is cheap: Keras and TensorFlow load only when a
model is actually checked, so `maskcheck --help` stays instant.
"""

from __future__ import annotations

from typing import Any

from maskcheck.finding import Finding, ModelReport, Report, Severity, TargetError

__version__ = "0.1.0"

__all__ = ["__version__", "check", "Finding", "ModelReport", "Report", "Severity", "TargetError"]


def check(model: Any, mode: str = "all", data: Any = None, select: Any = None,
          ignore: Any = None, padding: str = "both", seed: int = 0,
          fail_on: str = "warning") -> Report:
    """Check one in-memory Keras model and return its Report.

    Args:
        model: a built Functional or Sequential `keras.Model`.
        mode: "static" or "all" (this release runs the static engine only).
        data: reserved for probe data of the dynamic engine; must be None.
        select: rule codes, prefixes (``"MC1"``) or names to run; None runs all.
        ignore: rule codes, prefixes or names to skip.
        padding, seed: probe settings of the dynamic engine (not used yet).
        fail_on: lowest severity that makes `report.ok` False.

    Returns:
        A Report with one ModelReport.

    Example:
        >>> report = maskcheck.check(model, select=["MC102"])
        >>> report.ok
    """
    from maskcheck.config import Config
    from maskcheck.engine import check_model

    config = Config.from_values(mode=mode, select=select, ignore=ignore, fail_on=fail_on)
    if data is not None:
        raise ValueError("data= needs the dynamic engine, which this release does not have yet")
    return Report((check_model(model, target=model.name, config=config),), fail_on=fail_on)
