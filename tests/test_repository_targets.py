"""Upgrades and repositories: `maskcheck .` in a real project tree, and baselines
written by another maskcheck version.

A directory target skips hidden folders, virtual environments, site-packages,
what .gitignore ignores and the `exclude`/`extend-exclude` globs of
`[tool.maskcheck]`; a path named on the command line is always checked. The
trees hold real saved models (copies of fixtures/models/conv_tagger.keras) and
runs use `--mode static` through click's CliRunner, so TensorFlow loads once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from maskcheck.adoption.discovery import Excludes, compile_pattern, find_models, read_gitignore
from maskcheck.cli import main

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "fixtures" / "models" / "conv_tagger.keras"  # MC101 + MC102 under --mode static

#: path in the tree -> checked by `maskcheck .` with TREE_PYPROJECT and TREE_GITIGNORES
TREE = {
    "models/tagger.keras": True,
    "models/nested/deep/tagger.keras": True,
    "models/rootonly.keras": True,  # `/rootonly.keras` is anchored to the top folder
    "models/important.tmp.keras": True,  # a nested .gitignore re-includes it with `!`
    "checkpoints/keep.keras": True,  # `!checkpoints/keep.keras` after `checkpoints/**`
    "experiments/final.keras": True,
    "weights.h5": True,
    ".venv/lib/python3.11/site-packages/pkg/model.keras": False,  # hidden, and a venv
    "env311/model.keras": False,  # a virtual environment by its pyvenv.cfg, whatever its name
    "venv/model.keras": False,
    ".hidden/model.keras": False,
    "vendor/site-packages/lib/model.keras": False,
    "node_modules/viewer/model.keras": False,
    "build/model.keras": False,  # gitignored folder (`build/`)
    "models/run.tmp.keras": False,  # gitignored file pattern (`*.tmp.keras`)
    "rootonly.keras": False,  # anchored `/rootonly.keras`
    "checkpoints/epoch1.keras": False,  # `checkpoints/**`
    "models/cache/a.keras": False,  # `**/cache/*.keras`
    "models/scratch.keras": False,  # the nested models/.gitignore
    "archive/old.keras": False,  # extend-exclude `archive` (a name at any depth)
    "models/archive/older.keras": False,
    "experiments/a_draft.keras": False,  # extend-exclude `experiments/*_draft.keras`
}
TREE_GITIGNORES = {
    ".gitignore": "# build output\nbuild/\n*.tmp.keras\n/rootonly.keras\ncheckpoints/**\n"
                  "!checkpoints/keep.keras\n**/cache/*.keras\n",
    "models/.gitignore": "scratch.keras\n!important.tmp.keras\n",
}
TREE_PYPROJECT = '[tool.maskcheck]\nextend-exclude = ["archive", "experiments/*_draft.keras"]\n'


@pytest.fixture(scope="module")
def legacy_h5(tmp_path_factory) -> Path:
    """A real legacy HDF5 model with a finding (a Conv1D over a masked Embedding)."""
    import keras

    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(20, 4, mask_zero=True)(x)
    model = keras.Model(x, keras.layers.Conv1D(2, 3, padding="same")(h), name="legacy")
    path = tmp_path_factory.mktemp("h5") / "legacy.h5"
    model.save(path)
    return path


def build_tree(top: Path, h5: Path, pyproject: str = TREE_PYPROJECT) -> Path:
    """TREE under `top`, made a git repository (an empty .git folder is enough here)."""
    for name in TREE:
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(h5 if name.endswith(".h5") else MODEL, top / name)
    for name, text in TREE_GITIGNORES.items():
        (top / name).write_text(text, encoding="utf-8")
    for venv in (".venv", "env311"):
        (top / venv / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    (top / ".git").mkdir()
    (top / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    return top


def invoke(*args: str) -> "click.testing.Result":
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def checked(*args: str) -> list[str]:
    result = invoke(*args, "--mode", "static", "--format", "json", "--fail-on", "never")
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)["models"]
    assert all(m["status"] == "findings" for m in models), models  # each one really was loaded
    return [m["target"] for m in models]


@pytest.fixture(scope="module")
def tree(tmp_path_factory, legacy_h5: Path) -> Path:
    return build_tree(tmp_path_factory.mktemp("repo"), legacy_h5)


def test_dot_checks_the_projects_models_and_skips_the_rest(tree: Path, monkeypatch) -> None:
    monkeypatch.chdir(tree)
    assert checked(".") == sorted(name for name, kept in TREE.items() if kept)


def test_a_subfolder_obeys_the_gitignore_files_above_it(tree: Path, monkeypatch) -> None:
    monkeypatch.chdir(tree)
    assert checked("models") == ["models/important.tmp.keras", "models/nested/deep/tagger.keras",
                                 "models/rootonly.keras", "models/tagger.keras"]
    # from a subfolder: the globs are relative to the pyproject's folder, not the cwd
    monkeypatch.chdir(tree / "models")
    assert checked("../experiments") == ["../experiments/final.keras"]
    assert checked(".") == ["important.tmp.keras", "nested/deep/tagger.keras", "rootonly.keras",
                            "tagger.keras"]


def test_paths_named_on_the_command_line_are_always_checked(tree: Path, monkeypatch) -> None:
    monkeypatch.chdir(tree)
    named = ["build/model.keras", ".hidden/model.keras", "archive/old.keras", "models/run.tmp.keras"]
    assert checked(*named) == named
    # a named folder is searched even when it would be skipped; what is inside is still filtered
    assert checked("archive") == ["archive/old.keras"]


def test_exclude_replaces_the_defaults_and_extend_exclude_adds(tmp_path: Path, monkeypatch,
                                                               legacy_h5: Path) -> None:
    top = build_tree(tmp_path, legacy_h5, '[tool.maskcheck]\nexclude = ["models", "experiments/"]\n'
                               'extend-exclude = ["vendor", "*.h5"]\n')
    monkeypatch.chdir(top)
    # hidden folders, venvs, site-packages and node_modules are back; .gitignore still holds
    # (.git is hidden, but no longer a default exclude: it holds no model here)
    assert checked(".") == [
        ".hidden/model.keras", ".venv/lib/python3.11/site-packages/pkg/model.keras",
        "archive/old.keras", "checkpoints/keep.keras", "env311/model.keras",
        "node_modules/viewer/model.keras", "venv/model.keras"]


def test_a_folder_with_only_skipped_models_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "proj" / ".venv").mkdir(parents=True)
    shutil.copyfile(MODEL, tmp_path / "proj" / ".venv" / "model.keras")
    monkeypatch.chdir(tmp_path)
    result = invoke("proj", "--mode", "static", "--format", "json")
    assert result.exit_code == 2
    [model] = json.loads(result.stdout)["models"]
    assert model["error"]["type"] == "NoModels"
    message = model["error"]["message"]
    assert "no .keras or .h5 model files" in message and ".venv/" in message and "\n" not in message
    # the named file itself is checked
    assert checked("proj/.venv/model.keras") == ["proj/.venv/model.keras"]


@pytest.mark.parametrize("value", ['"models"', "[1]", '[""]'])
def test_bad_exclude_values_are_errors(tmp_path: Path, monkeypatch, value: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.maskcheck]\nexclude = {value}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = invoke(str(MODEL), "--mode", "static")
    if value == '"models"':  # one glob as a string is accepted, like ruff's single pattern
        assert result.exit_code == 1, result.output
        return
    assert result.exit_code == 2 and "exclude must be a list of path globs" in result.output


# --- gitignore patterns, without models --------------------------------------------------------


@pytest.mark.parametrize("lines, path, is_dir, ignored", [
    (["build/"], "build", True, True),
    (["build/"], "build", False, False),  # folder-only pattern, and this is a file
    (["build/"], "src/build", True, True),  # no slash before the end: any depth
    (["/build"], "src/build", True, False),  # anchored
    (["/build"], "build", True, True),
    (["doc/build"], "src/doc/build", True, False),  # a middle slash anchors too
    (["*.keras"], "a/b/c.keras", False, True),
    (["a/*.keras"], "a/b/c.keras", False, False),  # `*` stays within a name
    (["a/**/*.keras"], "a/b/c.keras", False, True),
    (["a/**/*.keras"], "a/c.keras", False, True),  # `**/` may be no folder at all
    (["**/cache"], "x/y/cache", True, True),
    (["a/**"], "a/x/y.keras", False, True),
    (["a/**"], "a", True, False),
    (["*.keras", "!keep.keras"], "keep.keras", False, False),
    (["!keep.keras", "*.keras"], "keep.keras", False, True),  # the last match decides
    (["model_[0-9].keras"], "model_3.keras", False, True),
    (["model_[!0-9].keras"], "model_3.keras", False, False),
    (["model?.keras"], "model1.keras", False, True),
    (["\\#notes.keras"], "#notes.keras", False, True),
    (["# a comment", ""], "# a comment", False, False),
    (["trailing.keras   "], "trailing.keras", False, True),
])
def test_gitignore_patterns_follow_git(tmp_path: Path, lines, path, is_dir, ignored) -> None:
    (tmp_path / ".gitignore").write_text("\n".join(lines) + "\n", encoding="utf-8")
    patterns = read_gitignore(tmp_path / ".gitignore")
    target = tmp_path / path
    last = [p for p in patterns if p.matches(target, is_dir)]
    assert (bool(last) and not last[-1].negate) == ignored


def test_a_file_in_an_ignored_folder_cannot_be_re_included(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.keras").write_bytes(b"x")
    (tmp_path / ".gitignore").write_text("out/\n!out/keep.keras\n", encoding="utf-8")
    assert find_models(tmp_path, (".keras",), Excludes(root=tmp_path)) == ([], ["out/"])


def test_exclude_globs_are_relative_to_the_project_folder(tmp_path: Path) -> None:
    for name in ("proj/models/old/a.keras", "proj/models/b.keras", "elsewhere/models/old/c.keras"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    excludes = Excludes(extend_exclude=("models/old",), root=tmp_path / "proj")
    assert find_models(tmp_path, (".keras",), excludes)[0] == [
        tmp_path / "elsewhere/models/old/c.keras", tmp_path / "proj/models/b.keras"]
    assert compile_pattern("./models/old/", tmp_path, gitignore=False).folders_only


# --- baselines across versions ---------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.0.1", "9.9.9"])
def test_a_baseline_of_another_maskcheck_version_is_applied(tmp_path: Path, monkeypatch,
                                                           version: str) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(MODEL, tmp_path / "tagger.keras")
    written = invoke("tagger.keras", "--mode", "static", "--write-baseline", "b.json")
    assert written.exit_code == 0, written.output
    data = json.loads((tmp_path / "b.json").read_text(encoding="utf-8"))
    assert data["findings"] and data["maskcheck_baseline"] == 1
    data["version"] = version
    (tmp_path / "b.json").write_text(json.dumps(data), encoding="utf-8")
    result = invoke("tagger.keras", "--mode", "static", "--format", "json", "--baseline", "b.json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert summary["baselined"] == len(data["findings"]) and summary["fixed"] == 0
    # without the baseline the same run fails: the baseline really was applied
    assert invoke("tagger.keras", "--mode", "static").exit_code == 1


def test_a_baseline_of_another_format_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text('{"maskcheck_baseline": 2, "version": "9.9.9", "findings": []}',
                                     encoding="utf-8")
    script = Path(sys.executable).with_name("maskcheck")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "maskcheck"]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([*command, str(MODEL), "--baseline", "b.json"], cwd=tmp_path,
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "baseline format 2" in line and "--write-baseline b.json" in line, line
