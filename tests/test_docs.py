from __future__ import annotations

import importlib.util
from pathlib import Path

from bastion.config import reference_rows
from bastion.plugins import registry
from conftest import SCRIPTED_PLUGIN

ROOT = Path(__file__).resolve().parents[1]


def test_docs_match_the_code() -> None:
    """README's configuration reference and docs/extending.md's example code."""
    spec = importlib.util.spec_from_file_location("sync_docs", ROOT / "scripts/sync_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    registry.unregister(SCRIPTED_PLUGIN)  # the tests' own backend is not Bastion's
    try:
        for path, sync in module.SYNCED.items():
            text = path.read_text()
            assert sync(text) == text, f"{path.name} is out of date: run `make docs`"
    finally:
        registry.register(SCRIPTED_PLUGIN, "tests-scripted-backend")


def test_every_setting_is_described() -> None:
    undocumented = [key for key, _, _, meaning in reference_rows() if not meaning]
    assert undocumented == []
