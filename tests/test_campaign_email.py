"""The campaign-email app on the demo company: the voice read from the brand guide, one
email per segment member with facts from their own records, the brand rules, resuming,
the review queue as feedback, and the exports."""

from __future__ import annotations

import email
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bastion.apps import run_app
from bastion.apps.campaign_email import review
from bastion.apps.campaign_email.facts import recipient
from bastion.apps.campaign_email.voice import assemble, check_rules, read_profile, trim_words
from bastion.cli import app as cli
from bastion.demo.content import BRAND_VOICE
from bastion.errors import BadRequest, Conflict, PermissionDenied
from bastion.platform import Platform
from bastion.storage.tables import Feedback
from conftest import SCRIPT

PROFILE = read_profile(BRAND_VOICE, [])
# (The echo model answers with the prompt, which has no "Subject:" line: the subject is
# then the brief's first words.)
BRIEF = (
    "Firmware 4.2 updates your gateways in stages: 10 % first, the rest a day later. "
    "Join the webinar on January 20."
)


def test_the_voice_is_read_from_the_guide() -> None:
    assert "leverage" in PROFILE.avoid and "seamless" in PROFILE.avoid
    assert "EdgeGateway G2 Rugged" in PROFILE.products
    assert PROFILE.sign_off.endswith("The Acme Pulse team")
    assert any(t.startswith("Plainspoken.") for t in PROFILE.tone)
    assert "Never use: revolutionary" in PROFILE.instructions()


def test_brand_rules_are_added_by_construction_and_checked() -> None:
    footer = "Unsubscribe: https://example.com/u?c=1"
    body = assemble("Ana", "We leverage seamless sensors! Really! " * 3, footer, PROFILE)
    assert body.startswith("Hi Ana,") and body.endswith(footer) and PROFILE.sign_off in body
    checks = check_rules("Great news!", body, footer, PROFILE)
    assert checks.banned_terms == ["leverage", "seamless"]
    assert not checks.subject_ok and not checks.exclamations_ok and not checks.passed
    assert check_rules("Firmware 4.2 in stages", assemble("Ana", "Plain.", footer, PROFILE),
                       footer, PROFILE).passed  # fmt: skip
    assert trim_words("One two three. Four five six seven.", 5) == "One two three."
    assert trim_words("One two. Three four five six.", 4) == "One two. Three four ..."


def test_facts_name_their_records_and_a_person_without_email_has_none() -> None:
    records = {
        "contact": [
            {"source": "crm", "source_id": "C1", "title": "Ana Ruiz",
             "fields": {"first_name": "Ana", "job_title": "Plant Manager"}},
        ],
        "account": [{"source": "acc", "source_id": "A1", "title": "Harbor Foods",
                     "fields": {"industry": "Food & Beverage"}}],
        "order": [{"source": "erp", "source_id": "SO-1", "title": "",
                   "fields": {"product": "ThermoPoint T1", "quantity": 4,
                              "ordered_at": "2025-10-14", "status": "shipped"}}],
        "case": [],
    }  # fmt: skip
    person = recipient("contact_1", records)
    assert person.email is None and person.first_name == "Ana"
    assert [(f.source, f.record_id) for f in person.facts] == [
        ("crm", "C1"),
        ("acc", "A1"),
        ("erp", "SO-1"),
    ]
    assert person.facts[2].text == "Ordered 4 x ThermoPoint T1 on October 14, 2025"


def a_segment(platform: Platform, name: str, region: str) -> None:
    spec = {
        "account": {"industry": [], "region": [region], "tier": [], "min_revenue_usd": None,
                    "max_revenue_usd": None},
        "contact": {"job_title": [], "has_email": None},
        "orders": None,
        "cases": None,
    }  # fmt: skip
    SCRIPT.append(json.dumps(spec))  # what the model answers to the request below
    olivia = platform.access.principal("acme/olivia")
    request = {"query": f"Contacts in {region}", "name": name}
    out = run_app(platform, "segment", request, olivia, model="scripted").output
    assert out.count > 2


