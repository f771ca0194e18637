"""One shared Report that every reporter's golden file is rendered from.

It covers what reporters must tell apart: findings of all three severities
(one with evidence), a clean model and a target that failed to load. Values
are fixed so the goldens are byte-stable.
"""

from __future__ import annotations

from maskcheck.finding import Finding, ModelReport, Report, Severity, TargetError


def sample_report(fail_on: str = "warning") -> Report:
    """Three targets: `tagger` with 3 findings, `clean` with none, `broken` unloadable."""
    findings = (
        Finding(
            rule="MC101",
            name="mask-dropped",
            severity=Severity.WARNING,
            kind=("static",),
            layer="flat",
            layer_class="Flatten",
            path=("tagger", "flat"),
            message=("Layer 'flat' (Flatten) receives the mask created by 'embedding' but "
                     "does not support masking; layers after it see no mask."),
            fix="Consume the mask before 'flat' (e.g. with GlobalAveragePooling1D).",
        ),
        Finding(
            rule="MC102",
            name="unmasked-mixing",
            severity=Severity.ERROR,
            kind=("static", "dynamic"),
            layer="conv1d",
            layer_class="Conv1D",
            path=("tagger", "encoder", "conv1d"),
            message=("Layer 'conv1d' (Conv1D) mixes values along padded axis 1 (padding from "
                     "'embedding', post-padding) and no mask reaches it."),
            fix="In 'conv1d': use Conv1D(padding='causal') with post-padding.",
            evidence={"padding": "post", "max_abs_diff": 0.43, "sample": 2, "position": 6},
        ),
        Finding(
            rule="MC104",
            name="mask-never-used",
            severity=Severity.INFO,
            kind=("static",),
            layer="masking",
            layer_class="Masking",
            path=("tagger", "masking"),
            message="The mask created by 'masking' is never read by any layer, output, loss or metric.",
            fix="Remove the mask from 'masking', or keep it attached up to the layer that should use it.",
        ),
    )
    return Report(
        models=(
            ModelReport(target="models/tagger.keras", model="tagger", findings=findings,
                        stats={"layers": 5, "static_ms": 1.0}),
            ModelReport(target="models/clean.h5", model="clean",
                        stats={"layers": 3, "static_ms": 0.5}),
            ModelReport(target="models/broken.keras", model=None,
                        error=TargetError("ValueError", "Unknown layer: 'CustomAttention'. "
                                          "Pass --import MODULE to register it.")),
        ),
        fail_on=fail_on,
    )
