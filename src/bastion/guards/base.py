"""The guard interface: `check(text, ctx) -> Verdict`, plus optional per-request hooks.

Guards never call each other; the pipeline runs them in order and merges their verdicts
into the request's trust report. What a guard needs around generation (a note in the
system prompt, text marked as data, placeholders restored for the caller, a citation added
to the answer) it declares as hooks that the pipeline calls for every guard alike. This
module depends on no other part of Bastion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel

from bastion.errors import BastionError, ContentBlocked
from bastion.plugins import Part

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


#: What guards keep for the length of one request (a PII vault, a planted canary), shared
#: by every stage and hook of that request; each guard keys its entries by its own name.
RequestState = dict[str, Any]


@dataclass
class GuardContext:
    trace_id: str
    app: str
    stage: Stage
    prompt_chars: int = 0
    state: RequestState = field(default_factory=dict)


@dataclass
class PromptMessage:
    role: str
    content: str


@dataclass
class DataBlock:
    """Text the model is shown as material, not as instructions (a retrieved source)."""

    label: str
    text: str


@dataclass
class Prompt:
    """The conversation as the model will see it, after the input guards and before the
    pipeline assembles it: hooks may rewrite messages and data blocks and add notes, which
    the pipeline appends to the system prompt in order."""

    messages: list[PromptMessage]
    sources: list[DataBlock]
    grounded: bool  # the app answers from retrieved sources (possibly none matched)
    notes: list[str]
    state: RequestState


class StreamReveal(Protocol):
    """Turns streamed text into what the caller sees, holding back what it cannot decide."""

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


class RequestHooks:
    """What a part may do around generation besides checking text. Every method is
    optional: the defaults change nothing."""

    def load(self) -> None:
        """Load heavy assets now, so the first request does not wait for them."""

    def before_generation(self, prompt: Prompt) -> None:
        """Shape the prompt once the input guards have run."""

    def reveal(self, text: str, state: RequestState) -> str:
        """What the caller sees of checked text (an answer, a citation snippet)."""
        return text

    def stream_reveal(self, state: RequestState) -> StreamReveal | None:
        """`reveal` for a stream, fed piece by piece; None when it changes nothing."""
        return None

    def notice(self, verdicts: Sequence[Verdict], state: RequestState) -> str:
        """Text added to the end of an allowed answer (a citation of a work it draws on)."""
        return ""


class Guard(RequestHooks):
    """A check on text. Subclasses set `name` and implement `check`."""

    name: ClassVar[str]
    #: Raised when this guard blocks a request's input.
    block_error: ClassVar[type[BastionError]] = ContentBlocked
    #: Characters a stream must hold back for this guard to see a whole match.
    window_chars: int = 0
    #: Characters of already-sent text the guard must see again with the new text (a
    #: match may begin before what is held back); its findings then never redact.
    lookback_chars: int = 0

    def check(self, text: str, ctx: GuardContext) -> Verdict:
        raise NotImplementedError


@dataclass(frozen=True)
class GuardSetup:
    """What building a guard may use besides its own settings."""

    home: Path  # BASTION_HOME: where relative paths in its settings start
    #: Each app's per-app settings for this guard (an instance of its `app_settings`).
    apps: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GuardParts:
    """What one guard part contributes: checks on input (caller's messages and retrieved
    sources), checks on output, and hook-only helpers."""

    input: list[Guard] = field(default_factory=list)
    output: list[Guard] = field(default_factory=list)
    hooks: list[RequestHooks] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class GuardSpec(Part):
    """A guard as a plug-in: `guards.<name>` in the configuration is its `settings`."""

    #: Where its checks run in the chain, lowest first, on input and output alike (built-in
    #: guards use 10-90: deny list 10, injection 20, toxicity 30, bias 40, copyright 50, PII
    #: 90, so PII masking runs last and the others read what the caller wrote).
    order: int
    #: settings (an instance of `settings`, or None when it has none), setup -> parts
    build: Callable[[Any, GuardSetup], GuardParts]


class GuardsSettings(Protocol):
    """The `guards` configuration section as the chain builder reads it."""

    max_input_chars: int

    def section(self, name: str) -> BaseModel | None: ...


class AppEntry(Protocol):
    name: str

    def part_settings(self, model: type[BaseModel]) -> BaseModel: ...


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
