"""Blocks or redacts configured phrases, matched case-insensitively on word boundaries.

Whitespace inside a phrase matches any run of whitespace, so line breaks do not evade it.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from bastion.errors import BastionError, ContentBlocked
from bastion.guards.base import Finding, GuardContext, Verdict

REDACTION = "[REDACTED]"


class DenyListGuard:
    name = "deny_list"
    block_error: ClassVar[type[BastionError]] = ContentBlocked

    def __init__(self, terms: list[str], action: Literal["block", "redact"] = "block") -> None:
        self.terms = [t.strip() for t in terms if t.strip()]
        self.action = action
        # A phrase may span at most this many characters (runs of whitespace can grow it).
        self.window_chars = max((len(t) for t in self.terms), default=0) * 2
        self.lookback_chars = 0
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
