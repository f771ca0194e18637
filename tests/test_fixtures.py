"""The fixture gallery: saved models are current, and maskcheck reports on each
saved file exactly the findings its .expected sidecar lists."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import pytest

from fixtures.build import expected_lines
from fixtures.gallery import GALLERY
from maskcheck.config import Config
from maskcheck.engine import check_targets
from maskcheck.rules import ALL_RULES

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MODELS = Path(__file__).resolve().parent.parent / "fixtures" / "models"
README_MODELS = ("conv_tagger", "conv_classifier", "lstm_tagger", "masked_bilstm")
#: Rules no built-in Keras layer triggers (absolute positions come from a custom or
#: keras-hub layer, which a safe-mode load of a gallery file could not rebuild): their
#: rule examples and tests/test_static_models.py / test_static_hub.py cover them.
NEEDS_CUSTOM_CODE = frozenset({"MC108", "MC110"})
REBUILD = "run `python fixtures/build.py` to regenerate the fixtures"


def _architecture(path: Path) -> dict:
    """The saved config without what changes from build to build."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    config.pop("build_config", None)
    compile_config = config.get("compile_config") or {}
    compile_config.pop("optimizer", None)
    return _without_object_ids(config)


def _without_object_ids(value):
    """Drop `shared_object_id`, a Python id() that differs on every save."""
    if isinstance(value, dict):
        return {k: _without_object_ids(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_without_object_ids(v) for v in value]
    return value


def test_gallery_and_saved_files_agree() -> None:
    saved = {p.stem for p in MODELS.glob("*.keras")}
    assert saved == set(GALLERY), REBUILD
    assert {p.stem for p in MODELS.glob("*.expected")} == set(GALLERY), REBUILD
    assert set(README_MODELS) <= saved


@pytest.mark.parametrize("name", sorted(GALLERY))
def test_saved_model_is_current(name: str, tmp_path: Path) -> None:
    factory, expected = GALLERY[name]
    keras.backend.clear_session()  # auto-generated names restart, as in a fresh build
    keras.utils.set_random_seed(0)
    factory().save(tmp_path / f"{name}.keras")
    assert _architecture(MODELS / f"{name}.keras") == _architecture(tmp_path / f"{name}.keras"), REBUILD
    lines = (MODELS / f"{name}.expected").read_text().splitlines()
    assert lines == expected_lines(expected), REBUILD


@pytest.fixture(scope="module")
def static_report():
    return check_targets((str(MODELS),), Config.from_values(mode="static"))


@pytest.mark.parametrize("name", sorted(GALLERY))
def test_maskcheck_reports_exactly_the_expected_findings(name: str, static_report) -> None:
    entry = next(m for m in static_report.models if Path(m.target).stem == name)
    assert entry.error is None, entry.error
    found = sorted(f"{f.rule} {f.layer}" for f in entry.all_findings)  # related ones too
    assert found == (MODELS / f"{name}.expected").read_text().splitlines()


def test_gallery_covers_every_static_rule_both_ways() -> None:
    bad = {code for _, expected in GALLERY.values() for code, _ in expected}
    static = {r.code for r in ALL_RULES if r.engine == "static"} - NEEDS_CUSTOM_CODE
    assert static <= bad, f"no bad fixture for {sorted(static - bad)}"
    clean = [name for name, (_, expected) in GALLERY.items() if not expected]
    assert len(clean) >= 5
