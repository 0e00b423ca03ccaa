"""The copyright guard: answers that reproduce a registered work are blocked, flagged, or
let through with a citation of the work's owner (the app's policy)."""

from __future__ import annotations

from typing import ClassVar, Literal

from bastion.copyright.matcher import Match, Matcher
from bastion.errors import BastionError, ContentBlocked
from bastion.guards.base import Finding, GuardContext, Verdict

CopyrightAction = Literal["block", "attribute", "flag"]


def describe(match: Match) -> dict[str, object]:
    """What a finding says of the work a match copies."""
    doc = match.document
    return {
        "work": doc.work.key,
        "title": doc.work.title,
        "owner": doc.work.owner,
        "license": doc.work.license,
        "file": doc.path or None,
        "match": match.kind,
        "similarity": match.similarity,
    }


def attribution(source: dict[str, object]) -> str:
    """The citation an `attribute` policy adds to the answer."""
    return f"Source: “{source['title']}”, © {source['owner']} ({source['license']})."


class CopyrightGuard:
    name = "copyright"
    block_error: ClassVar[type[BastionError]] = ContentBlocked
    window_chars = 0  # nothing held back: a copy is stopped once it reaches min_chars

    def __init__(
        self,
        matcher: Matcher,
        action: CopyrightAction = "block",
        per_app: dict[str, CopyrightAction] | None = None,
    ) -> None:
        self.matcher = matcher
        self.action = action
        self.per_app = per_app or {}
        # enough sent text to see a whole run of min_chars beside the new text
        self.lookback_chars = max(512, 3 * matcher.rules.min_chars)

    def policy(self, app: str) -> CopyrightAction:
        return self.per_app.get(app, self.action)

    def check(self, text: str, ctx: GuardContext) -> Verdict:
        matches = self.matcher.scan(text)
        if not matches:
            return Verdict(self.name, stage=ctx.stage)
        policy = self.policy(ctx.app)
        findings = []
        for m in matches:
            source = {**describe(m), "policy": policy}
            what = "copies" if m.kind == "exact" else f"closely follows ({m.similarity:.0%})"
            detail = f"{what} “{m.document.work.title}” ({m.document.work.key}), " + (
                f"owner {m.document.work.owner}, licence {m.document.work.license}"
            )
            findings.append(Finding("copyright", detail, m.start, m.end, source=source))
        action: Literal["block", "flag"] = "block" if policy == "block" else "flag"
        return Verdict(
            self.name, action, max(m.similarity for m in matches), findings, stage=ctx.stage
        )
