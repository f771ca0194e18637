"""One shared Report that every reporter's golden file is rendered from.

It covers what reporters must tell apart: findings of all three severities
(one with evidence, and a related finding folded under it), a clean model and a
target that failed to load. Values
are fixed so the goldens are byte-stable.
"""

from __future__ import annotations

from maskcheck.finding import Finding, ModelReport, Report, Severity, TargetError


def _node(index: int, path: str, cls: str, mask: str = "none", kind: str = "layer",
          group: str | None = None, shape: str = "(None, 8, 16)") -> dict:
    return {"id": f"n{index}", "layer": path, "name": path.rsplit("/", 1)[-1], "class": cls,
            "kind": kind, "group": group, "mask": mask, "shape": shape}


def _edge(a: int, b: int, state: str, shape: str = "(None, 8, 16)") -> dict:
    return {"from": f"n{a}", "to": f"n{b}", "state": state, "shape": shape}


#: The layer graph the static engine would read for `tagger` (what `maskcheck.static.view`
#: produces), with the probe's per-position change at the MC102 layer, post and pre padding.
TAGGER_VIEW = {
    "nodes": [
        _node(0, "tagger/tokens", "InputLayer", kind="input", shape="(None, 8)"),
        _node(1, "tagger/embedding", "Embedding", "creates"),
        _node(2, "tagger/masking", "Masking", "creates"),
        _node(3, "tagger/encoder/conv1d", "Conv1D", "drops", group="g:tagger/encoder"),
        _node(4, "tagger/flat", "Flatten", "drops", shape="(None, 128)"),
        _node(5, "tagger/dense", "Dense", shape="(None, 3)"),
    ],
    "edges": [
        _edge(0, 1, "unmasked", "(None, 8)"), _edge(1, 2, "masked"), _edge(2, 3, "masked"),
        _edge(3, 4, "unmasked"), _edge(4, 5, "clean", "(None, 128)"),
    ],
    "outputs": ["n5"],
    "groups": [{"id": "g:tagger/encoder", "layer": "tagger/encoder", "name": "encoder",
                "kind": "model", "parent": None}],
    "profiles": {"tagger/encoder/conv1d": [
        {"padding": "post", "sample": 2, "valid": [1, 1, 1, 1, 1, 1, 1, 0],
         "change": [0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 0.43, 1.2]},
        {"padding": "pre", "sample": 6, "valid": [0, 1, 1, 1, 1, 1, 1, 1],
         "change": [1.5, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]},
    ]},
}

SETTINGS = {"mode": "all", "fail_on": "warning", "padding": "both", "seed": 0, "batch_size": 4,
            "seq_len": 12, "atol": 1e-05, "rtol": 0.0001, "select": "all", "ignore": [],
            "data": None}


def sample_report(fail_on: str = "warning") -> Report:
    """Three targets: `tagger` with 3 findings, one with a related finding (and its layer graph), `clean` with none,
    `broken` unloadable."""
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
            related=(Finding(
                rule="MC101",
                name="mask-dropped",
                severity=Severity.WARNING,
                kind=("static",),
                layer="conv1d",
                layer_class="Conv1D",
                path=("tagger", "encoder", "conv1d"),
                message=("Layer 'conv1d' (Conv1D) receives the mask created by 'masking' but "
                         "neither consumes nor propagates it."),
                fix="Multiply the input of 'conv1d' by the mask.",
            ),),
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
                        stats={"layers": 5, "static_ms": 1.0}, view=TAGGER_VIEW),
            ModelReport(target="models/clean.h5", model="clean",
                        stats={"layers": 3, "static_ms": 0.5}),
            ModelReport(target="models/broken.keras", model=None,
                        error=TargetError("ValueError", "Unknown layer: 'CustomAttention'. "
                                          "Pass --import MODULE to register it.")),
        ),
        fail_on=fail_on,
        settings={**SETTINGS, "fail_on": fail_on},
    )
