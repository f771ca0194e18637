"""The HTML report on large models: render time, page size, and time to draw in a browser.

Not a test: run it by hand (`python benchmarks/html_bench.py`) and read the
numbers against the issue's bounds (draw in under 2 s, a page of a few MB):

* residual_1000: Embedding(mask_zero) then 499 Dense + Add residual blocks
  (1,000 layers); its repeated blocks start collapsed;
* encoder_12: a 12-block keras-hub TransformerEncoder stack (skipped when
  keras-hub is not installed);

For each: the static check, `render(report)` in Python, the page's bytes,
and, when Playwright and Chromium are there (`pip install 'maskcheck[browser]'`,
`apt-get install chromium`), the page's own drawing time (`data-render-ms`,
set by report.js when every graph is laid out and drawn), the wall time from
navigation to drawn, and the time to expand every collapsed block.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def models():
    from static_bench import residual_chain, transformer_encoder_stack

    yield "residual_1000", residual_chain(1000)
    try:
        import keras_hub  # noqa: F401
    except ImportError:
        print("html  encoder_12: keras_hub not installed, skipped")
        return
    yield "encoder_12", transformer_encoder_stack(12)


def browser_times(page_path: Path) -> tuple[float, float, float] | None:
    """(data-render-ms, navigation-to-drawn ms, expand-all ms), or None without a browser."""
    chromium = os.environ.get("MASKCHECK_CHROMIUM") or shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        started = time.perf_counter()
        page.goto(page_path.as_uri())
        page.wait_for_selector('html[data-rendered="true"]', state="attached")
        wall = (time.perf_counter() - started) * 1000
        drawn = float(page.get_attribute("html", "data-render-ms"))
        before = page.locator(".node").count()
        started = time.perf_counter()
        page.click(".expand-all")
        page.wait_for_function(f"document.querySelectorAll('.node').length != {before}"
                               " || !document.querySelector('.node[data-group]')")
        expand = (time.perf_counter() - started) * 1000
        browser.close()
    return drawn, wall, expand


def main() -> None:
    import maskcheck
    from maskcheck.reporters.html import render

    folder = Path(tempfile.mkdtemp(prefix="maskcheck-html-bench-"))
    try:
        for name, model in models():
            started = time.perf_counter()
            report = maskcheck.check(model, mode="static")
            checked = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            page = render(report)
            rendered = (time.perf_counter() - started) * 1000
            path = folder / f"{name}.html"
            path.write_text(page, encoding="utf-8")
            size = path.stat().st_size
            line = (f"html  {name:<14} layers {len(report.models[0].view['nodes']):>5}  check "
                    f"{checked:7.1f} ms  render {rendered:6.1f} ms  page {size / 1e6:5.2f} MB")
            times = browser_times(path)
            if times is None:
                line += "  (no browser: pip install 'maskcheck[browser]', apt-get install chromium)"
            else:
                drawn, wall, expand = times
                line += (f"  browser: drawn {drawn:6.1f} ms (open to drawn {wall:6.1f} ms, "
                         f"limit 2000; ratio {wall / 2000:.2f})  expand all {expand:7.1f} ms")
            print(line, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
