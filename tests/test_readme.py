"""The README's promises that a test can hold it to."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_testing_example_is_the_tested_one() -> None:
    # tests/test_plugin.py runs the example of docs/testing.md; the README shows the same file.
    docs = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    example = max(python_blocks(docs), key=len)
    assert example in python_blocks(README), "README's 'Testing your model' example drifted from docs/testing.md"


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"^(python3 -m venv .*)$", README, flags=re.M)
    assert len(commands) == 2, commands
    setup_and_test = commands[1]
    assert setup_and_test in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_rule_table_lists_every_rule() -> None:
    from maskcheck.rules import ALL_RULES

    for rule in ALL_RULES:
        assert f"| {rule.code} | {rule.name} | {rule.severity.value} |" in README


def test_readme_sample_output_is_what_maskcheck_prints() -> None:
    from click.testing import CliRunner

    from maskcheck.cli import main

    block = README.split("What the first command prints", 1)[1].split("```\n", 2)[1]
    result = CliRunner().invoke(main, ["fixtures/models/conv_tagger.keras"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stdout == block, "README's sample output drifted: paste the current output"


def test_pre_commit_hooks_run_maskcheck_on_model_files() -> None:
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    ids = re.findall(r"^- id: (\S+)$", hooks, flags=re.M)
    assert ids == ["maskcheck", "maskcheck-static"]
    assert hooks.count("entry: maskcheck\n") == 2 and hooks.count("language: python\n") == 2
    [pattern] = set(re.findall(r"^  files: (.+)$", hooks, flags=re.M))
    assert re.search(pattern, "models/tagger.keras") and re.search(pattern, "old/model.h5")
    assert not re.search(pattern, "train.py")
