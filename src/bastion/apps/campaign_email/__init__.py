"""`campaign-email`: a brief plus a saved segment gives one brand-voice email per member.

Steps: read the brand's voice from its guide and past campaigns (documents the author may
read); take the segment's members as the author may see them today; per member, draw a few
personal facts from their own records (each naming its record), have the model write a
subject and message under a JSON schema, in the brand's voice, from the brief and those
facts; add the greeting, sign-off and unsubscribe footer; check the brand rules, the
message's support by the brief and facts, and that it names no other person; record it as
a draft in the campaign's review queue. A run that stops resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import select

from bastion.access import Principal
from bastion.apps import AppRun, AppSpec
from bastion.apps.campaign_email.facts import Fact, Recipient, recipient
from bastion.apps.campaign_email.store import Campaigns
from bastion.apps.campaign_email.voice import (
    VoiceProfile,
    assemble,
    banned_in,
    check_rules,
    read_profile,
)
from bastion.apps.segment import NAME_PATTERN, members_now, saved, segment_query
from bastion.errors import BadRequest, PermissionDenied
from bastion.grounding.retriever import readable_by
from bastion.platform import Platform
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register
from bastion.storage.tables import CampaignEmail, GroundingRecord

SUBJECT_CHARS = 60


class CampaignSettings(BaseModel):
    voice_source: str = Field("marketing", description="Source of the brand guide and campaigns.")
    brand_guide: str = Field("brand-voice.md", description="The brand voice guide's record id.")
    past_campaigns: str = Field(
        "campaigns/", description="Record ids of past campaign emails start with this."
    )
    footer: str = Field(
        "You receive this email as a customer of Acme Corp. Unsubscribe: "
        "https://acmecorp.com/unsubscribe?c={contact_id}",
        description="The unsubscribe footer every email ends with ({contact_id} filled in).",
    )
    max_tokens: int = Field(320, ge=64, le=2048, description="Longest message generated.")


class CampaignRequest(BaseModel):
    segment: str = Field(pattern=NAME_PATTERN, description="A saved segment's name.")
    version: int | None = Field(None, ge=1, description="Its version (default: the latest).")
    brief: str = Field(min_length=10, max_length=2000, description="What the campaign says.")
    campaign: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="The campaign's name: the same name resumes it (default: from the "
        "segment and the brief).",
    )
    limit: int | None = Field(None, ge=1, le=10_000, description="Draft at most this many.")


class Email(BaseModel):
    contact_id: str
    to: str | None
    subject: str
    body: str
    facts: list[Fact]
    checks: dict[str, Any]
    status: str  # draft (in the review queue), approved, rejected, edited
    trace_id: str | None


class Skipped(BaseModel):
    contact_id: str
    reason: str


class CampaignResult(BaseModel):
    campaign: str
    segment: str
    version: int
    members: int
    drafted: int = Field(description="Emails written by this run.")
    resumed: int = Field(description="Members an earlier run of the campaign had done.")
    emails: list[Email] = Field(description="Every email of the campaign so far.")
    skipped: list[Skipped]


INSTRUCTIONS = """You write one marketing email for Acme Corp to one customer, in the brand's
voice, from the marketer's brief (source [1]) and facts about this customer (the other
sources). Use one or two of the facts where they fit the brief, exactly as given; never
invent facts, numbers or people, and do not cite sources with [n]. Do not write a
greeting or a sign-off: they are added. Answer with the subject line first, then the body:
Subject: ...

