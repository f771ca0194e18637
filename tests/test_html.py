"""The HTML report (SPEC 6b) without a browser: the page, its data, the graph it draws.

What a browser shows is in tests/test_browser.py (opt-in group `-m browser`);
here: the reporter's contract, that the page is self-contained, the embedded
data, and what the static view says about real models (edge states, mask
roles, nested models, repeated blocks, |change| profiles).
"""

from __future__ import annotations

import html as html_lib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from maskcheck.finding import Finding, ModelReport, Report, Severity, TargetError
from maskcheck.reporters import get_reporter
from maskcheck.reporters.graphview import EXPAND_MAX_NODES, REPEAT_MIN_NODES, prepare
from maskcheck.reporters.html import embedded_data, notebook_frame, render

try:  # tests/ may or may not be a package; work either way
    from tests.sample_report import TAGGER_VIEW, sample_report
except ImportError:  # pragma: no cover
    from sample_report import TAGGER_VIEW, sample_report

FIXTURES = Path(__file__).parent.parent / "fixtures" / "models"


# --- the reporter's contract -------------------------------------------------------


def test_render_is_the_html_reporter_and_returns_a_page() -> None:
    page = get_reporter("html")(sample_report())
    assert get_reporter("html") is render
    assert isinstance(page, str) and page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")


def test_the_embedded_report_is_the_json_report() -> None:
    report = sample_report()
    assert embedded_data(render(report))["report"] == json.loads(get_reporter("json")(report))


def test_rendering_decides_no_exit_status() -> None:
    # the same page whatever fail_on says, but for the header's own words about it
    strict, lenient = render(sample_report("info")), render(sample_report("never"))
    assert 'data-exit-status="2"' in strict and 'data-exit-status="2"' in lenient
    assert embedded_data(strict)["report"]["models"] == embedded_data(lenient)["report"]["models"]


def test_page_is_self_contained() -> None:
    page = render(sample_report())
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"@import|url\((?!#)", page)
    # the only address in the page is the SVG namespace, which is a name, not a request
    assert set(re.findall(r"https?://[^\s\"')]+", page)) <= {"http://www.w3.org/2000/svg"}


def test_no_string_in_the_data_can_end_its_script_element() -> None:
    hostile = "</script><script>alert(1)</script><!--"
    report = Report((ModelReport("m.keras", "m", findings=(Finding(
        "MC101", "mask-dropped", Severity.WARNING, ("static",), hostile, "X", ("m", hostile),
        hostile, hostile),)),))
    page = render(report)
    assert embedded_data(page)["report"]["models"][0]["findings"][0]["message"] == hostile
    assert "<script>alert(1)" not in page


def test_target_errors_are_their_one_line_reason() -> None:
    page = render(sample_report())
    lines = [line for line in page.splitlines() if 'class="target-error"' in line]
    assert len(lines) == 1
    assert "ValueError</strong>: Unknown layer: &#x27;CustomAttention&#x27;" in lines[0]


def test_header_has_summary_and_settings() -> None:
    page = render(sample_report())
    assert "3 models checked" in page and "exit status <strong>2</strong>" in page
    for label in ("mode", "padding", "seed", "fail on"):
        assert f"<dt>{label}</dt>" in page


def test_states_carry_words_and_patterns_not_only_colour() -> None:
    page = render(sample_report())
    for state in ("masked", "unmasked", "mismatched", "clean", "leak", "suspect"):
        assert f"<strong>{state}</strong>:" in page  # the legend names each state in words
    assert "dashed line" in page and "thick border, marked LEAK" in page
    css = page[page.index("<style>"):page.index("</style>")]
    assert "color-scheme: light dark" in css and 'html[data-theme="dark"] { color-scheme: dark; }' in css
    assert css.count("light-dark(") >= 10  # each colour has a light and a dark value


def test_profiles_are_plotted_post_and_pre_side_by_side() -> None:
    page = render(sample_report())
    figures = re.findall(r'<figure class="profile" data-padding="(\w+)"', page)
    assert figures == ["post", "pre"]
    assert "largest valid change 0.43 at position 6" in page


def test_notebook_display_is_the_page_in_an_iframe() -> None:
    report = sample_report()
    frame = report._repr_html_()
    assert frame.startswith("<iframe") and 'sandbox="allow-scripts"' in frame
    srcdoc = re.search(r'srcdoc="([^"]*)"', frame).group(1)
    assert html_lib.unescape(srcdoc) == render(report, compact=True)
    one = report.models[0]._repr_html_()
    assert embedded_data(html_lib.unescape(re.search(r'srcdoc="([^"]*)"', one).group(1)))[
        "report"]["summary"]["models"] == 1
    assert notebook_frame(report) == frame


