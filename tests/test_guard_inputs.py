"""Awkward input through every default guard: a verdict or a clear error, never a crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from bastion.config import BastionConfig
from bastion.copyright.registry import ProtectedRegistry
from bastion.guards import GuardContext, build_chain

# A registry with one work, so the copyright guard really looks texts up.
_HOME = Path(tempfile.mkdtemp(prefix="bastion-guard-inputs-"))
ProtectedRegistry(_HOME / "protected" / "index.sqlite").add_text(
    "sample", "Sample", "a " * 400 + "zero width " * 50, owner="Acme", license_id="MIT"
)
_CHAIN = build_chain(BastionConfig().guards, [], _HOME)
GUARDS = [*_CHAIN.input, *(g for g in _CHAIN.output if g not in _CHAIN.input)]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "\x00\x01\x02 binary \xff\xfe bytes decoded as text",
        "Mixed scripts: Привет, 你好, مرحبا, שלום, नमस्ते, john@example.com",
        "🙂" * 500,
        "a" * 20_000,
        "\u200b" * 1000,
        "<PERSON_1> <EMAIL_ADDRESS_3> <> <<>> <NOT_A_PLACEHOLDER",
    ],
)
@pytest.mark.parametrize("guard", GUARDS, ids=lambda g: g.name)
def test_every_guard_returns_a_verdict(guard: object, text: str) -> None:
    for stage in ("input", "output"):
        state = {"canary": "cnry-0000000000"}
        ctx = GuardContext("t", "chat", stage, len(text), state)  # type: ignore[arg-type]
        verdict = guard.check(text, ctx)  # type: ignore[attr-defined]
        assert verdict.action in ("allow", "flag", "redact", "block")
        assert 0.0 <= verdict.score <= 1.0 or guard.name == "input_size"  # type: ignore[attr-defined]
