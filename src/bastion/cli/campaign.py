"""`bastion campaign`: campaigns of the campaign-email app, their review queue and export."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bastion.cli.common import _as, _platform, console, err, reports_errors

campaign_app = typer.Typer(
    help="Campaign emails: list, review (approve, reject, edit) and export.",
    no_args_is_help=True,
)
AsUser = Annotated[str, typer.Option("--as", help="As TENANT/USER.")]


def _campaign(platform: Any, principal: Any, name: str) -> Any:
    from bastion.apps.campaign_email.store import Campaigns
    from bastion.apps.segment import saved

    saved(platform, principal)  # the role may use the marketing apps
    campaigns = Campaigns(platform.db, principal.tenant)
    return campaigns, campaigns.get(name)


@campaign_app.command("list")
@reports_errors
def campaign_list(
    as_user: AsUser, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """The tenant's campaigns and their emails by status."""
    from bastion.apps.campaign_email.store import Campaigns
    from bastion.apps.segment import saved

    platform = _platform()
    principal = _as(platform, as_user)
    saved(platform, principal)
    rows = Campaigns(platform.db, principal.tenant).summaries()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(
            "No campaigns yet: `bastion app run campaign-email --segment NAME --brief "
            "TEXT --as T/U` drafts one."
        )
        return
    table = Table("campaign", "segment", "by", "emails", "brief")
    for r in rows:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(r["emails"].items()))
        table.add_row(
            r["name"],
            f"{r['segment']} v{r['segment_version']}",
            r["created_by"],
            counts,
            r["brief"][:80],
        )
    console.print(table)


@campaign_app.command("review")
@reports_errors
def campaign_review(
    name: Annotated[str, typer.Argument(help="The campaign.")],
    as_user: AsUser,
    status: Annotated[
        str, typer.Option(help="draft: the review queue; or approved, ...")
    ] = "draft",
) -> None:
    """The campaign's emails of one status (default: the drafts waiting for review)."""
    platform = _platform()
    campaigns, campaign = _campaign(platform, _as(platform, as_user), name)
    rows = campaigns.emails(campaign, status)
    if not rows:
        console.print(f"No {status} emails in '{name}'.")
    for row in rows:
        verdict = "passes its checks" if row.checks.get("passed") else "FAILS a check"
        console.print(
            f"[bold]{row.contact_id}[/bold] <{row.address}> ({verdict}): {row.subject}",
            highlight=False,
        )
        console.print(row.body, highlight=False, markup=False)
        failed = {
            k: v
            for k, v in row.checks.items()
            if k in ("other_people", "unsupported_products") and v
        }
        if not row.checks.get("brand_rules", {}).get("passed", True):
            failed["brand_rules"] = row.checks["brand_rules"]
        if failed:
            console.print(f"checks: {json.dumps(failed)}", highlight=False, markup=False)
        console.print()
    err.print(f"Decide with `bastion campaign approve|reject|edit {name} CONTACT_ID --as ...`")


def _decide(
    name: str, contact_id: str, as_user: str, decision: str, body: str | None, comment: str | None
) -> None:
    from bastion.apps.campaign_email import review

    platform = _platform()
    email = review(
        platform, _as(platform, as_user), name, contact_id, decision, body=body, comment=comment
    )
    err.print(
        f"{contact_id}: {email.status} (recorded as feedback on trace {email.trace_id})",
        highlight=False,
    )


Contact = Annotated[str, typer.Argument(help="The recipient's contact id.")]
Comment = Annotated[str | None, typer.Option(help="Why (kept with the feedback).")]


@campaign_app.command("approve")
@reports_errors
def campaign_approve(
    name: str, contact_id: Contact, as_user: AsUser, comment: Comment = None
) -> None:
    """Approve a drafted email (feedback: thumbs up)."""
    _decide(name, contact_id, as_user, "approve", None, comment)


@campaign_app.command("reject")
@reports_errors
def campaign_reject(
    name: str, contact_id: Contact, as_user: AsUser, comment: Comment = None
) -> None:
    """Reject a drafted email (feedback: thumbs down)."""
    _decide(name, contact_id, as_user, "reject", None, comment)


@campaign_app.command("edit")
@reports_errors
def campaign_edit(
    name: str,
    contact_id: Contact,
    as_user: AsUser,
    body_file: Annotated[Path, typer.Option("--body", help="A file with the corrected body.")],
    comment: Comment = None,
) -> None:
    """Replace a drafted email's body (feedback: the corrected text, for tuning)."""
    from bastion.errors import BadRequest

    try:
        body = body_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"cannot read --body {body_file}: {exc.strerror or exc}") from None
    _decide(name, contact_id, as_user, "edit", body, comment)


@campaign_app.command("export")
@reports_errors
def campaign_export(
    name: str,
    as_user: AsUser,
    jsonl: Annotated[Path | None, typer.Option("--jsonl", help="One JSON line per email.")] = None,
    eml: Annotated[Path | None, typer.Option("--eml", help="A folder for one .eml each.")] = None,
    status: Annotated[
        str, typer.Option(help="Which emails (approved, edited, draft, all).")
    ] = "approved,edited",
    sender: Annotated[str, typer.Option("--from", help="The From address.")] = "news@acmecorp.com",
) -> None:
    """Write a campaign's emails (by default the approved and edited ones) as JSON Lines
    and/or .eml files ready for a mail tool."""
    from bastion.errors import BadRequest
    from bastion.labelled.datasets import write_jsonl

    if jsonl is None and eml is None:
        raise BadRequest("give --jsonl FILE and/or --eml FOLDER")
    platform = _platform()
    campaigns, campaign = _campaign(platform, _as(platform, as_user), name)
    wanted = None if status == "all" else set(status.split(","))
    rows = [
        r
        for r in campaigns.emails(campaign)
        if r.status != "skipped" and (wanted is None or r.status in wanted)
    ]
    if jsonl is not None:
        write_jsonl(
            jsonl,
            [
                {
                    "contact_id": r.contact_id,
                    "to": r.address,
                    "subject": r.subject,
                    "body": r.body,
                    "facts": r.facts,
                    "checks": r.checks,
                    "status": r.status,
                }
                for r in rows
            ],
        )
    if eml is not None:
        eml.mkdir(parents=True, exist_ok=True)
        for r in rows:
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = sender, r.address or "", r.subject
            message["X-Bastion-Campaign"] = name
            message.set_content(r.body)
            target = eml / f"{r.contact_id}.eml"
            partial = target.with_suffix(".eml.partial")
            partial.write_bytes(bytes(message))
            partial.replace(target)
    err.print(f"{len(rows)} email(s) exported", highlight=False)