...
{voice}"""


@dataclass(frozen=True)
class _Draft:
    subject: str
    body: str


def _parse_draft(text: str, brief: str, profile: VoiceProfile) -> _Draft:
    """The model's subject line and message. Free text rather than JSON: a grammar that
    holds hundreds of tokens of prose makes llama.cpp's sampling many times slower. A
    missing subject becomes the brief's first words; one too long is cut at a word."""
    text = re.sub(r"\s*\[\d+\]", "", text).strip()  # citation marks, should it add them
    subject, body = "", text
    match = re.match(r"^\**subject:?\**:? *(.*)$", text.split("\n", 1)[0], re.IGNORECASE)
    if match:
        subject, body = match.group(1), text.split("\n", 1)[1] if "\n" in text else ""
    subject = (subject.strip().strip('"') or brief).replace("!", "").replace("\n", " ")
    if len(subject) > profile.subject_chars:
        subject = subject[: profile.subject_chars + 1].rsplit(" ", 1)[0].rstrip(",;:")
    return _Draft(subject.strip(), body.strip())


def voice_documents(run: AppRun, settings: CampaignSettings) -> tuple[str, list[str]]:
    """The guide and past campaigns, as the author may read them."""
    groups = set(readable_by(run.principal))
    with run.platform.db.session() as s:
        rows = s.scalars(
            select(GroundingRecord).where(
                GroundingRecord.tenant_id == run.principal.tenant,
                GroundingRecord.source == settings.voice_source,
            )
        ).all()
    mine = [r for r in rows if set(r.acl) & groups]
    guide = next((r.text for r in mine if r.source_id == settings.brand_guide), None)
    if guide is None:
        raise PermissionDenied(
            f"campaign-email writes in the brand's voice: it needs the guide "
            f"'{settings.brand_guide}' in source '{settings.voice_source}', which you may not "
            "read or which is not ingested"
        )
    past = [r.text for r in mine if r.source_id.startswith(settings.past_campaigns)]
    return guide, past


def _others(contacts: list[dict[str, Any]], recipient_id: str) -> list[str]:
    """Other people's names and email addresses (of the contact records the author may
    read)."""
    found = []
    for row in contacts:
        if row["contact_id"] == recipient_id:
            continue
        name = str(row["title"] or "")
        if len(name.split()) >= 2:
            found.append(name)
        if email := row["fields"].get("email"):
            found.append(str(email))
    return found