def test_import_maskcheck_stays_light() -> None:
    code = ("import sys, maskcheck\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow')"
            " or m == 'maskcheck.reporters.html')\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the graph data (pure) ------------------------------------------------------------


def test_node_states_follow_the_findings() -> None:
    report = sample_report()
    graph = prepare(TAGGER_VIEW, report.models[0].findings)
    states = {n["layer"]: n["state"] for n in graph["nodes"]}
    assert states == {"tagger/tokens": "ok", "tagger/embedding": "ok", "tagger/masking": "suspect",
                      "tagger/encoder/conv1d": "leak", "tagger/flat": "leak", "tagger/dense": "ok"}
    assert not any(g["collapsed"] for g in graph["groups"])  # a small graph is drawn whole


def _chain_view(blocks: int) -> dict:
    """Input, then `blocks` residual blocks (Dense, Add): what `model_view` gives for one."""
    nodes = [{"id": "n0", "layer": "m/x", "name": "x", "class": "InputLayer", "kind": "input",
              "group": None, "mask": "none", "shape": "(None, 8, 4)"}]
    edges, last = [], 0
    for b in range(blocks):
        d, a = len(nodes), len(nodes) + 1
        nodes += [{"id": f"n{d}", "layer": f"m/dense_{b}", "name": f"dense_{b}", "class": "Dense",
                   "kind": "layer", "group": None, "mask": "propagates", "shape": "(None, 8, 4)"},
                  {"id": f"n{a}", "layer": f"m/add_{b}", "name": f"add_{b}", "class": "Add",
                   "kind": "layer", "group": None, "mask": "propagates", "shape": "(None, 8, 4)"}]
        edges += [{"from": f"n{last}", "to": f"n{d}", "state": "masked", "shape": ""},
                  {"from": f"n{last}", "to": f"n{a}", "state": "masked", "shape": ""},
                  {"from": f"n{d}", "to": f"n{a}", "state": "masked", "shape": ""}]
        last = a
    return {"nodes": nodes, "edges": edges, "outputs": [f"n{last}"], "groups": [], "profiles": {}}


def test_repeated_blocks_collapse_but_the_first_stays_drawn() -> None:
    graph = prepare(_chain_view(30), ())
    (repeat,) = [g for g in graph["groups"] if g["kind"] == "repeat"]
    assert repeat["collapsed"] and repeat["layers"] == 29 * 2
    inside = {n["name"] for n in graph["nodes"] if n["group"] == repeat["id"]}
    assert "dense_0" not in inside and "add_0" not in inside and "add_29" in inside


def test_a_block_with_a_finding_is_never_collapsed() -> None:
    culprit = Finding("MC102", "unmasked-mixing", Severity.ERROR, ("static",), "dense_15", "Dense",
                      ("m", "dense_15"), "msg.", "fix.")
    graph = prepare(_chain_view(30), (culprit,))
    node = next(n for n in graph["nodes"] if n["name"] == "dense_15")
    assert node["state"] == "leak" and node["group"] is None
    repeats = [g for g in graph["groups"] if g["kind"] == "repeat"]
    assert len(repeats) == 2  # the blocks before the culprit's and those after it


def test_nested_models_start_folded_only_in_large_graphs_and_never_over_a_finding() -> None:
    view = _chain_view(EXPAND_MAX_NODES)  # more nodes than a page draws unfolded
    view["groups"] = [{"id": "g:m/enc", "layer": "m/enc", "name": "enc", "kind": "model", "parent": None}]
    for node in view["nodes"][1:5]:
        node["group"] = "g:m/enc"
    nested = lambda graph: next(g for g in graph["groups"] if g["id"] == "g:m/enc")  # noqa: E731
    assert nested(prepare(view, ()))["collapsed"]
    inside = Finding("MC102", "unmasked-mixing", Severity.ERROR, ("static",), "dense_1", "Dense",
                     ("m", "dense_1"), "msg.", "fix.")
    assert not nested(prepare(view, (inside,)))["collapsed"]
    small = _chain_view(3)
    small["groups"] = view["groups"]
    small["nodes"][1]["group"] = "g:m/enc"
    assert not nested(prepare(small, ()))["collapsed"]


def test_small_graphs_are_not_collapsed() -> None:
    blocks = (REPEAT_MIN_NODES - 1) // 2 - 1
    assert not [g for g in prepare(_chain_view(blocks), ())["groups"] if g["kind"] == "repeat"]


# --- real models: what the static view says -------------------------------------------------


keras = pytest.importorskip("keras")


def _check(model, mode: str = "static") -> ModelReport:
    import maskcheck

    return maskcheck.check(model, mode=mode).models[0]


def _edges(view: dict) -> dict[tuple[str, str], str]:
    layer = {n["id"]: n["layer"].split("/")[-1] for n in view["nodes"]}
    return {(layer[e["from"]], layer[e["to"]]): e["state"] for e in view["edges"]}


def test_dropped_mask_makes_the_next_edge_unmasked() -> None:
    model = keras.saving.load_model(FIXTURES / "conv_tagger.keras")
    result = _check(model)
    view = result.view
    roles = {n["name"]: n["mask"] for n in view["nodes"]}
    assert roles["embedding"] == "creates" and roles["conv"] == "drops"
    edges = _edges(view)
    assert edges[("embedding", "conv")] == "masked"
    assert edges[("conv", "lstm")] == "unmasked"
    graph = prepare(view, result.findings)
    assert {n["name"]: n["state"] for n in graph["nodes"]}["conv"] == "leak"
    assert "view" not in json.dumps(result.to_dict())  # the JSON report is unchanged


def test_clean_model_has_only_masked_or_clean_edges_after_its_mask() -> None:
    model = keras.saving.load_model(FIXTURES / "masked_bilstm.keras")
    result = _check(model)
    assert not result.findings
    edges = _edges(result.view)
    assert edges[("masking", "bilstm")] == "masked"
    assert edges[("bilstm", "score")] == "clean"
    assert all(n["state"] == "ok" for n in prepare(result.view, result.findings)["nodes"])


def test_a_mask_that_does_not_line_up_is_mismatched() -> None:
    from maskcheck.rules.mc103_mask_shape_mismatch import MaskShapeMismatch
    from maskcheck.testing import build_case

    halve = next(c for c in MaskShapeMismatch.INVALID if getattr(c, "at", "") == "halve")
    edges = _edges(_check(build_case(halve)).view)
    assert edges[("halve", "lstm")] == "mismatched"
    softmax = next(c for c in MaskShapeMismatch.INVALID if getattr(c, "at", "") == "softmax_time")
    assert _edges(_check(build_case(softmax)).view)[("embedding", "softmax_time")] == "mismatched"


def test_nested_models_become_groups() -> None:
    inner_in = keras.Input((None, 8))
    inner = keras.Model(inner_in, keras.layers.Conv1D(8, 3, padding="same", name="conv")(inner_in),
                        name="encoder")
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8, mask_zero=True, name="embedding")(x)
    y = keras.layers.Dense(2, name="head")(inner(h))
    result = _check(keras.Model(x, y, name="outer"))
    groups = {g["id"]: g for g in result.view["groups"]}
    assert "g:outer/encoder" in groups
    conv = next(n for n in result.view["nodes"] if n["layer"].endswith("/conv"))
    assert conv["group"] == "g:outer/encoder" and conv["layer"] == "outer/encoder/conv"
    culprits = {"/".join(f.path) for f in result.findings if f.severity is not Severity.INFO}
    assert conv["layer"] in culprits  # findings and nodes share the path


