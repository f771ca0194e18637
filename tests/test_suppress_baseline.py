"""Units under the CI-adoption workflows: comment parsing, per-layer globs, the
unused-suppression ledger, baseline files and location recording.

The console-script workflows themselves are in tests/test_ci_adoption.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from maskcheck import __version__  # noqa: E402
from maskcheck.adoption.baseline import BaselineError, apply_baseline, read_baseline, render_baseline  # noqa: E402
from maskcheck.finding import Finding, ModelReport, Report  # noqa: E402
from maskcheck.adoption.locations import Site, display_path  # noqa: E402
from maskcheck.adoption.suppress import Suppressor, layer_globs, parse_comment, read_comments  # noqa: E402


def finding(rule: str = "MC102", path: tuple[str, ...] = ("tagger", "conv1d"), message: str = "m") -> Finding:
    return Finding(rule=rule, name="n", severity="error", kind=("static",), layer=path[-1],
                   layer_class="Conv1D", path=path, message=message, fix="f")


# --- comments ------------------------------------------------------------------


@pytest.mark.parametrize("text, codes, unknown", [
    ("# maskcheck: ignore", None, ()),
    ("#maskcheck:ignore[MC101]", {"MC101"}, ()),
    ("# MASKCHECK: Ignore[mc101, MC102]", {"MC101", "MC102"}, ()),
    ("# maskcheck: ignore[MC10]", {"MC101", "MC102", "MC103", "MC104", "MC105", "MC106", "MC107",
                                    "MC108", "MC109"}, ()),
    ("# maskcheck: ignore[mask-dropped]", {"MC101"}, ()),
    ("# noqa: E501  # maskcheck: ignore[MC9]", set(), ("MC9",)),
])
def test_comment_codes_resolve_like_select(text, codes, unknown) -> None:
    _entries, resolved, bad = parse_comment(text)
    assert (None if resolved is None else set(resolved)) == codes
    assert bad == unknown


def test_other_comments_are_not_ours() -> None:
    assert parse_comment("# noqa: E501") is None
    assert parse_comment("# maskcheck is great") is None


def test_only_real_comments_count_not_strings(tmp_path) -> None:
    source = tmp_path / "m.py"
    source.write_text('x = "# maskcheck: ignore"\n'
                      'y = 1  # maskcheck: ignore[MC101]\n', encoding="utf-8")
    comments = read_comments(str(source))
    assert list(comments) == [2]
    assert comments[2].covers("MC101") and not comments[2].covers("MC102")


# --- per-layer-ignores and the ledger ----------------------------------------------


def test_globs_match_with_and_without_the_model_name() -> None:
    assert layer_globs(("tagger", "encoder", "conv1d")) == ("tagger/encoder/conv1d", "encoder/conv1d")
    suppressor = Suppressor(per_layer_ignores=(("encoder/*", frozenset({"MC102"})),))
    kept, suppressed = suppressor.apply([finding(path=("tagger", "encoder", "conv1d")),
                                         finding(path=("tagger", "conv1d")),
                                         finding("MC101", path=("tagger", "encoder", "conv1d"))], {})
    assert [f.path for f in kept] == [("tagger", "conv1d"), ("tagger", "encoder", "conv1d")]
    assert [(f.rule, f.suppressed_by) for f in suppressed] == [("MC102", "per-layer-ignores")]


def test_comment_on_any_line_of_the_call_suppresses(tmp_path) -> None:
    source = tmp_path / "m.py"
    source.write_text("x = Conv1D(\n    8, 3,\n)  # maskcheck: ignore[MC102]\n", encoding="utf-8")
    site = Site(str(source), 1, 3)
    suppressor = Suppressor()
    kept, suppressed = suppressor.apply([finding(), finding("MC101")], {("tagger", "conv1d"): site})
    assert [f.rule for f in kept] == ["MC101"]
    assert [(f.rule, f.suppressed_by) for f in suppressed] == [("MC102", "comment")]
    # a site on other lines is not covered
    kept, _ = Suppressor().apply([finding()], {("tagger", "conv1d"): Site(str(source), 1, 2)})
    assert [f.rule for f in kept] == ["MC102"]


def test_unused_lists_idle_codes_that_ran_only(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "m.py"
    source.write_text("a = 1  # maskcheck: ignore[MC102,MC301]\n"
                      "b = 2  # maskcheck: ignore[MC104]\n"
                      "c = 3  # maskcheck: ignore\n"
                      "d = 4  # maskcheck: ignore[MC999]\n"
                      "def other_factory():  # not run: its comments are left alone\n"
                      "    return 5  # maskcheck: ignore[MC102]\n", encoding="utf-8")
    suppressor = Suppressor(per_layer_ignores=(("nothing/*", frozenset({"MC101"})),
                                               ("also/*", frozenset({"MC301"}))),
                            pyproject=str(tmp_path / "pyproject.toml"))
    ran = {"MC101", "MC102", "MC104"}  # a static-only run
    suppressor.note_checked([Site(str(source), 1, 1, scope=(1, 4))], ran)
    suppressor.apply([finding()], {("tagger", "conv1d"): Site(str(source), 1, 1)})
    unused = [(u.file, u.line, u.codes) for u in suppressor.unused()]
    # line 1 matched MC102 (MC301 did not run); line 2 and 3 matched nothing; line 4 names
    # an unknown code; the MC301 entry could not have matched in a static run
    assert unused == [("m.py", 2, ("MC104",)), ("m.py", 3, ()), ("m.py", 4, ("MC999",)),
                      ("pyproject.toml", None, ("MC101",))]


# --- baselines -------------------------------------------------------------------------


def report_with(*findings: Finding, target: str = "pkg.tagger:build") -> Report:
    return Report((ModelReport(target, "tagger", findings),))


def test_baseline_is_sorted_keyed_without_lines_or_numbers(tmp_path) -> None:
    located = Finding(rule="MC301", name="padding-leak", severity="error", kind=("dynamic",),
                      layer="lstm", layer_class="LSTM", path=("tagger", "lstm"), message="x",
                      fix="f", evidence={"max_abs_diff": 0.4}, location={"file": "t.py", "line": 3})
    text = render_baseline(report_with(finding("MC102"), located, finding("MC101")))
    data = json.loads(text)
    assert data["maskcheck_baseline"] == 1 and data["version"] == __version__
    assert [e["rule"] for e in data["findings"]] == ["MC101", "MC102", "MC301"]
    assert all(set(entry) == {"rule", "target", "path"} for entry in data["findings"])
    assert "t.py" not in text and "max_abs_diff" not in text
    assert text.count("\n") == len(data["findings"]) + 6  # one entry per line


def test_baseline_is_a_multiset_and_counts_fixed(tmp_path) -> None:
    path = tmp_path / "b.json"
    path.write_text(render_baseline(report_with(finding(), finding(message="other"), finding("MC101"))))
    baseline = read_baseline(str(path))
    assert baseline[("MC102", "pkg.tagger:build", ("tagger", "conv1d"))] == 2
    # one of the two MC102 is left, plus a new MC105; MC101 is fixed
    report = apply_baseline(report_with(finding(), finding("MC105")), baseline)
    model = report.models[0]
    assert [f.rule for f in model.findings] == ["MC105"]
    assert [(f.rule, f.suppressed_by) for f in model.suppressed] == [("MC102", "baseline")]
    assert report.summary()["baselined"] == 1 and report.summary()["fixed"] == 2
    assert report.exit_code() == 1


def test_file_targets_match_however_they_are_spelled(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "b.json"
    path.write_text(render_baseline(report_with(finding(), target="models/x.keras")))
    for spelling in ("./models/x.keras", str(tmp_path / "models" / "x.keras"), "models//x.keras"):
        report = apply_baseline(report_with(finding(), target=spelling), read_baseline(str(path)))
        assert report.models[0].findings == () and report.summary()["fixed"] == 0, spelling


def test_only_checked_targets_can_have_fixed_entries(tmp_path) -> None:
    path = tmp_path / "b.json"
    both = Report((ModelReport("a:build", "a", (finding(),)), ModelReport("b:build", "b", (finding(),))))
    path.write_text(render_baseline(both))
    baseline = read_baseline(str(path))
    assert apply_baseline(report_with(finding(), target="a:build"), baseline).baseline_fixed == 0
    # a finding now suppressed by a comment or per-layer-ignores is not "fixed" either
    quiet = Report((ModelReport("a:build", "a", (),
                                suppressed=(replace(finding(), suppressed_by="comment"),)),))
    assert apply_baseline(quiet, baseline).baseline_fixed == 0
    assert apply_baseline(report_with(target="a:build"), baseline).baseline_fixed == 1


def test_an_empty_baseline_reads_back(tmp_path) -> None:
    path = tmp_path / "b.json"
    path.write_text(render_baseline(Report()))
    assert read_baseline(str(path)) == {}


@pytest.mark.parametrize("content, says", [
    ("{", "invalid JSON"),
    ('{"findings": []}', "not a maskcheck baseline"),
    ('{"maskcheck_baseline": 2, "version": "9.9.9", "findings": []}',
     "baseline format 2 .written by maskcheck 9.9.9. is newer.*--write-baseline"),
    ('{"maskcheck_baseline": 0, "version": "0.0.1", "findings": []}',
     "baseline format 0 .written by maskcheck 0.0.1., this maskcheck .* reads format 1; regenerate"),
    ('{"maskcheck_baseline": "1", "findings": []}', 'baseline format "1", .* reads format 1'),
    ('{"maskcheck_baseline": true, "findings": []}', "baseline format true"),
    ('{"maskcheck_baseline": 1, "version": "VERSION", "findings": {}}', "not a list"),
    ('{"maskcheck_baseline": 1, "version": "VERSION", "findings": [{"rule": "MC102"}]}', "entry 1"),
])
def test_bad_baselines_are_one_line_errors(tmp_path, content, says) -> None:
    path = tmp_path / "b.json"
    path.write_text(content.replace("VERSION", __version__))
    with pytest.raises(BaselineError, match=says) as caught:
        read_baseline(str(path))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("version", ["0.0.1", "9.9.9", None])
def test_a_baseline_of_another_version_and_the_same_format_is_applied(tmp_path, version) -> None:
    """Upgrading (or downgrading) maskcheck keeps a baseline: only the format is checked."""
    path = tmp_path / "b.json"
    data = json.loads(render_baseline(report_with(finding(), finding("MC101"))))
    if version is None:
        del data["version"]  # "version" is informational; a file without it is read too
    else:
        data["version"] = version
    assert version != __version__
    path.write_text(json.dumps(data))
    report = apply_baseline(report_with(finding(), finding("MC105")), read_baseline(str(path)))
    assert [f.rule for f in report.models[0].findings] == ["MC105"]
    assert [f.rule for f in report.models[0].suppressed] == ["MC102"]
    assert report.baseline_fixed == 1


def test_missing_baseline_says_how_to_write_one(tmp_path) -> None:
    with pytest.raises(BaselineError, match="--write-baseline"):
        read_baseline(str(tmp_path / "missing.json"))


# --- locations -----------------------------------------------------------------------


def test_display_path_is_relative_inside_the_working_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg").mkdir()
    assert display_path(str(tmp_path / "pkg" / "m.py")) == "pkg/m.py"
    assert display_path("/somewhere/else/m.py") == "/somewhere/else/m.py"


def test_recording_is_scoped_and_skips_rebuilt_layers(tmp_path) -> None:
    import keras
    from keras.src.ops.operation import Operation

    from maskcheck.adoption.locations import record_locations, site_of

    original = Operation.__dict__["__new__"]
    x = keras.Input((None,), dtype="int32")
    plain = keras.Model(x, keras.layers.Dense(3)(keras.layers.Embedding(10, 4)(x)))
    plain.save(tmp_path / "m.keras")
    with record_locations():
        with record_locations():  # re-entrant
            inner = keras.layers.Dense(2)
        outer = keras.layers.Dense(2)
        loaded = keras.saving.load_model(tmp_path / "m.keras")
        cloned = keras.models.clone_model(plain)
    assert Operation.__dict__["__new__"].__func__ is original.__func__  # nothing left patched
    here = os.path.realpath(__file__)
    assert site_of(inner).file == here and site_of(outer).file == here
    assert site_of(outer).line == site_of(inner).line + 1
    assert all(site_of(layer) is None for layer in (*plain.layers, *loaded.layers, *cloned.layers))
