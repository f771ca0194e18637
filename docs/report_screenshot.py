"""Regenerate docs/report.png: the HTML report of the shipped conv_tagger example.

    pip install -e ".[browser]" && apt-get install chromium
    python docs/report_screenshot.py

Runs the CLI as a user would (`--format html --output` into a temporary
folder), opens the page in headless Chromium and saves a screenshot of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        page_path = Path(folder) / "report.html"
        subprocess.run([sys.executable, "-m", "maskcheck", "fixtures/models/conv_tagger.keras",
                        "--format", "html", "--output", str(page_path)], cwd=ROOT,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=False)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_path.as_uri())
            page.wait_for_selector('html[data-rendered="true"]', state="attached")
            page.click("summary")  # fold the legend: the picture is about the graph
            page.click('.finding[data-finding="0"] .finding-head')  # select the culprit
            page.screenshot(path=str(ROOT / "docs" / "report.png"), full_page=True)
            browser.close()
    print(ROOT / "docs" / "report.png")


if __name__ == "__main__":
    main()
