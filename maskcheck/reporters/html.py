"""One self-contained HTML page per run: the layer graph with the mask flow, findings, plots.

SPEC 6b. Everything is inlined (styles, the script, the layout library, the
data); a Content-Security-Policy forbids the page any request, so it opens
from disk, from a CI artifact or in a notebook's iframe alike. The page
embeds the JSON report (section 6) as ``#maskcheck-report`` and what it
draws as ``#maskcheck-graph``; the header, the findings and the |change|
plots are HTML/SVG written here (readable with scripts off), the graph is
laid out in the browser by dagre (vendored in ``assets/``, MIT, the layout
Netron uses) and drawn as SVG by ``assets/report.js``.

Like every reporter it only renders: `render(report) -> str`, no exit codes.
Standard library only, so `--format html` never needs more than maskcheck.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Mapping

from maskcheck.version import __version__
from maskcheck.finding import Finding, ModelReport, Report
from maskcheck.reporters.graphview import prepare

ASSETS = Path(__file__).parent / "assets"

#: The page may load nothing: no network, no file, no frame. Inline code and data: only.
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'")

EDGE_LEGEND = (
    ("masked", "padding with a mask that lines up", "solid line"),
    ("unmasked", "padding and no mask", "dashed line"),
    ("mismatched", "a mask that does not line up with the padding", "dash-dot line"),
    ("clean", "no padded axis", "thin line"),
)
NODE_LEGEND = (
    ("leak", "an error or warning at this layer", "thick border, marked LEAK"),
    ("suspect", "an info finding at this layer", "double border, marked SUSPECT"),
    ("ok", "no finding", "plain border"),
)
SETTING_LABELS = (
    ("mode", "mode"), ("fail_on", "fail on"), ("padding", "padding"), ("seed", "seed"),
    ("batch_size", "batch size"), ("seq_len", "sequence length"), ("atol", "atol"),
    ("rtol", "rtol"), ("select", "select"), ("ignore", "ignore"), ("data", "data"),
)


def page_data(report: Report) -> dict[str, Any]:
    """What the page embeds: the JSON report and, per model, the graph it draws (or None).

    A model's picture is `ModelReport.view`: drawn by `graphview.model_view` from
    the engines' `GraphSummary`, or given ready-made with a report built by hand."""
    models = []
    for m in report.models:
        view = m.view
        models.append(prepare(view, m.findings) if view is not None else None)
    return {"report": report.to_dict(),
            "graph": {"version": 1, "settings": dict(report.settings or {}), "models": models}}


def render(report: Report, *, compact: bool = False) -> str:
    """The whole page as one string; `compact` (notebooks) starts with the legend folded."""
    data = page_data(report)
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\" data-theme=\"auto\">\n<head>\n<meta charset=\"utf-8\">\n",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<meta name=\"color-scheme\" content=\"light dark\">\n",
        f"<title>maskcheck report: {_summary_line(report)}</title>\n",
        "<style>\n", (ASSETS / "report.css").read_text(encoding="utf-8"), "</style>\n</head>\n<body>\n",
        _header(report, compact),
        "<main>\n",
        *(_model_section(i, m, data["graph"]["models"][i]) for i, m in enumerate(report.models)),
        "</main>\n",
        _script_json("maskcheck-report", data["report"]),
        _script_json("maskcheck-graph", data["graph"]),
        "<script>\n", (ASSETS / "dagre.min.js").read_text(encoding="utf-8"), "\n</script>\n",
        "<script>\n", (ASSETS / "report.js").read_text(encoding="utf-8"), "</script>\n",
        "</body>\n</html>\n",
    ]
    return "".join(parts)


def embedded_data(page: str) -> dict[str, Any]:
    """What a rendered page embeds, read back: {"report": ..., "graph": ...} (tests, tools)."""
    found = {}
    for key, element_id in (("report", "maskcheck-report"), ("graph", "maskcheck-graph")):
        start = page.index(f'<script type="application/json" id="{element_id}">')
        start = page.index(">", start) + 1
        found[key] = json.loads(page[start:page.index("</script>", start)])
    return found


def notebook_frame(report: Report, height: int = 760) -> str:
    """The page inside an iframe, for Jupyter's `_repr_html_`: its styles and script stay
    out of the notebook's, and the notebook's out of the page."""
    page = html.escape(render(report, compact=True), quote=True)
    return (f'<iframe class="maskcheck-report" title="maskcheck report" srcdoc="{page}" '
            f'sandbox="allow-scripts" style="width:100%;height:{height}px;border:0"></iframe>')


