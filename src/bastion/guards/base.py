"""The guard interface: `check(text, ctx) -> Verdict`.

Guards never call each other; the pipeline runs them in order and merges their verdicts
into the request's trust report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from bastion.access.principal import Principal
from bastion.errors import BastionError
from bastion.guards.pii.vault import PiiVault

log = logging.getLogger("bastion.guards")
GUARD_FAILED = "guard_failed"
Action = Literal["allow", "redact", "flag", "block"]
Stage = Literal["input", "output", "retrieved"]
_SEVERITY: dict[str, int] = {"allow": 0, "flag": 1, "redact": 2, "block": 3}


@dataclass(frozen=True)
class Finding:
    """What a guard found. A redacting guard says what replaces [start, end)."""

    kind: str
    detail: str
    start: int | None = None
    end: int | None = None
    replacement: str | None = None
    #: What the finding points at, for findings about a thing (a protected work's id,
    #: title, owner and licence); left out of reports when empty.
    source: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        found = vars(self).copy()
        if found["source"] is None:
            del found["source"]
        return found


@dataclass
class Verdict:
    """A guard's decision. `text` is the rewritten text when the action is `redact`."""

    guard: str
    action: Action = "allow"
    score: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    text: str | None = None
    stage: Stage = "input"

    def to_dict(self) -> dict[str, Any]:
        """The verdict for reports and the audit trail (the rewritten text stays out)."""
        return {
            "guard": self.guard,
            "stage": self.stage,
            "action": self.action,
            "score": self.score,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class GuardContext:
    trace_id: str
    principal: Principal | None
    app: str
    stage: Stage
    prompt_chars: int = 0
    vault: PiiVault = field(default_factory=PiiVault)
    canary: str | None = None  # planted in the system prompt; must never come back out


class Guard(Protocol):
    name: str
    #: Raised when this guard blocks a request's input.
    block_error: ClassVar[type[BastionError]]
    #: Characters a stream must hold back for this guard to see a whole match.
    window_chars: int
    #: Characters of already-sent text the guard must see again with the new text (a
    #: match may begin before what is held back); its findings then never redact.
    lookback_chars: int

    def check(self, text: str, ctx: GuardContext) -> Verdict: ...


def strongest(a: Action, b: Action) -> Action:
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


def merge(verdicts: list[Verdict]) -> Verdict:
    """Combine one guard's verdicts on several texts (the messages of a prompt)."""
    merged = Verdict(guard=verdicts[0].guard, stage=verdicts[0].stage)
    for v in verdicts:
        merged.action = strongest(merged.action, v.action)
        merged.score = max(merged.score, v.score)
        merged.findings.extend(f for f in v.findings if f not in merged.findings)
    return merged


def run_guard(guard: Guard, text: str, ctx: GuardContext, *, fail_open: bool) -> Verdict:
    """Run one guard; a guard that fails blocks (fail closed) unless `fail_open`."""
    try:
        return guard.check(text, ctx)
    except Exception as exc:  # any failure inside a guard must not let text through unchecked
        log.exception("guard %s failed", guard.name)
        finding = Finding(GUARD_FAILED, f"{type(exc).__name__}: {exc}")
        return Verdict(
            guard.name, "flag" if fail_open else "block", 1.0, [finding], stage=ctx.stage
        )