def test_a_campaign_drafts_resumes_and_lands_in_review(
    demo: tuple[Platform, dict[str, Any]], tmp_path: Path
) -> None:
    platform, info = demo
    a_segment(platform, "canada", "Canada")
    olivia = platform.access.principal("acme/olivia")
    given = {"segment": "canada", "brief": BRIEF, "campaign": "fw42", "limit": 2}
    first = run_app(platform, "campaign-email", given, olivia, model="echo")
    out = first.output
    assert out.drafted == 2 and out.resumed == 0 and len(out.emails) == 2
    mail = out.emails[0]
    assert mail.subject == "Firmware 4.2 updates your gateways in stages: 10 % first"
    assert mail.status == "draft" and mail.to and "@" in mail.to
    assert mail.body.startswith("Hi ") and "unsubscribe?c=" + mail.contact_id in mail.body
    assert mail.checks["passed"] and mail.checks["support"] is not None
    # facts only from records marketing may read: accounts, contacts, orders; no cases
    assert mail.facts and {f.source for f in mail.facts} <= {
        "crm-contacts", "crm-accounts", "erp-orders"
    }  # fmt: skip
    record = platform.audit.get(mail.trace_id or "")
    assert record["extra"]["app_run"] == first.run_id
    # the same campaign again resumes after the two it did
    again = run_app(platform, "campaign-email", {**given, "limit": 1}, olivia, model="echo")
    assert again.output.resumed == 2 and again.output.drafted == 1
    assert len({e.contact_id for e in again.output.emails}) == 3
    with pytest.raises(Conflict, match="another brief"):
        run_app(platform, "campaign-email", {**given, "brief": BRIEF + " Now."}, olivia,
                model="echo")  # fmt: skip
    # the review queue: decisions become feedback on the email's model call
    approved = review(platform, olivia, "fw42", mail.contact_id, "approve", comment="good")
    assert approved.status == "approved"
    second = again.output.emails[1]
    edited = review(platform, olivia, "fw42", second.contact_id, "edit", body="Hi, better.")
    assert edited.body == "Hi, better." and edited.status == "edited"
    with pytest.raises(Conflict, match="not a draft"):
        review(platform, olivia, "fw42", mail.contact_id, "reject")
    with platform.db.session() as s:
        rows = {r.trace_id: r for r in s.scalars(select(Feedback))}
    assert rows[mail.trace_id].thumbs == 1 and rows[mail.trace_id].comment == "good"
    assert rows[second.trace_id].corrected_text == "Hi, better."
    # exports: JSON Lines and .eml, the reviewed ones by default
    env = {"BASTION_HOME": str(info["home"])}
    out_dir = tmp_path / "eml"
    result = CliRunner().invoke(
        cli,
        ["campaign", "export", "fw42", "--as", "acme/olivia", "--jsonl",
         str(tmp_path / "fw42.jsonl"), "--eml", str(out_dir)],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (tmp_path / "fw42.jsonl").read_text().splitlines()]
    assert {x["status"] for x in lines} == {"approved", "edited"}
    assert set(lines[0]) >= {"contact_id", "subject", "body", "facts", "checks"}
    parsed = email.message_from_bytes((out_dir / f"{mail.contact_id}.eml").read_bytes())
    assert parsed["To"] == mail.to and parsed["Subject"] == mail.subject
    listed = CliRunner().invoke(cli, ["campaign", "list", "--as", "acme/olivia", "--json"], env=env)
    fw42 = next(c for c in json.loads(listed.output) if c["name"] == "fw42")
    assert fw42["emails"] == {"approved": 1, "draft": 1, "edited": 1}


def test_an_email_naming_someone_else_or_banned_words_fails_its_checks(
    demo: tuple[Platform, dict[str, Any]],
) -> None:
    platform, _ = demo
    a_segment(platform, "us-east", "US East")
    olivia = platform.access.principal("acme/olivia")
    other = next(c for c in _contacts(platform) if c["fields"].get("email"))
    brief = (
        f"A seamless upgrade. Your colleague {other['title']} "
        f"({other['fields']['email']}) says our seamless gateways are great."
    )
    result = run_app(
        platform, "campaign-email",
        {"segment": "us-east", "brief": brief, "campaign": "leaky", "limit": 1},
        olivia, model="echo",
    )  # fmt: skip
    checks = result.output.emails[0].checks
    assert not checks["passed"] and checks["brand_rules"]["banned_terms"] == ["seamless"]
    if result.output.emails[0].contact_id != other["contact_id"]:
        assert other["title"] in checks["other_people"]
    assert len(result.calls) == 2  # asked once more, naming the banned word


def test_a_member_the_model_writes_nothing_for_is_skipped_not_the_campaign(
    demo: tuple[Platform, dict[str, Any]],
) -> None:
    platform, _ = demo
    a_segment(platform, "us-west-empty", "US West")
    olivia = platform.access.principal("acme/olivia")
    SCRIPT.extend(["", "   ", "Subject: Firmware 4.2\n\nThe update rolls out in stages."])
    result = run_app(
        platform, "campaign-email",
        {"segment": "us-west-empty", "brief": "Firmware 4.2 rolls out in stages.",
         "campaign": "half-empty", "limit": 2},
        olivia, model="scripted",
    )  # fmt: skip
    output = result.output
    assert len(result.calls) == 3  # asked twice for the first member, once for the second
    (skipped,) = [s for s in output.skipped if "no message" in s.reason]
    assert "asked twice" in skipped.reason
    assert len(output.emails) == 1 and "rolls out in stages" in output.emails[0].body


def _contacts(platform: Platform) -> list[dict[str, Any]]:
    from bastion.apps.segment import SegmentSettings
    from bastion.apps.segment.query import SegmentQuery
    from bastion.grounding.retriever import readable_by

    olivia = platform.access.principal("acme/olivia")
    query = SegmentQuery(platform.db, SegmentSettings().sources, "acme", readable_by(olivia))
    return query.contacts()


def test_who_may_write_a_campaign(demo: tuple[Platform, dict[str, Any]]) -> None:
    platform, _ = demo
    a_segment(platform, "us-south", "US South")
    carol = platform.access.principal("acme/carol")  # sales: may not read the brand guide
    with pytest.raises(PermissionDenied, match="brand"):
        run_app(platform, "campaign-email", {"segment": "us-south", "brief": BRIEF}, carol,
                model="echo")  # fmt: skip
    olivia = platform.access.principal("acme/olivia")
    with pytest.raises(BadRequest, match="invalid input"):
        run_app(platform, "campaign-email", {"segment": "us-south", "brief": "short"}, olivia)
    from bastion.errors import NotFound

    with pytest.raises(NotFound, match="segment list"):
        run_app(platform, "campaign-email", {"segment": "nope", "brief": BRIEF}, olivia,
                model="echo")  # fmt: skip