# --------------------------------------------------------------------------- header


def _summary_line(report: Report) -> str:
    s = report.summary()
    return (f"{s['models']} model{'s' * (s['models'] != 1)}, {s['errors']} errors, "
            f"{s['warnings']} warnings, {s['infos']} infos, {s['failed']} failed")


def _header(report: Report, compact: bool = False) -> str:
    s = report.summary()
    code = report.exit_code()
    meaning = {0: "clean", 1: f"findings at or above {report.fail_on}",
               2: "a target could not be checked"}[code]
    counts = "".join(
        f'<li class="count sev-{key}"><span class="num">{s[plural]}</span> {label}</li>'
        for key, plural, label in (("error", "errors", "errors"), ("warning", "warnings", "warnings"),
                                   ("info", "infos", "infos"), ("failed", "failed", "targets failed")))
    extra = "".join(f'<li class="count"><span class="num">{s[k]}</span> {k}</li>'
                    for k in ("suppressed", "baselined", "fixed") if s.get(k))
    settings = ""
    if report.settings:
        settings = "<dl class=\"settings\">" + "".join(
            f"<div><dt>{label}</dt><dd>{_e(_setting(report.settings[key]))}</dd></div>"
            for key, label in SETTING_LABELS if key in report.settings) + "</dl>\n"
    legend_edges = "".join(
        f'<li><svg width="44" height="12" aria-hidden="true"><line class="edge" '
        f'data-legend-edge="{state}" x1="2" y1="6" x2="42" y2="6"/></svg> '
        f'<strong>{state}</strong>: {meaning_} <span class="pattern">({pattern})</span></li>'
        for state, meaning_, pattern in EDGE_LEGEND)
    legend_nodes = "".join(
        f'<li><span class="swatch" data-legend-state="{state}" aria-hidden="true"></span> '
        f'<strong>{state}</strong>: {meaning_} <span class="pattern">({pattern})</span></li>'
        for state, meaning_, pattern in NODE_LEGEND)
    return (
        '<header class="run">\n'
        f'<div class="title"><h1>maskcheck report</h1> <span class="version">maskcheck {_e(__version__)}</span>'
        '<button type="button" class="theme-toggle" aria-label="switch light or dark theme">'
        'theme: auto</button></div>\n'
        f'<p class="summary" data-exit-status="{code}">{s["models"]} model{"s" * (s["models"] != 1)} '
        f'checked · exit status <strong>{code}</strong> ({meaning})</p>\n'
        f'<ul class="counts">{counts}{extra}</ul>\n'
        f"{settings}"
        '<details class="legend"' + ("" if compact else " open") + '><summary>How to read the graph</summary>\n'
        f'<p>Edges (tensors), by the static dataflow:</p><ul>{legend_edges}</ul>\n'
        f'<p>Layers, by the findings at them:</p><ul>{legend_nodes}</ul>\n'
        '<p>Each layer also says what it does with a mask: <em>creates</em>, <em>consumes</em>, '
        '<em>propagates</em> or <em>drops</em> it. Click a layer to see its findings, or a '
        'finding to find its layer; ▸ expands a nested model or a run of repeated blocks.</p>\n'
        '</details>\n</header>\n')


