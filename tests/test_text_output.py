"""The text report as a person reads it: top-down order, related findings, one note per
assumption, what the data said, colour on a terminal, and the CLI's manners around it.

Reports built by hand pin the rendering exactly; real Keras models (built here or
from fixtures/models) show that the engine's reports read the same way. The golden
of the sample report is in tests/test_reporters.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import maskcheck
from maskcheck.assumptions import assumed_clause
from maskcheck.cli import main, use_color
from maskcheck.finding import (Finding, GraphNode, GraphSummary, ModelReport, Report, Severity,
                               TargetError)
from maskcheck.reporters import text

try:  # tests/ may or may not be a package; work either way
    from tests.sample_report import sample_report
except ImportError:  # pragma: no cover
    from sample_report import sample_report

ROOT = Path(__file__).resolve().parent.parent
CONV_TAGGER = ROOT / "fixtures" / "models" / "conv_tagger.keras"  # MC102 + MC101 at conv, MC102 at lstm
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TOKENS = {"tokens": "token ids padded with 0 on either side (the pad_sequences / "
                    "TextVectorization convention)"}


def _finding(rule: str, severity: Severity, *path: str, message: str = "msg.",
             evidence: dict | None = None, related: tuple = ()) -> Finding:
    return Finding(rule, f"name-{rule}", severity, ("static",), path[-1], "Layer", path,
                   message, f"fix {rule} at {'/'.join(path)}.", evidence=evidence, related=related)


def _node(index: int, *path: str) -> GraphNode:
    return GraphNode(index, path, path[-1], "Layer", "input" if index == 0 else "layer", "none", None)


def _codes(rendered: str) -> list[str]:
    """`CODE@path` of each finding line (not fix/evidence/related lines), in order."""
    return [f"{m.group(2)}@{m.group(1)}" for m in
            re.finditer(r"^\S+?:(\S+) \(\w+\): (MC\d+) ", rendered, flags=re.MULTILINE)]


# --- order: the model top-down -------------------------------------------------


GRAPH = GraphSummary(nodes=(_node(0, "m", "tokens"), _node(1, "m", "embedding"),
                            _node(2, "m", "enc", "conv"), _node(3, "m", "enc", "gru"),
                            _node(4, "m", "head")), edges=(), outputs=(4,))
UNORDERED = (
    _finding("MC102", Severity.ERROR, "m", "head"),
    _finding("MC201", Severity.ERROR, "m"),                     # loss level: the model alone
    _finding("MC301", Severity.WARNING, "m", "enc", "gru", "cell"),  # inside the gru node
    _finding("MC104", Severity.INFO, "m", "embedding"),
    _finding("MC103", Severity.WARNING, "m", "ghost"),          # a path the graph lacks
    _finding("MC101", Severity.WARNING, "m", "enc", "conv"),
    _finding("MC108", Severity.ERROR, "m", "enc"),              # a nested model: its first node
)


def test_findings_follow_the_graph_then_unplaced_ones_worst_first() -> None:
    report = Report((ModelReport("m.keras", "m", UNORDERED, graph=GRAPH),))
    assert _codes(text.render(report)) == [
        "MC104@embedding", "MC108@enc", "MC101@enc/conv", "MC301@enc/gru/cell", "MC102@head",
        "MC201@m", "MC103@ghost"]


def test_without_a_graph_the_order_is_worst_first() -> None:
    report = Report((ModelReport("m.keras", "m", UNORDERED),))
    assert _codes(text.render(report)) == [
        f"{f.rule}@{'/'.join(f.path[1:]) or f.layer}" for f in report.models[0].findings]
    assert _codes(text.render(report))[:3] == ["MC102@head", "MC108@enc", "MC201@m"]


def test_models_keep_target_order() -> None:
    first = ModelReport("b.keras", "m", (_finding("MC104", Severity.INFO, "m", "embedding"),), graph=GRAPH)
    second = ModelReport("a.keras", "m", (_finding("MC102", Severity.ERROR, "m", "head"),), graph=GRAPH)
    lines = text.render(Report((first, second))).splitlines()
    assert lines[0].startswith("b.keras:embedding") and lines[2].startswith("a.keras:head")


def _tagger(conv_name: str, lstm_name: str):
    """Embedding(mask_zero) -> Conv1D -> LSTM -> Dense: the conv drops the mask, so both leak."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None,), dtype="int32", name="tokens")
    x = layers.Embedding(50, 8, mask_zero=True, name="embedding")(inputs)
    x = layers.Conv1D(8, 3, padding="same", name=conv_name)(x)
    x = layers.LSTM(8, return_sequences=True, name=lstm_name)(x)
    return keras.Model(inputs, layers.Dense(3, name="head")(x), name="tagger")


