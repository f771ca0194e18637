"""SPEC section 6 JSON: stable key order, so equal reports give equal bytes."""

from __future__ import annotations

import json

from maskcheck.finding import Report


def render(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
