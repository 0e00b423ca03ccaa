"""Blocks or redacts configured phrases, matched case-insensitively on word boundaries.

Whitespace inside a phrase matches any run of whitespace, so line breaks do not evade it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.guards.base import (
    Finding,
    Guard,
    GuardContext,
    GuardParts,
    GuardSetup,
    GuardSpec,
    Verdict,
)
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register

REDACTION = "[REDACTED]"


DenyAction = Literal["block", "redact"]


class DenyListSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    terms: list[str] = Field(default_factory=list, description="Case-insensitive phrases.")
    action: DenyAction = Field("block", description="What a match does.")


class DenyListGuard(Guard):
    name = "deny_list"

    def __init__(self, terms: list[str], action: DenyAction = "block") -> None:
        self.terms = [t.strip() for t in terms if t.strip()]
        self.action = action
        # A phrase may span at most this many characters (runs of whitespace can grow it).
        self.window_chars = max((len(t) for t in self.terms), default=0) * 2
        patterns = [r"\s+".join(re.escape(w) for w in t.split()) for t in self.terms]
        self._regex = (
            re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)", re.IGNORECASE)
            if patterns
            else None
        )

    def check(self, text: str, ctx: GuardContext) -> Verdict:
        if self._regex is None:
            return Verdict(self.name)
        matches = list(self._regex.finditer(text))
        if not matches:
            return Verdict(self.name)
        if self.action == "block":
            findings = [
                Finding("denied_term", m.group(0).lower(), m.start(), m.end()) for m in matches
            ]
            return Verdict(self.name, "block", 1.0, findings)
        findings = [
            Finding("denied_term", m.group(0).lower(), m.start(), m.end(), REDACTION)
            for m in matches
        ]
        return Verdict(self.name, "redact", 1.0, findings, self._regex.sub(REDACTION, text))


def build(settings: DenyListSettings, setup: GuardSetup) -> GuardParts:
    guard = DenyListGuard(settings.terms, settings.action)
    return GuardParts(input=[guard], output=[guard])


@hookimpl
def register_guards(register: Register) -> None:
    register(
        GuardSpec(
            name="deny_list",
            description="configured phrases, blocked or redacted in prompts and answers.",
            settings=DenyListSettings,
            order=10,
            build=build,
        )
    )
