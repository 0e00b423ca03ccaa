from __future__ import annotations

import importlib.util
from pathlib import Path

from bastion.config import reference_rows

ROOT = Path(__file__).resolve().parents[1]


def test_readme_config_reference_matches_the_code() -> None:
    spec = importlib.util.spec_from_file_location("sync_readme", ROOT / "scripts/sync_readme.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "README.md").read_text()
    assert module.synced(text) == text, "README.md is out of date: run `make docs`"


def test_every_setting_is_described() -> None:
    undocumented = [key for key, _, _, meaning in reference_rows() if not meaning]
    assert undocumented == []