def _setting(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    return str(value)


# --------------------------------------------------------------------------- one model


def _model_section(index: int, model: ModelReport, graph: Mapping[str, Any] | None) -> str:
    # a model with no findings whose probes could not measure is not shown as clean (SPEC 9)
    status = "inconclusive" if model.status == "ok" and model.inconclusive is not None else model.status
    status_label = {"ok": "clean", "findings": f"{len(model.findings)} finding"
                    + "s" * (len(model.findings) != 1), "error": "could not be checked",
                    "inconclusive": "inconclusive"}[status]
    worst = f" worst-{model.findings[0].severity.value}" if model.findings else ""  # sorted worst first
    head = (f'<section class="model" id="model-{index}" data-model="{index}" '
            f'data-status="{status}">\n'
            f'<h2><span class="target">{_e(model.target)}</span>'
            + (f' <span class="model-name">model {_e(model.model)}</span>' if model.model else "")
            + f' <span class="status status-{status}{worst}">{status_label}</span></h2>\n')
    body = []
    if model.error is not None:
        body.append(f'<p class="target-error" role="alert"><strong>{_e(model.error.type)}</strong>: '
                    f"{_e(model.error.message)}</p>\n")
    elif model.inconclusive is not None:  # SPEC 9: the probes could not measure; not clean
        body.append(f'<p class="target-note" role="note"><strong>dynamic checks inconclusive</strong>: '
                    f"{_e(model.inconclusive)}</p>\n")
    if graph is not None:
        body.append(f'<div class="columns"><div class="graph-pane"><div class="toolbar">'
                    f'<button type="button" class="fit">fit to width</button>'
                    f'<button type="button" class="expand-all">expand all</button></div>'
                    f'<div class="graph" data-model="{index}" role="group" '
                    f'aria-label="layer graph of {_e(model.model or model.target)}">'
                    f'<p class="no-script">The layer graph needs JavaScript.</p></div></div>\n')
    elif model.error is None:
        body.append('<p class="no-graph">No layer graph: the static engine could not read this model.</p>\n')
    body.append('<aside class="findings-pane">')
    if model.findings:
        profiles = dict(graph["profiles"]) if graph is not None else {}
        items = []
        for i, f in enumerate(model.findings):  # a layer's plots go with its first probed finding
            probed = [("/".join(g.path)) for g in (f, *f.related) if "dynamic" in g.kind]
            plots = [p for where in dict.fromkeys(probed) for p in profiles.pop(where, None) or ()]
            items.append(_finding(index, i, f, plots or None))
        body.append('<ol class="findings">' + "".join(items) + "</ol>")
    elif model.error is None:
        body.append('<p class="no-findings">No findings: padding does not reach what this model '
                    "computes or learns.</p>")
    if model.suppressed:
        body.append(f'<details class="suppressed"><summary>{len(model.suppressed)} suppressed or '
                    'baselined</summary><ol>'
                    + "".join(f"<li><strong>{_e(f.rule)}</strong> at {_e('/'.join(f.path))} "
                              f"({_e(f.suppressed_by or '')}): {_e(f.message)}</li>" for f in model.suppressed)
                    + "</ol></details>")
    body.append('<div class="details" aria-live="polite"></div></aside>')
    if graph is not None:
        body.append("</div>\n")
    return head + "".join(body) + "</section>\n"


def _finding(model: int, index: int, f: Finding, profiles: list[Mapping[str, Any]] | None) -> str:
    where = "/".join(f.path)
    evidence = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(_setting(v))}</dd></div>"
                       for k, v in f.evidence.items())
    location = (f'<p class="location">built at <code>{_e(f.location["file"])}:{f.location["line"]}</code></p>'
                if f.location else "")
    plots = _plots(f, profiles or [])
    return (f'<li class="finding sev-{f.severity.value}" data-model="{model}" data-finding="{index}" '
            f'data-finding-layer="{_e(where)}" data-rule="{_e(f.rule)}" tabindex="0" role="button" '
            f'aria-label="{_e(f.rule)} {f.severity.value} at {_e(where)}">'
            f'<p class="finding-head"><span class="sev">{f.severity.value}</span> '
            f'<strong>{_e(f.rule)}</strong> {_e(f.name)} · <code>{_e(f.layer or "model")}</code>'
            + (f" ({_e(f.layer_class)})" if f.layer_class else "")
            + f' <span class="kind">{_e(" + ".join(f.kind))}</span></p>'
            f'<p class="message">{_e(f.message)}</p><p class="fix"><strong>Fix:</strong> {_e(f.fix)}</p>'
            + location + _related(f)
            + (f'<details class="evidence"><summary>evidence</summary><dl>{evidence}</dl></details>'
               if evidence else "")
            + plots + "</li>")


def _related(f: Finding) -> str:
    """The findings of the same cause, one line each, under their primary."""
    if not f.related:
        return ""
    items = "".join(
        f'<li class="sev-{r.severity.value}" data-related-layer="{_e("/".join(r.path))}" '
        f'data-rule="{_e(r.rule)}"><strong>{_e(r.rule)}</strong> {_e(r.name)} · '
        f'<code>{_e("/".join(r.path[1:]) or r.layer or "model")}</code>: {_e(r.message)}</li>'
        for r in f.related)
    return (f'<details class="related"><summary>{len(f.related)} related finding'
            f'{"s" * (len(f.related) != 1)} (same cause)</summary><ul>{items}</ul></details>')