@pytest.mark.parametrize("conv_name, lstm_name", [("conv", "lstm"), ("z_conv", "a_lstm")])
def test_a_real_model_reads_top_down_whatever_its_layer_names(conv_name: str, lstm_name: str) -> None:
    rendered = maskcheck.check(_tagger(conv_name, lstm_name), mode="static").to_text()
    lines = [line for line in rendered.splitlines() if " (Conv1D): " in line or " (LSTM): " in line]
    assert len(lines) >= 2, rendered
    conv_last = max(i for i, line in enumerate(lines) if f"{conv_name} (Conv1D)" in line)
    assert all(f"{lstm_name} (LSTM)" in line for line in lines[conv_last + 1:]), rendered
    assert f"{lstm_name} (LSTM)" in lines[-1], rendered


def test_the_conv_tagger_fixture_reads_conv_before_lstm() -> None:
    result = _invoke(CONV_TAGGER, "--mode", "static")
    assert result.exit_code == 1, result.output
    findings = [line for line in result.stdout.splitlines() if re.search(r" MC10\d \[", line)]
    assert [("lstm" if ":lstm " in line else "conv") for line in findings][-1] == "lstm"
    assert sum(":lstm " in line for line in findings) == 1
    assert all(":conv " in line or "related: conv " in line for line in findings[:-1]), result.stdout


# --- related findings --------------------------------------------------------


def _grouped() -> Report:
    related = _finding("MC101", Severity.WARNING, "m", "enc", "conv", message="dropped.")
    primary = _finding("MC102", Severity.ERROR, "m", "enc", "conv", message="mixes.",
                       related=(related,))
    return Report((ModelReport("m.keras", "m", (primary,), graph=GRAPH),))


def test_related_findings_are_indented_under_their_primary_without_their_fix() -> None:
    assert text.render(_grouped()).splitlines() == [
        "m.keras:enc/conv (Layer): MC102 [error] name-MC102 mixes.",
        "    fix: fix MC102 at m/enc/conv.",
        "    related: enc/conv (Layer): MC101 [warning] name-MC101 dropped.",
        "Checked 1 model: 1 error(s), 0 warning(s), 0 info(s) (+1 related).",
    ]


def test_verbose_shows_a_related_findings_own_fix() -> None:
    lines = text.render(_grouped(), verbose=True).splitlines()
    assert lines[3] == "        fix: fix MC101 at m/enc/conv."


def test_the_summary_counts_related_apart_and_says_nothing_when_there_are_none() -> None:
    assert text.render(sample_report()).splitlines()[-1] == (
        "Checked 3 models: 1 error(s), 1 warning(s), 1 info(s) (+1 related), 1 could not be checked.")
    plain = Report((ModelReport("m.keras", "m", (_finding("MC102", Severity.ERROR, "m", "head"),)),))
    assert text.render(plain).splitlines()[-1] == "Checked 1 model: 1 error(s), 0 warning(s), 0 info(s)."


# --- an assumption said once -------------------------------------------------


def _assuming(rule: str, *path: str) -> Finding:
    return _finding(rule, Severity.ERROR, *path, message="leaks." + assumed_clause(TOKENS),
                    evidence={"assumed": TOKENS})


def test_a_shared_assumption_is_one_note_and_leaves_every_message() -> None:
    report = Report((ModelReport("m.keras", "m", (_assuming("MC102", "m", "enc", "conv"),
                                                  _assuming("MC102", "m", "head")), graph=GRAPH),))
    lines = text.render(report).splitlines()
    assert lines[0] == ("m.keras: note: the findings below assume input 'tokens' holds token ids "
                        "padded with 0 on either side (the pad_sequences / TextVectorization "
                        "convention); if it is never padded, pass --padded none (padded = [] in "
                        "[tool.maskcheck]).")
    assert [line for line in lines if "[error]" in line] == [
        "m.keras:enc/conv (Layer): MC102 [error] name-MC102 leaks.",
        "m.keras:head (Layer): MC102 [error] name-MC102 leaks."]
    # JSON keeps each message whole
    assert all(f["message"].endswith(assumed_clause(TOKENS))
               for f in json.loads(report.to_json())["models"][0]["findings"])


