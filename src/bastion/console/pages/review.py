"""The review queue: rate answers (feedback that fine-tuning learns from) and approve,
reject or edit the campaign emails apps drafted."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.apps.campaign_email import review as review_email
from bastion.apps.campaign_email.store import DECISIONS, Campaigns
from bastion.audit import AuditQuery
from bastion.console.web import Console, Numbered, ReviewerViewer, redirect
from bastion.errors import BadRequest

ANSWERS_PER_PAGE = 10
EMAILS_PER_PAGE = 10
# The API's limits on feedback (bastion.server.schemas.FeedbackRequest).
MAX_CORRECTED = 100_000
MAX_COMMENT = 10_000
# What the page says after a decision: the query names one of these, never free text.
DONE = {
    "feedback": "Your feedback is saved; it is training data for the next fine-tuning.",
    "approved": "The email is approved.",
    "rejected": "The email is rejected.",
    "edited": "Your edit is saved and the email approved as edited.",
}


def last_user_message(prompt: list[dict[str, Any]] | None) -> str | None:
    """What the person asked last, as the model saw it (masked)."""
    for message in reversed(prompt or []):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return None


def check_lines(checks: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """A drafted email's checks as (what, result, passed) lines for the reviewer."""
    rules = checks.get("brand_rules") or {}
    lines = [
        ("Brand rules", "met" if rules.get("passed", True) else "broken", rules.get("passed", True))
    ]
    if rules.get("banned_terms"):
        lines.append(("Words the brand avoids", ", ".join(rules["banned_terms"]), False))
    for key, label in (("subject_ok", "Subject line"), ("exclamations_ok", "Exclamation marks"),
                       ("footer", "Unsubscribe footer"), ("sign_off", "Sign-off")):  # fmt: skip
        if key in rules and not rules[key]:
            lines.append((label, "missing or wrong", False))
    if rules.get("too_long"):
        lines.append(("Length", f"{rules.get('words')} words, too long", False))
    others = checks.get("other_people") or []
    lines.append(("Names other people", ", ".join(others) or "no", not others))
    products = checks.get("unsupported_products") or []
    lines.append(("Products not in the brief or records", ", ".join(products) or "none",
                  not products))  # fmt: skip
    if checks.get("support") is not None:
        lines.append(("Support by brief and facts", f"{checks['support']:.2f}", True))
    if checks.get("voice_similarity") is not None:
        lines.append(("Similarity to the brand's voice", f"{checks['voice_similarity']:.2f}", True))
    return lines


def _thumbs(value: str) -> int | None:
    if value in ("", "none"):
        return None
    if value not in ("up", "down"):
        raise BadRequest(f"thumbs '{value}' is unknown; choose up, down or none")
    return 1 if value == "up" else -1


def _rating(value: str) -> int | None:
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 5:
        raise BadRequest(f"rating '{value}' is not a whole number from 1 to 5; pick one or none")
    return int(value)


def _text(value: str, name: str, limit: int) -> str | None:
    text = value.strip()
    if len(text) > limit:
        raise BadRequest(f"the {name} is {len(text)} characters; keep it under {limit}")
    return text or None


def register(web: FastAPI, console: Console) -> None:
    platform = console.platform

    @web.get("/review")
    def review_page(
        request: Request,
        viewer: ReviewerViewer,
        app: str = "",
        before: int | None = Query(None, ge=0),
        after: int | None = Query(None, ge=0),
        emails: int = Query(1, ge=1, le=100_000),
        done: str = "",
    ) -> Response:
        tenant = viewer.principal.tenant
        answers = platform.audit.search(
            AuditQuery(tenant=tenant, status="ok", app=app.strip() or None, before=before,
                       after=after, limit=ANSWERS_PER_PAGE)
        )  # fmt: skip
        feedback = platform.experiments.feedback.for_traces(
            tenant, [r["trace_id"] for r in answers.records]
        )
        drafts, drafts_total = Campaigns(platform.db, tenant).drafts(
            EMAILS_PER_PAGE, (emails - 1) * EMAILS_PER_PAGE
        )
        return console.page(
            request, viewer, "review.html", answers=answers, feedback=feedback,
            asked={r["trace_id"]: last_user_message(r.get("prompt")) for r in answers.records},
            app=app.strip(), drafts=drafts, emails_at=Numbered(emails, drafts_total,
            EMAILS_PER_PAGE), check_lines=check_lines,
            decisions=list(DECISIONS), notice=DONE.get(done),
        )  # fmt: skip

    @web.post("/review/answers/{trace_id}")
    async def review_answer(request: Request, trace_id: str, viewer: ReviewerViewer) -> Response:
        form = await console.form(request, viewer)
        thumbs = _thumbs(form.get("thumbs", ""))
        rating = _rating(form.get("rating", "").strip())
        corrected = _text(form.get("corrected_text", ""), "corrected answer", MAX_CORRECTED)
        comment = _text(form.get("comment", ""), "comment", MAX_COMMENT)
        # The API's own path (POST /v1/feedback): tenant check, who may rate, no changes.
        await run_in_threadpool(
            lambda: platform.experiments.feedback.record(
                viewer.principal, trace_id, thumbs=thumbs, rating=rating,
                corrected_text=corrected, comment=comment,
            )
        )  # fmt: skip
        return redirect("/review", done="feedback")

    @web.post("/review/emails/{email_id}")
    async def review_campaign_email(
        request: Request, email_id: int, viewer: ReviewerViewer
    ) -> Response:
        form = await console.form(request, viewer)
        campaign, email = Campaigns(platform.db, viewer.principal.tenant).email(email_id)
        decision = form.get("decision", "")
        if decision not in DECISIONS:
            raise BadRequest(
                f"decision '{decision}' is unknown; choose one of {', '.join(DECISIONS)}"
            )
        comment = _text(form.get("comment", ""), "comment", MAX_COMMENT)
        body = subject = None
        if decision == "edit":
            body = _text(form.get("body", ""), "body", MAX_CORRECTED)
            subject = _text(form.get("subject", ""), "subject", 300)
            if body is None:
                raise BadRequest("an edit needs the email's new body; write it in the Body box")
        await run_in_threadpool(
            lambda: review_email(
                platform, viewer.principal, campaign.name, email.contact_id, decision,
                body=body, subject=subject, comment=comment,
            )
        )  # fmt: skip
        return redirect("/review", done=DECISIONS[decision])