# --------------------------------------------------------------------------- |change| plots

PLOT_W, PLOT_H, PAD_L, PAD_B, PAD_T = 200, 100, 34, 22, 8


def _plots(f: Finding, profiles: list[Mapping[str, Any]]) -> str:
    """Per padding side probed, a bar per position of |change| at the culprit's output,
    padded positions shaded and labelled; post and pre side by side."""
    if not profiles or "dynamic" not in f.kind:
        return ""
    # scaled to the largest change at a valid position (the leak); padded bars are clipped
    top = max((v for p in profiles for v, ok in zip(p["change"], p["valid"]) if ok and v is not None),
              default=0.0) or max((v for p in profiles for v in p["change"] if v is not None),
                                  default=0.0) or 1.0
    figures = "".join(_plot(p, top, f.layer or "the model") for p in profiles)
    return f'<div class="profiles" aria-label="per-position change">{figures}</div>'


def _plot(profile: Mapping[str, Any], top: float, layer: str) -> str:
    change, valid = profile["change"], profile["valid"]
    n = len(change)
    inner_w, inner_h = PLOT_W - PAD_L - 4, PLOT_H - PAD_B - PAD_T
    step = inner_w / max(n, 1)
    shapes = []
    for i, (value, ok) in enumerate(zip(change, valid)):
        x = PAD_L + i * step
        if not ok:
            shapes.append(f'<rect class="padded" x="{x:.1f}" y="{PAD_T}" width="{step:.1f}" '
                          f'height="{inner_h}"><title>position {i}: padded</title></rect>')
        height = inner_h if value is None else inner_h * min(value / top, 1.0)
        label = "not finite" if value is None else f"{value:.4g}"
        shapes.append(f'<rect class="bar{" bar-valid" if ok else " bar-padded"}" '
                      f'x="{x + step * 0.15:.1f}" y="{PAD_T + inner_h - height:.1f}" '
                      f'width="{step * 0.7:.1f}" height="{height:.1f}">'
                      f'<title>position {i} ({"valid" if ok else "padded"}): |change| {label}</title></rect>')
    worst = max(((v if v is not None else float("inf")), i) for i, v in enumerate(change) if valid[i]) \
        if any(valid) else (0.0, -1)
    axis = (f'<line class="axis" x1="{PAD_L}" y1="{PAD_T + inner_h}" x2="{PLOT_W - 4}" y2="{PAD_T + inner_h}"/>'
            f'<text class="tick" x="{PAD_L - 4}" y="{PAD_T + 8}" text-anchor="end">{top:.3g}</text>'
            f'<text class="tick" x="{PAD_L - 4}" y="{PAD_T + inner_h}" text-anchor="end">0</text>'
            f'<text class="tick" x="{PAD_L}" y="{PLOT_H - 6}">0</text>'
            f'<text class="tick" x="{PLOT_W - 4}" y="{PLOT_H - 6}" text-anchor="end">{n - 1}</text>'
            f'<text class="tick" x="{PAD_L + inner_w / 2:.1f}" y="{PLOT_H - 6}" text-anchor="middle">position</text>')
    side = profile["padding"]
    caption = (f"{side}-padding, sample {profile['sample']}: |change| at the output of "
               f"{_e(layer)}; shaded = padded positions (their bars clipped at the top)"
               + (f"; largest valid change {worst[0]:.4g} at position {worst[1]}" if worst[1] >= 0 else ""))
    return (f'<figure class="profile" data-padding="{side}"><svg viewBox="0 0 {PLOT_W} {PLOT_H}" '
            f'width="{PLOT_W}" height="{PLOT_H}" role="img" aria-label="{caption}">'
            + "".join(shapes) + axis + f"</svg><figcaption>{caption}</figcaption></figure>")


# --------------------------------------------------------------------------- helpers


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _script_json(element_id: str, value: Any) -> str:
    """`value` as JSON in a script element; `<` escaped so no string can end the element."""
    text = json.dumps(value, indent=None, ensure_ascii=False, separators=(",", ":"))
    return (f'<script type="application/json" id="{element_id}">'
            + text.replace("<", "\\u003c") + "</script>\n")
