"""The HTML report in a real browser (SPEC 6b): Debian's Chromium, headless, via Playwright.

Opt-in group: ``pytest -m browser`` (`.ci/run` installs chromium and the
`browser` extra and runs it). Each test opens a report from disk, waits for
the page to say it has drawn (``<html data-rendered="true">``) and checks
the rendered DOM through the stable hooks: `data-layer`, `data-state`,
`data-edge-state`. Every request the page makes is recorded; only the file
itself may be loaded. Screenshots go to pytest's tmp folder, or to
``$MASKCHECK_SCREENSHOTS`` when set (CI keeps them as artifacts).

Set ``MASKCHECK_CHROMIUM`` to use another Chromium binary.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).parent.parent / "fixtures" / "models"
CHROMIUM = os.environ.get("MASKCHECK_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
#: what a headless Chromium needs on a machine with no network (and as root)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'maskcheck[browser]'")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


class Page:
    """One opened report, with every request and script error it caused."""

    def __init__(self, browser, url: str, color_scheme: str = "light") -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000}, color_scheme=color_scheme)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(url)
        self.root = self.page
        self.url = url

    def wait_drawn(self, frame=None) -> None:
        root = frame or self.page
        root.wait_for_selector('html[data-rendered="true"]', state="attached", timeout=15000)
        self.root = root
        assert not self.errors, self.errors

    def attr(self, selector: str, name: str) -> str | None:
        return self.root.get_attribute(selector, name)

    def states(self, section: int) -> dict[str, str]:
        return self.root.eval_on_selector_all(
            f'section[data-model="{section}"] .node[data-layer]',
            "els => Object.fromEntries(els.map(e => [e.dataset.layer, e.dataset.state]))")

    def edges(self, section: int) -> dict[str, str]:
        return self.root.eval_on_selector_all(
            f'section[data-model="{section}"] [data-edge-state]',
            "els => Object.fromEntries(els.map(e => [e.dataset.from + ' > ' + e.dataset.to,"
            " e.dataset.edgeState]))")

    def only_itself_loaded(self) -> None:
        others = [u for u in self.requests if u != self.url and not u.startswith(("data:", "about:"))]
        assert not others, f"the page made requests: {others}"

    def screenshot(self, name: str, tmp_path: Path) -> Path:
        folder = Path(os.environ.get("MASKCHECK_SCREENSHOTS") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000  # a real picture, not an empty page
        return path


def _cli_report(tmp_path: Path, *models: str, name: str = "report.html", mode: str = "all") -> Path:
    """`maskcheck MODELS --format html --output FILE`, run as a user runs it."""
    import subprocess

    out = tmp_path / name
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "maskcheck", *[str(FIXTURES / m) for m in models], "--mode", mode,
         "--format", "html", "--output", str(out)], capture_output=True, text=True, env=env,
        timeout=600)
    assert result.returncode in (0, 1), result.stderr
    return out


@pytest.fixture(scope="module")
def leak_and_clean(tmp_path_factory) -> Path:
    """The report of a leaking model (conv_tagger: Conv1D drops the Embedding's mask) and a
    clean one (masked_bilstm), both probed."""
    return _cli_report(tmp_path_factory.mktemp("report"), "conv_tagger.keras", "masked_bilstm.keras")


def test_leaking_and_clean_models_from_disk(browser, leak_and_clean: Path, tmp_path: Path) -> None:
    page = Page(browser, leak_and_clean.as_uri())
    page.wait_drawn()
    leaking = page.states(0)
    # the conv, and the LSTM after it that has no mask left (a culprit of its own)
    culprits = {"conv_tagger/conv", "conv_tagger/lstm"}
    assert {leaking[layer] for layer in culprits} == {"leak"}
    assert {s for layer, s in leaking.items() if layer not in culprits} == {"ok"}
    edges = page.edges(0)
    assert edges["conv_tagger/conv > conv_tagger/lstm"] == "unmasked"  # after the dropped mask
    assert edges["conv_tagger/embedding > conv_tagger/conv"] == "masked"
    clean = page.states(1)
    assert clean and set(clean.values()) == {"ok"}
    assert page.edges(1)["masked_bilstm/masking > masked_bilstm/bilstm"] == "masked"
    assert page.root.locator('section[data-model="0"] figure.profile').count() == 4  # post, pre x 2
    page.only_itself_loaded()
    page.screenshot("leak_and_clean.png", tmp_path)


def test_finding_and_node_select_each_other(browser, leak_and_clean: Path) -> None:
    page = Page(browser, leak_and_clean.as_uri())
    page.wait_drawn()
    finding = page.root.locator('section[data-model="0"] .finding').first
    finding.click()
    selected = page.root.locator('section[data-model="0"] .node.selected')
    assert selected.count() == 1 and selected.get_attribute("data-layer") == "conv_tagger/conv"
    page.root.locator('section[data-model="0"] .node[data-layer="conv_tagger/embedding"]').click()
    assert page.root.locator('section[data-model="0"] .finding.selected').count() == 0
    page.root.locator('section[data-model="0"] .node[data-layer="conv_tagger/lstm"]').click()
    assert page.root.locator('section[data-model="0"] .finding.selected').count() == 1  # MC102
    page.root.locator('section[data-model="0"] .node[data-layer="conv_tagger/conv"]').click()
    picked = page.root.locator('section[data-model="0"] .finding.selected')
    assert picked.count() == 1  # MC102, with MC101 at the same conv folded under it
    assert picked.locator('[data-related-layer="conv_tagger/conv"]').count() == 1
    assert "conv" in page.root.inner_text('section[data-model="0"] .details')


def test_dark_and_light_themes(browser, leak_and_clean: Path) -> None:
    def background(scheme: str) -> str:
        page = Page(browser, leak_and_clean.as_uri(), color_scheme=scheme)
        page.wait_drawn()
        return page.page.evaluate("getComputedStyle(document.body).backgroundColor")

    light, dark = background("light"), background("dark")
    assert light == "rgb(255, 255, 255)" and dark != light
    page = Page(browser, leak_and_clean.as_uri(), color_scheme="light")
    page.wait_drawn()
    page.page.click(".theme-toggle")  # auto -> light
    page.page.click(".theme-toggle")  # light -> dark
    assert page.page.evaluate("getComputedStyle(document.body).backgroundColor") == dark


def test_notebook_display_renders_the_same_picture(browser, tmp_path: Path) -> None:
    import keras

    import maskcheck

    model = keras.saving.load_model(FIXTURES / "conv_tagger.keras")
    report = maskcheck.check(model)
    host = tmp_path / "notebook.html"  # what Jupyter does with _repr_html_: put it in its page
    host.write_text("<!DOCTYPE html><html><body><h1>cell output</h1>" + report._repr_html_()
                    + "</body></html>", encoding="utf-8")
    page = Page(browser, host.as_uri())
    page.page.wait_for_selector("iframe.maskcheck-report")
    frame = page.page.frame_locator("iframe.maskcheck-report")
    frame.locator('html[data-rendered="true"]').wait_for(state="attached", timeout=15000)
    root = page.page.frames[1]
    page.root = root
    assert page.states(0)["conv_tagger/conv"] == "leak"
    assert page.edges(0)["conv_tagger/conv > conv_tagger/lstm"] == "unmasked"
    assert not page.errors, page.errors
    page.only_itself_loaded()
    page.screenshot("notebook.png", tmp_path)


def test_large_models_collapse_and_expand(browser, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    from static_bench import residual_chain

    import maskcheck
    from maskcheck.reporters.html import render

    report = maskcheck.check(residual_chain(1000), mode="static")
    path = tmp_path / "residual.html"
    path.write_text(render(report), encoding="utf-8")
    assert path.stat().st_size < 3_000_000
    page = Page(browser, path.as_uri())
    page.wait_drawn()
    drawn = page.root.locator(".node").count()
    assert drawn < 20  # 1,000 layers: the first block and one node for the 498 more
    group = page.root.locator(".node[data-group]").first
    assert "498 more identical blocks" in group.text_content()
    group.click()
    page.root.wait_for_function("document.querySelectorAll('.node').length > 900", timeout=60000)
    assert page.root.locator('.cluster[data-group^="r:"]').count() == 1
    assert set(page.edges(0).values()) <= {"masked", "unmasked"}
    page.only_itself_loaded()


def test_nested_model_collapses_and_expands(browser, tmp_path: Path) -> None:
    import keras

    import maskcheck
    from maskcheck.reporters.html import render

    inner_in = keras.Input((None, 8))
    inner = keras.Model(inner_in, keras.layers.Conv1D(8, 3, padding="same", name="conv")(inner_in),
                        name="encoder")
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8, mask_zero=True, name="embedding")(x)
    model = keras.Model(x, keras.layers.Dense(2, name="head")(inner(h)), name="outer")
    path = tmp_path / "nested.html"
    path.write_text(render(maskcheck.check(model, mode="static")), encoding="utf-8")
    page = Page(browser, path.as_uri())
    page.wait_drawn()
    assert page.states(0)["outer/encoder/conv"] == "leak"  # drawn inside its model's frame
    page.root.click('.cluster[data-group="g:outer/encoder"] .cluster-label')
    folded = page.root.locator('.node[data-group="g:outer/encoder"]')
    assert folded.get_attribute("data-layer") == "outer/encoder"
    assert folded.get_attribute("data-state") == "leak"  # the worst state inside it
    assert "outer/encoder/conv" not in page.states(0)
    assert page.edges(0)["outer/encoder > outer/head"] == "unmasked"
    folded.click()
    assert page.states(0)["outer/encoder/conv"] == "leak"
    page.only_itself_loaded()