def unit_vector(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def _checks(
    subject: str,
    body: str,
    message: str,
    person: Recipient,
    support: float | None,
    profile: VoiceProfile,
    footer: str,
    others: list[str],
    brief: str,
    similarity: float,
) -> dict[str, Any]:
    rules = check_rules(subject, body, footer, profile)
    named = [o for o in others if o.lower() in message.lower()]
    said = f"{brief} {' '.join(f.text for f in person.facts)}".lower()
    unsupported = [
        p for p in profile.products if p.lower() in message.lower() and p.lower() not in said
    ]
    facts_used = [f.record_id for f in person.facts if _mentions(message, f)]
    passed = rules.passed and not named and not unsupported
    return {
        "passed": passed,
        "brand_rules": {**rules.model_dump(), "passed": rules.passed},
        "other_people": named,
        "unsupported_products": unsupported,
        "facts_used": facts_used,
        "support": support,
        "voice_similarity": round(similarity, 4),
    }


def _mentions(message: str, fact: Fact) -> bool:
    """Whether the message uses a fact: a distinctive phrase of it appears (a product, an
    account name, a case subject)."""
    text = fact.text.split(":", 1)[-1]
    phrases = re.findall(r"[A-Z][\w&-]*(?: [A-Z0-9][\w&-]*)+", text)
    return any(p.lower() in message.lower() for p in phrases)


def write(run: AppRun, request: CampaignRequest) -> CampaignResult:
    settings: CampaignSettings = run.settings
    platform, principal = run.platform, run.principal
    segments = saved(platform, principal)
    segment = segments.get(request.segment, request.version)
    _, members = members_now(platform, principal, segment)
    if not members:
        raise BadRequest(
            f"segment '{segment.name}' version {segment.version} has no members you may see "
            "today: there is no one to write to"
        )
    guide, past = voice_documents(run, settings)
    profile = read_profile(guide, past)
    name = request.campaign or _campaign_name(request, segment.version)
    campaigns = Campaigns(platform.db, principal.tenant)
    campaign = campaigns.open(name, segment.name, segment.version, request.brief, principal.user)
    done = campaigns.recorded(campaign)
    todo = [m for m in members if m.contact_id not in done][: request.limit]
    query = segment_query(platform, principal)
    contacts = query.contacts()
    embedder = platform.grounding.embedder
    centroid = unit_vector(embedder.embed(past).mean(axis=0)) if past else None
    instructions = INSTRUCTIONS.format(voice=profile.instructions())
    for n, member in enumerate(todo):
        run.progress(n, len(todo), f"email {n + 1} of {len(todo)}")
        person = recipient(member.contact_id, query.person_records(member.contact_id))
        if person.email is None:
            campaigns.record(
                campaign,
                contact_id=member.contact_id,
                address=None,
                status="skipped",
                reason="no email address in any record you may read",
                run_id=run.run_id,
            )
            continue
        sources = [run.material("brief", "The marketer's brief", request.brief)] + [
            run.material(f.record_id, f.source, f.text, source=f.source) for f in person.facts
        ]
        draft, answer = _draft(run, request.brief, instructions, sources, profile)
        if not draft.body:  # one member's failed draft does not stop the campaign
            campaigns.record(
                campaign,
                contact_id=member.contact_id,
                address=person.email,
                status="skipped",
                reason="the model wrote no message, asked twice; a larger --model writes one",
                run_id=run.run_id,
                trace_id=answer.trace_id,
            )
            continue
        subject = draft.subject
        footer = settings.footer.format(contact_id=member.contact_id)
        body = assemble(person.first_name, draft.body, footer, profile)
        similarity = (
            float(unit_vector(embedder.embed_one(draft.body)) @ centroid)
            if centroid is not None
            else 0.0
        )
        checks = _checks(
            subject,
            body,
            draft.body,
            person,
            answer.bastion.get("support"),
            profile,
            footer,
            _others(contacts, member.contact_id),
            request.brief,
            similarity,
        )
        campaigns.record(
            campaign,
            contact_id=member.contact_id,
            address=person.email,
            status="draft",
            subject=subject,
            body=body,
            facts=[f.model_dump() for f in person.facts],
            checks=checks,
            trace_id=answer.trace_id,
            run_id=run.run_id,
        )
    run.progress(len(todo), len(todo), "done")
    rows = campaigns.emails(campaign)
    return CampaignResult(
        campaign=campaign.name,
        segment=segment.name,
        version=segment.version,
        members=len(members),
        drafted=sum(r.run_id == run.run_id and r.status != "skipped" for r in rows),
        resumed=len(done),
        emails=[_email(r) for r in rows if r.status != "skipped"],
        skipped=[
            Skipped(contact_id=r.contact_id, reason=r.reason or "")
            for r in rows
            if r.status == "skipped"
        ],
    )


def _draft(
    run: AppRun,
    brief: str,
    instructions: str,
    sources: list[Any],
    profile: VoiceProfile,
) -> tuple[_Draft, Any]:
    """The model's subject and message; asked once more if it wrote no message, or, naming
    them, if it used words the brand avoids. The message may still be empty."""
    settings: CampaignSettings = run.settings
    extra = ""
    for _ in range(2):
        answer = run.ask(
            brief,
            instructions=instructions + extra,
            sources=sources,
            score_support=True,
            max_tokens=settings.max_tokens,
        )
        draft = _parse_draft(answer.text, brief, profile)
        if not draft.body:
            extra = "\nYour last answer had no message: write the email's text."
            continue
        banned = banned_in(f"{draft.subject}\n{draft.body}", profile)
        if not banned:
            break
        extra = f"\nYour last draft used {', '.join(banned)}: never use those words."
    return draft, answer


def _campaign_name(request: CampaignRequest, version: int) -> str:
    digest = hashlib.sha256(request.brief.encode("utf-8")).hexdigest()[:8]
    return f"{request.segment[:46]}-v{version}-{digest}"


def _email(row: CampaignEmail) -> Email:
    return Email(
        contact_id=row.contact_id,
        to=row.address,
        subject=row.subject,
        body=row.body,
        facts=[Fact.model_validate(f) for f in row.facts],
        checks=row.checks,
        status=row.status,
        trace_id=row.trace_id,
    )


def review(
    platform: Platform,
    principal: Principal,
    campaign_name: str,
    contact_id: str,
    decision: str,
    *,
    body: str | None = None,
    subject: str | None = None,
    comment: str | None = None,
) -> Email:
    """Approve, reject or edit a drafted email; the decision is also feedback on its model
    call (thumbs up or down, the edited text as the correction), so it becomes tuning data.
    Admins and reviewers may decide; anyone else needs a role that may use the marketing
    apps."""
    if not principal.may_review:
        saved(platform, principal)
    campaigns = Campaigns(platform.db, principal.tenant)
    campaign = campaigns.get(campaign_name)
    row = campaigns.decide(
        campaign, contact_id, decision, principal.user, body=body, subject=subject,
        comment=comment,
    )  # fmt: skip
    if row.trace_id is not None:
        platform.experiments.feedback.record(
            principal,
            row.trace_id,
            thumbs=-1 if decision == "reject" else 1,
            corrected_text=body if decision == "edit" else None,
            comment=comment,
        )
    return _email(row)


def score(output: CampaignResult, expected: dict[str, Any]) -> dict[str, float | None]:
    """Means over the campaign's emails: brand rules met, emails naming no other person,
    products only from the brief or the person's records, facts used, support, voice."""
    emails = output.emails
    if not emails:
        return {}

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    supports = [e.checks["support"] for e in emails if e.checks.get("support") is not None]
    return {
        "brand_rules": mean([float(e.checks["brand_rules"]["passed"]) for e in emails]),
        "no_other_people": mean([float(not e.checks["other_people"]) for e in emails]),
        "products_grounded": mean([float(not e.checks["unsupported_products"]) for e in emails]),
        "uses_a_fact": mean([float(bool(e.checks["facts_used"])) for e in emails]),
        "support": mean(supports) if supports else None,
        "voice_similarity": mean([e.checks["voice_similarity"] for e in emails]),
    }


def markdown(output: CampaignResult) -> str:
    lines = [
        f"## Campaign `{output.campaign}`: segment `{output.segment}` v{output.version}",
        "",
        f"{output.members} members; {output.drafted} emails drafted now, {output.resumed} "
        f"done before; {len(output.skipped)} skipped. Drafts wait for review: "
        f"`bastion campaign review {output.campaign} --as ...`.",
    ]
    for e in output.emails[:5]:
        verdict = "passes its checks" if e.checks.get("passed") else "FAILS a check"
        lines += [
            "",
            f"### To {e.to} ({e.contact_id}, {e.status}, {verdict})",
            "",
            f"**{e.subject}**",
            "",
            e.body,
        ]
    if len(output.emails) > 5:
        lines.append(f"\n... and {len(output.emails) - 5} more (`--format json` or `--out`)")
    for s in output.skipped:
        lines.append(f"- skipped {s.contact_id}: {s.reason}")
    return "\n".join(lines)


def jsonl(output: CampaignResult) -> list[dict[str, Any]]:
    """One line per email: what `--out FILE.jsonl` writes."""
    return [
        {
            "contact_id": e.contact_id,
            "to": e.to,
            "subject": e.subject,
            "body": e.body,
            "facts": [f.model_dump() for f in e.facts],
            "checks": e.checks,
            "status": e.status,
        }
        for e in output.emails
    ]


@hookimpl
def register_apps(register: Register) -> None:
    register(
        AppSpec(
            name="campaign-email",
            description="one brand-voice email per member of a saved segment, for review",
            settings=CampaignSettings,
            input=CampaignRequest,
            output=CampaignResult,
            run=write,
            markdown=markdown,
            score=score,
            jsonl=jsonl,
        )
    )
