"""Awkward input through every default guard: a verdict or a clear error, never a crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from bastion.config import BastionConfig
from bastion.copyright.registry import ProtectedRegistry
from bastion.guards import GuardContext, input_guards, output_guards

# A registry with one work, so the copyright guard really looks texts up.
_HOME = Path(tempfile.mkdtemp(prefix="bastion-guard-inputs-"))
ProtectedRegistry(_HOME / "protected" / "index.sqlite").add_text(
    "sample", "Sample", "a " * 400 + "zero width " * 50, owner="Acme", license_id="MIT"
)
GUARDS = input_guards(BastionConfig()) + output_guards(BastionConfig(), _HOME)


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
        ctx = GuardContext("t", None, "chat", stage, len(text), canary="cnry-0000000000")  # type: ignore[arg-type]
        verdict = guard.check(text, ctx)  # type: ignore[attr-defined]
        assert verdict.action in ("allow", "flag", "redact", "block")
        assert 0.0 <= verdict.score <= 1.0 or guard.name == "input_size"  # type: ignore[attr-defined]