def test_probe_profiles_cover_both_sides() -> None:
    model = keras.saving.load_model(FIXTURES / "conv_tagger.keras")
    result = _check(model, mode="all")
    profiles = result.view["profiles"]["conv_tagger/conv"]
    assert [p["padding"] for p in profiles] == ["post", "pre"]
    for p in profiles:
        assert len(p["change"]) == len(p["valid"]) and 0 in p["valid"] and 1 in p["valid"]
        assert any(c and ok for c, ok in zip(p["change"], p["valid"]))  # valid positions moved
    page = render(Report((result,)))
    # one pair of plots per culprit: the conv, and the LSTM after it that has no mask left
    assert set(result.view["profiles"]) == {"conv_tagger/conv", "conv_tagger/lstm"}
    assert re.findall(r'<figure class="profile" data-padding="(\w+)"', page) == ["post", "pre"] * 2


def test_cli_writes_the_page_only_where_asked(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from maskcheck.cli import main

    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, [str(FIXTURES / "conv_tagger.keras"), "--mode", "static",
                                       "--format", "html", "--output", str(out)])
    assert result.exit_code == 1, result.output
    data = embedded_data(out.read_text(encoding="utf-8"))
    assert data["report"]["models"][0]["status"] == "findings"
    assert data["graph"]["settings"]["mode"] == "static"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_format_html_is_valid_in_pyproject(tmp_path: Path) -> None:
    from maskcheck.config import build_config

    (tmp_path / "pyproject.toml").write_text('[tool.maskcheck]\nformat = "html"\n', encoding="utf-8")
    assert build_config({}, tmp_path).format == "html"
