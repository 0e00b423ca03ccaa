"""The package's layers, as the import-linter contracts in pyproject.toml state them: entry
points, then the wiring (platform), then pipeline/tuning/evaluation, then
experiments/grounding/access/audit, then the ground (config, models, storage, guards, ...);
a module imports from its own layer or below, and no two packages import each other."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
CONTRACTS = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def broken_section(output: str) -> str:
    """What lint-imports says about the broken contract: each offending import, with the
    importing module and line (`bastion.guards.base -> bastion.access.principal (l.13)`)."""
    _, found, rest = output.partition("Broken contracts")
    return rest.strip("-\n ") if found else output


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c["id"] for c in CONTRACTS])
def test_imports_keep_the_contract(contract: dict[str, object]) -> None:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the dev extra (import-linter)")
    # This checkout's source, whatever the installed package points at; no cache folder.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    contract_id = str(contract["id"])
    done = subprocess.run(
        [LINT_IMPORTS, "--config", PYPROJECT, "--contract", contract_id, "--no-cache", "--no-logo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(
            f"import contract '{contract['name']}' is broken (see [tool.importlinter] in "
            f"pyproject.toml):\n{broken_section(done.stdout + done.stderr)}",
            pytrace=False,
        )
