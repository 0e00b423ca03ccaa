"""The PII guard: masks (or blocks) PII in prompts, and masks PII the model leaks."""

from __future__ import annotations

from cryptography.fernet import Fernet, MultiFernet

from bastion.guards.base import (
    Finding,
    Guard,
    GuardContext,
    RequestState,
    StreamReveal,
    Verdict,
)
from bastion.guards.pii.detector import PiiDetector, PiiSpan
from bastion.guards.pii.plugin import PiiAction
from bastion.guards.pii.vault import PLACEHOLDER, PiiVault, StreamUnmasker

_VAULT = "pii.vault"  # the request's vault, in the request state


class PiiMasker(Guard):
    """Replaces each PII value with a typed placeholder from the request's vault.

    On input, the policy (per entity type, overridable per app) decides mask, block or
    allow. On output, any PII the caller did not send (a leak) is masked and never
    restored. Findings carry types and placeholders, never the values themselves. The
    placeholders are restored for the caller alone (`reveal`), from a vault that lives as
    long as the request and is sealed with `fernet`.
    """

    name = "pii"
    window_chars = 64

    def __init__(
        self,
        detector: PiiDetector,
        actions: dict[str, PiiAction],
        default_action: PiiAction = "mask",
        app_actions: dict[str, dict[str, PiiAction]] | None = None,
        *,
        output_ner: bool = False,
        fernet: Fernet | MultiFernet | None = None,
    ) -> None:
        self.detector = detector
        self._fernet = fernet
        self.output_ner = output_ner
        self.actions = actions
        self.default_action = default_action
        self.app_actions = app_actions or {}

    def load(self) -> None:
        self.detector.load()

    def vault(self, state: RequestState) -> PiiVault:
        """The request's vault, made on first use."""
        vault = state.get(_VAULT)
        if vault is None:
            vault = state[_VAULT] = PiiVault(self._fernet)
        return vault

    def reveal(self, text: str, state: RequestState) -> str:
        return self.vault(state).unmask(text)

    def stream_reveal(self, state: RequestState) -> StreamReveal:
        return StreamUnmasker(self.vault(state))

    def action_for(self, entity_type: str, app: str) -> PiiAction:
        for table in (self.app_actions.get(app, {}), self.actions):
            if entity_type in table:
                return table[entity_type]
        return self.default_action

    def check(self, text: str, ctx: GuardContext) -> Verdict:
        vault = self.vault(ctx.state)
        use_ner = ctx.stage != "output" or self.output_ner
        found = self.detector.detect(text, use_ner=use_ner)
        spans = [s for s in found if not _inside_placeholder(text, s)]
        if ctx.stage == "output":  # a leak: PII the caller did not send, of a type not allowed
            spans = [
                s
                for s in spans
                if self.action_for(s.entity_type, ctx.app) != "allow"
                and not vault.knows(s.entity_type, text[s.start : s.end])
            ]
        if not spans:
            return Verdict(self.name)
        decided = [
            (s, "mask" if ctx.stage == "output" else self.action_for(s.entity_type, ctx.app))
            for s in spans
        ]
        blocked = [s for s, a in decided if a == "block"]
        if blocked:
            findings = [
                Finding(s.entity_type, f"{s.entity_type} is not allowed", s.start, s.end)
                for s in blocked
            ]
            return Verdict(self.name, "block", max(s.score for s in blocked), findings)
        masked = [s for s, a in decided if a == "mask"]
        for span, action in decided:
            if action == "allow":
                vault.allow(span.entity_type, text[span.start : span.end])
        if not masked:
            findings = [
                Finding(s.entity_type, "allowed by policy", s.start, s.end) for s, _ in decided
            ]
            return Verdict(self.name, "flag", max(s.score for s in spans), findings)
        detail = "leaked by the model" if ctx.stage == "output" else "masked"
        findings = [  # numbered in reading order, so the first spelling seen is restored
            Finding(
                s.entity_type,
                detail,
                s.start,
                s.end,
                vault.placeholder(
                    s.entity_type, text[s.start : s.end], restorable=ctx.stage != "output"
                ),
            )
            for s in sorted(masked, key=lambda s: s.start)
        ]
        out = text
        for f in reversed(findings):
            out = f"{out[: f.start]}{f.replacement}{out[f.end :]}"
        return Verdict(self.name, "redact", max(s.score for s in masked), findings, out)


def _inside_placeholder(text: str, span: PiiSpan) -> bool:
    return any(m.start() <= span.start and span.end <= m.end() for m in PLACEHOLDER.finditer(text))