def test_an_assumption_some_findings_share_marks_them() -> None:
    report = Report((ModelReport("m.keras", "m", (_assuming("MC102", "m", "enc", "conv"),
                                                  _finding("MC104", Severity.INFO, "m", "head")),
                                 graph=GRAPH),))
    lines = text.render(report).splitlines()
    assert lines[0].startswith("m.keras: note: findings marked below assume input 'tokens' holds "
                               "token ids")
    assert lines[1] == "m.keras:enc/conv (Layer): MC102 [error] name-MC102 leaks. (assumes input 'tokens')"
    assert lines[3] == "m.keras:head (Layer): MC104 [info] name-MC104 msg."


def test_no_assumption_no_note() -> None:
    assert "note:" not in text.render(_grouped())


def _token_cnn():
    """Fixed-length token ids, an Embedding without mask_zero, Conv1D and pooling: every
    finding rests on the token-0 padding convention."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((10,), dtype="int32", name="tokens")
    x = layers.Embedding(50, 8, name="embedding")(inputs)
    x = layers.Conv1D(8, 3, padding="same", name="conv")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(2, name="head")(x), name="token_cnn")


def test_a_real_models_token_assumption_is_said_once() -> None:
    report = maskcheck.check(_token_cnn(), mode="static")
    assert len(report.findings) >= 2 and all("assumed" in f.evidence for f in report.findings)
    rendered = report.to_text()
    assert rendered.count("This assumes") == 0
    assert rendered.count("--padded none") == 1
    assert rendered.splitlines()[0].startswith("token_cnn: note: the findings below assume input 'tokens'")
    assert all("This assumes input 'tokens'" in f["message"]
               for f in json.loads(report.to_json())["models"][0]["findings"])


def test_a_real_model_without_the_assumption_has_no_note() -> None:
    rendered = maskcheck.check(_tagger("conv", "lstm"), mode="static").to_text()
    assert "note:" not in rendered and "--padded none" not in rendered


# --- what the data said (--verbose) -------------------------------------------


DATA = {"pad_value": 0, "sides": {"post": 3, "pre": 1}, "lengths": {"min": 3, "max": 12},
        "label_pad_value": -100.0, "sample_weights": True, "nested": {"a": {"b": [1, 2]}},
        "note": None}


def _with_data(verbose: bool) -> Report:
    model = ModelReport("m.keras", "m", stats={"data": DATA})
    return Report((model,), settings={"verbose": verbose})


def test_verbose_prints_what_the_data_said_in_one_line() -> None:
    assert text.render(_with_data(True)).splitlines()[0] == (
        "m.keras: data: pad_value 0; sides post 3, pre 1; lengths min 3, max 12; "
        "label_pad_value -100; sample_weights true; nested a (b [1, 2]); note none")


def test_without_verbose_the_data_line_is_left_out() -> None:
    assert "data:" not in text.render(_with_data(False))
    assert "data:" in text.render(_with_data(False), verbose=True)
    assert "data:" not in text.render(Report((ModelReport("m.keras", "m"),), settings={"verbose": True}))


def test_run_settings_carry_verbose() -> None:
    model = _tagger("conv", "lstm")
    assert maskcheck.check(model, mode="static", verbose=True).settings["verbose"] is True
    assert maskcheck.check(model, mode="static").settings["verbose"] is False


# --- colour ------------------------------------------------------------------


def test_colour_marks_severities_codes_and_paths_and_is_only_added() -> None:
    report = sample_report()
    coloured = text.render(report, color=True)
    assert "\x1b[1;31merror\x1b[0m" in coloured and "\x1b[1;33mwarning\x1b[0m" in coloured
    assert "\x1b[1;36minfo\x1b[0m" in coloured and "\x1b[1mMC102\x1b[0m" in coloured
    assert "\x1b[1mmodels/tagger.keras:encoder/conv1d\x1b[0m" in coloured
    assert ANSI.sub("", coloured) == text.render(report)
    assert not ANSI.search(text.render(report)) and not ANSI.search(report.to_text())


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("setting, fmt, output, tty, env, expected", [
    ("auto", "text", None, True, {}, True),
    ("auto", "text", None, False, {}, False),
    ("auto", "text", None, True, {"NO_COLOR": "1"}, False),
    ("auto", "text", None, True, {"NO_COLOR": ""}, True),  # empty means unset (no-color.org)
    ("auto", "text", None, False, {"FORCE_COLOR": "1"}, True),
    ("auto", "text", None, False, {"FORCE_COLOR": ""}, False),
    ("auto", "text", None, True, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),
    ("always", "text", None, False, {"NO_COLOR": "1"}, True),
    ("never", "text", None, True, {"FORCE_COLOR": "1"}, False),
    ("always", "text", "report.txt", True, {}, False),  # files never
    ("always", "json", None, True, {"FORCE_COLOR": "1"}, False),  # machine formats never
    ("auto", "sarif", None, True, {}, False),
])
def test_when_colour_is_used(setting, fmt, output, tty, env, expected) -> None:
    assert use_color(setting, fmt, output, _Stream(tty), env) is expected


def _invoke(*args, env: dict | None = None):
    """The CLI in-process; NO_COLOR and FORCE_COLOR unset unless `env` sets them."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False,
                              env={"NO_COLOR": None, "FORCE_COLOR": None, **(env or {})})


