"""The copyright guard: answers that reproduce a registered work are blocked, flagged, or
let through with a citation of the work's owner (the app's policy)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.guards.base import (
    Finding,
    Guard,
    GuardContext,
    GuardParts,
    GuardSetup,
    GuardSpec,
    RequestState,
    Verdict,
)
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register

if TYPE_CHECKING:
    from bastion.copyright.matcher import Match, Matcher

CopyrightAction = Literal["block", "attribute", "flag"]


class CopyrightSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True, description="Screen answers for copies of works registered with `bastion protect`."
    )
    index_path: str = Field(
        "protected/index.sqlite",
        description="The protected-works registry file; relative paths start at BASTION_HOME.",
    )
    action: CopyrightAction = Field(
        "block",
        description="block: stop the answer; attribute: allow it and cite the work's owner; "
        "flag: allow it and record the finding.",
    )
    min_chars: int = Field(
        160,
        ge=40,
        description="Shortest verbatim copy acted on (characters of the answer, compared after "
        "normalising case, whitespace and punctuation).",
    )
    near_similarity: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Share of words aligned with the work (0-1, over the words of both "
        "passages) at which an edited passage counts as a copy.",
    )
    near_min_chars: int = Field(
        120, ge=40, description="Shortest near-verbatim passage acted on (characters)."
    )

    def registry_path(self, home: Path) -> Path:
        """The registry file, relative paths taken from BASTION_HOME."""
        path = Path(self.index_path).expanduser()
        return path if path.is_absolute() else home / path


class CopyrightAppSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    copyright_action: CopyrightAction | None = Field(
        None, description="Overrides guards.copyright.action for this app."
    )


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


class CopyrightGuard(Guard):
    name = "copyright"
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

    def notice(self, verdicts: Sequence[Verdict], state: RequestState) -> str:
        """Citations of the protected works an answer draws on, for apps whose policy is
        `attribute` (the answer is allowed with its owners named)."""
        cited: dict[object, str] = {}
        for verdict in verdicts:
            for f in verdict.findings:
                if f.source and f.source.get("policy") == "attribute":
                    cited.setdefault(f.source.get("work"), attribution(f.source))
        return "\n\n" + "\n".join(cited.values()) if cited else ""


def build(settings: CopyrightSettings, setup: GuardSetup) -> GuardParts:
    if not settings.enabled:
        return GuardParts()
    from bastion.copyright.matcher import Matcher, MatchRules
    from bastion.copyright.registry import ProtectedRegistry

    rules = MatchRules(
        min_chars=settings.min_chars,
        near_similarity=settings.near_similarity,
        near_min_chars=settings.near_min_chars,
    )
    registry = ProtectedRegistry(settings.registry_path(setup.home))
    per_app = {n: s.copyright_action for n, s in setup.apps.items() if s.copyright_action}
    return GuardParts(output=[CopyrightGuard(Matcher(registry, rules), settings.action, per_app)])


@hookimpl
def register_guards(register: Register) -> None:
    register(
        GuardSpec(
            name="copyright",
            description="answers that copy a work registered with `bastion protect`.",
            settings=CopyrightSettings,
            app_settings=CopyrightAppSettings,
            order=50,
            build=build,
        )
    )
