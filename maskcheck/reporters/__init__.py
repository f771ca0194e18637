"""Reporters turn a Report into text; they never decide exit codes.

Each module exposes `render(report) -> str`. The table maps `--format`
names to module paths so that choosing one imports only that reporter.

Importing this package registers the renderers the values ask for by name
(`maskcheck.renderers`): "json" (`Report.to_json`), "text" (`Report.to_text`,
`str(report)`), "html-notebook" (the
Jupyter `_repr_html_`s) and "graph-view" (`ModelReport.view`). Each is a stub
that imports its reporter module when called.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from maskcheck import renderers
from maskcheck.finding import GraphSummary, Report

REPORTERS = {
    "text": "maskcheck.reporters.text",
    "json": "maskcheck.reporters.json",
    "sarif": "maskcheck.reporters.sarif",
    "github": "maskcheck.reporters.github",
    "junit": "maskcheck.reporters.junit",
    "html": "maskcheck.reporters.html",
}


def get_reporter(fmt: str) -> Callable[[Report], str]:
    return importlib.import_module(REPORTERS[fmt]).render


def _to_json(report: Report) -> str:
    return get_reporter("json")(report)


def _to_text(report: Report) -> str:
    return get_reporter("text")(report)


def _notebook_frame(report: Report) -> str:
    from maskcheck.reporters.html import notebook_frame

    return notebook_frame(report)


def _graph_view(graph: GraphSummary) -> dict[str, Any]:
    from maskcheck.reporters.graphview import model_view

    return model_view(graph)


renderers.register("json", _to_json)
renderers.register("text", _to_text)
renderers.register("html-notebook", _notebook_frame)
renderers.register("graph-view", _graph_view)
