"""Reporters turn a Report into text; they never decide exit codes.

Each module exposes `render(report) -> str`. The table maps `--format`
names to module paths so that choosing one imports only that reporter.
"""

from __future__ import annotations

import importlib
from typing import Callable

from maskcheck.finding import Report

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