@pytest.mark.parametrize("args, env, coloured", [
    (("--color", "always"), {}, True),
    (("--color", "never"), {}, False),
    ((), {}, False),                                   # not a terminal
    ((), {"FORCE_COLOR": "1"}, True),
    ((), {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),  # the opt-out wins
    (("--color", "always"), {"NO_COLOR": "1"}, True),   # an explicit option wins over both
    (("--color", "never"), {"FORCE_COLOR": "1"}, False),
    (("--color", "always", "--format", "json"), {}, False),
])
def test_the_cli_colours_as_asked(args: tuple, env: dict, coloured: bool) -> None:
    result = _invoke(CONV_TAGGER, "--mode", "static", *args, env=env)
    assert result.exit_code == 1, result.output
    assert bool(ANSI.search(result.stdout)) is coloured
    assert "MC102" in ANSI.sub("", result.stdout)


def test_colour_from_pyproject_and_a_bad_value_is_a_usage_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.maskcheck]\ncolor = "always"\n')
    assert ANSI.search(_invoke(CONV_TAGGER, "--mode", "static").stdout)
    assert not ANSI.search(_invoke(CONV_TAGGER, "--mode", "static", "--color", "never").stdout)
    (tmp_path / "pyproject.toml").write_text('[tool.maskcheck]\ncolor = "rainbow"\n')
    result = _invoke(CONV_TAGGER, "--mode", "static")
    assert result.exit_code == 2
    assert "--color must be one of auto, always, never, not 'rainbow'" in result.stderr


def test_help_lists_color() -> None:
    assert "--color [auto|always|never]" in _invoke("--help").stdout


# --- --output: the report in a file, one line on stderr ------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github", "junit", "html"])
def test_output_file_gets_one_summary_line_on_stderr(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"report.{fmt}"
    result = _invoke(CONV_TAGGER, "--mode", "static", "--format", fmt, "--output", out,
                     "--color", "always")
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(rf"maskcheck: wrote {fmt} report to {re.escape(str(out))}: \d+ error\(s\), "
                        r"\d+ warning\(s\), \d+ info\(s\)( \(\+\d+ related\))?\.", lines[0]), lines[0]
    assert "\x1b[" not in out.read_text(encoding="utf-8") and "\x1b[" not in lines[0]
    if fmt == "json":
        s = json.loads(out.read_text(encoding="utf-8"))["summary"]
        related = f" (+{s['related']} related)" if s["related"] else ""
        assert lines[0].endswith(f": {s['errors']} error(s), {s['warnings']} warning(s), "
                                 f"{s['infos']} info(s){related}.")


def test_without_output_nothing_is_said_on_stderr() -> None:
    result = _invoke(CONV_TAGGER, "--mode", "static", "--format", "json")
    assert "wrote" not in result.stderr


def test_output_summary_names_failed_targets(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = _invoke(tmp_path / "missing.keras", "--format", "json", "--output", out)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"maskcheck: wrote json report to {out}: 0 error(s), 0 warning(s), 0 info(s), "
        "1 could not be checked.")


# --- str(report) ---------------------------------------------------------------


def test_print_report_shows_the_text_report(capsys) -> None:
    report = maskcheck.check(_tagger("conv", "lstm"), mode="static")
    print(report)
    shown = capsys.readouterr().out
    assert shown == report.to_text() and str(report) + "\n" == shown
    assert shown.splitlines()[0].startswith("tagger:conv (Conv1D): MC102 [error] unmasked-mixing ")
    assert shown.splitlines()[-1].startswith("Checked 1 model: 2 error(s)")
    assert not ANSI.search(shown) and "Report(" not in shown


def test_a_report_of_a_failed_target_prints_its_error() -> None:
    report = Report((ModelReport("m.keras", None, error=TargetError("ValueError", "bad file")),))
    assert str(report) == ("m.keras: error: bad file [ValueError]\n"
                           "Checked 1 model: 0 error(s), 0 warning(s), 0 info(s), 1 could not be checked.")
