"""The console's review queue (answers rated into feedback, campaign drafts decided) and its
data sources page (counts, the last ingest and what it skipped, merged contacts), over
real HTTP with the echo model."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bastion.apps.campaign_email.store import Campaigns
from bastion.audit import AuditQuery
from bastion.grounding.ingest import set_contact_ids
from bastion.platform import Platform
from bastion.storage.tables import CampaignEmail, Feedback
from conftest import ECHO_CONFIG, LiveServer, serving
from test_console import ConsoleClient, ask


@pytest.fixture
def reviewer(server: LiveServer) -> Iterator[ConsoleClient]:
    client = ConsoleClient(server, server.key("acme", "rita", "reviewer"))
    yield client
    client.http.close()


@pytest.fixture
def admin(server: LiveServer) -> Iterator[ConsoleClient]:
    client = ConsoleClient(server, server.key("acme", "alice", "admin"))
    yield client
    client.http.close()


def _feedback(platform: Platform) -> list[Feedback]:
    with platform.db.session() as s:
        return list(s.scalars(select(Feedback)))


def _traces(server: LiveServer, tenant: str) -> list[str]:
    return [r["trace_id"] for r in server.platform.audit.search(AuditQuery(tenant=tenant)).records]


# -- review: answers ----------------------------------------------------------------------


def test_a_reviewer_rates_an_answer_into_feedback(
    reviewer: ConsoleClient, server: LiveServer
) -> None:
    bob = server.key("acme", "bob", "user")
    assert ask(server, bob, "how do I reset the gateway?").status_code == 200
    assert ask(server, bob, "what does the T1 sensor measure?").status_code == 200
    assert ask(server, server.key("globex", "gina", "user"), "globex question").status_code == 200
    page = reviewer.get("/review")
    assert page.status_code == 200 and "how do I reset the gateway?" in page.text
    assert "globex question" not in page.text and "No feedback yet" in page.text
    assert "/console/audit/" not in page.text  # a reviewer may not open the audit trail
    trace = _traces(server, "acme")[0]  # the newest: the T1 question
    rating = {"thumbs": "down", "rating": "2", "corrected_text": "It measures temperature.",
              "comment": "too vague"}  # fmt: skip
    forged = reviewer.http.post(f"/console/review/answers/{trace}", data=rating)
    assert forged.status_code == 403 and "security token" in forged.text
    assert not _feedback(server.platform)
    bad = reviewer.post(f"/review/answers/{trace}", {**rating, "rating": "9"}, page="/review")
    assert bad.status_code == 400 and "from 1 to 5" in bad.text
    blank = reviewer.post(f"/review/answers/{trace}", {"comment": "hm"}, page="/review")
    assert blank.status_code == 400 and "needs a rating" in blank.text
    saved = reviewer.post(f"/review/answers/{trace}", rating, page="/review")
    assert saved.status_code == 303 and saved.headers["location"] == "/console/review?done=feedback"
    [row] = _feedback(server.platform)
    assert (row.tenant_id, row.trace_id, row.user) == ("acme", trace, "rita")
    assert (row.thumbs, row.rating, row.corrected_text, row.comment) == (
        -1, 2, "It measures temperature.", "too vague"
    )  # fmt: skip
    after = reviewer.get("/review", done="feedback").text
    assert "Your feedback is saved" in after and "You reviewed this answer: too vague" in after
    assert "rita: thumbs down, 2/5, corrected" in after
    changed = reviewer.post(f"/review/answers/{trace}", {"thumbs": "up"}, page="/review")
    assert changed.status_code == 409 and "cannot be changed" in changed.text
    other = _traces(server, "globex")[0]
    assert reviewer.post(f"/review/answers/{other}", rating, page="/review").status_code == 404
    assert len(_feedback(server.platform)) == 1


def test_the_answers_page_and_filters_by_app(reviewer: ConsoleClient, server: LiveServer) -> None:
    bob = server.key("acme", "bob", "user")
    for n in range(12):
        assert ask(server, bob, f"question number {n}").status_code == 200
    first = reviewer.get("/review")
    assert "12 in all" in first.text and "question number 11" in first.text
    assert "question number 1<" not in first.text  # on the next page
    older = reviewer.get("/review", before=first.text.split("before=")[1].split("&")[0])
    assert "question number 1<" in older.text and "question number 11" not in older.text
    none = reviewer.get("/review", app="finance")
    assert "No answers to review from app finance" in none.text
    assert reviewer.get("/review", before="-1").status_code == 400


def test_empty_review_queue_says_what_to_do(reviewer: ConsoleClient) -> None:
    page = reviewer.get("/review")
    assert page.status_code == 200
    assert "No answers to review. Answers appear here" in page.text
    assert "No app outputs wait for review" in page.text


# -- review: campaign emails --------------------------------------------------------------


def _drafts(server: LiveServer, tenant: str, traces: list[str]) -> list[int]:
    """A campaign with one draft per trace, written through the campaign store."""
    campaigns = Campaigns(server.platform.db, tenant)
    campaign = campaigns.open("fw42", "canada", 1, "Firmware 4.2 rolls out.", "olivia")
    ids = []
    for n, trace in enumerate(traces):
        row = campaigns.record(
            campaign, contact_id=f"contact_{n}", address=f"p{n}@example.com", status="draft",
            subject=f"Firmware 4.2 for you {n}", body=f"Hi P{n},\n\nFirmware 4.2 is here.",
            facts=[{"text": f"Ordered {n + 2} x ThermoPoint T1", "source": "erp-orders",
                    "record_id": f"SO-{n}"}],
            checks={"passed": n == 0, "brand_rules": {"passed": n == 0, "banned_terms":
                    [] if n == 0 else ["leverage"]}, "other_people": [],
                    "unsupported_products": [], "support": 0.8, "voice_similarity": 0.6},
            trace_id=trace, run_id="run1",
        )  # fmt: skip
        ids.append(row.id)
    return ids


def _email(server: LiveServer, email_id: int) -> CampaignEmail:
    with server.platform.db.session() as s:
        row = s.get(CampaignEmail, email_id)
    assert row is not None
    return row


def test_campaign_drafts_are_approved_and_edited_into_feedback(
    reviewer: ConsoleClient, server: LiveServer
) -> None:
    olivia = server.key("acme", "olivia", "admin")
    for n in range(2):
        assert ask(server, olivia, f"draft an email {n}").status_code == 200
    first, second = _drafts(server, "acme", _traces(server, "acme"))
    page = reviewer.get("/review")
    assert "Campaign fw42: to contact_0 &lt;p0@example.com&gt;" in page.text
    assert "Firmware 4.2 for you 1" in page.text and "Ordered 3 x ThermoPoint T1" in page.text
    assert "passes its checks" in page.text and "fails a check" in page.text
    assert "leverage" in page.text
    forged = reviewer.http.post(f"/console/review/emails/{first}", data={"decision": "approve"})
    assert forged.status_code == 403 and _email(server, first).status == "draft"
    unknown = reviewer.post(f"/review/emails/{first}", {"decision": "ship"}, page="/review")
    assert unknown.status_code == 400 and "approve, reject, edit" in unknown.text
    approved = reviewer.post(
        f"/review/emails/{first}", {"decision": "approve", "comment": "good"}, page="/review"
    )
    assert approved.status_code == 303 and approved.headers["location"].endswith("done=approved")
    row = _email(server, first)
    assert (row.status, row.reviewer, row.review_comment) == ("approved", "rita", "good")
    empty_edit = reviewer.post(
        f"/review/emails/{second}", {"decision": "edit", "body": " "}, page="/review"
    )
    assert empty_edit.status_code == 400 and "needs the email&#39;s new body" in empty_edit.text
    edited = reviewer.post(
        f"/review/emails/{second}",
        {"decision": "edit", "subject": "Firmware 4.2, in stages", "body": "Hi P1, better."},
        page="/review",
    )
    assert edited.status_code == 303
    row = _email(server, second)
    assert (row.status, row.subject, row.body) == (
        "edited", "Firmware 4.2, in stages", "Hi P1, better."
    )  # fmt: skip
    feedback = {f.trace_id: f for f in _feedback(server.platform)}
    assert feedback[_email(server, first).trace_id or ""].thumbs == 1
    assert feedback[_email(server, first).trace_id or ""].comment == "good"
    assert feedback[row.trace_id or ""].corrected_text == "Hi P1, better."
    assert {f.user for f in feedback.values()} == {"rita"}
    again = reviewer.post(f"/review/emails/{first}", {"decision": "reject"}, page="/review")
    assert again.status_code == 409 and "not a draft" in again.text
    assert "No app outputs wait for review" in reviewer.get("/review").text
    not_a_number = reviewer.post("/review/emails/x", {"decision": "approve"}, page="/review")
    assert not_a_number.status_code == 400 and "email_id" in not_a_number.text


def test_another_tenants_email_is_not_found(server: LiveServer) -> None:
    [acme_email] = _drafts(server, "acme", ["no-trace"])
    globex = ConsoleClient(server, server.key("globex", "gus", "reviewer"))
    assert "contact_0" not in globex.get("/review").text
    answer = globex.post(f"/review/emails/{acme_email}", {"decision": "approve"}, page="/review")
    assert answer.status_code == 404 and "no campaign email" in answer.text
    assert _email(server, acme_email).status == "draft"
    globex.http.close()


# -- data sources -------------------------------------------------------------------------

CRM = (
    "id,first,last,email\nC1,Jane,Doe,jane@example.com\n,No,Id,none@example.com\n"
    "C2,Raj,Patel,raj@example.com\n"
)
SUPPORT = "id,name,email\nS1,Jane Doe,jane@example.com\nS2,Ana Ruiz,ana@example.com\n"


def _source(name: str, tenant: str, path: str, fields: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "tenant": tenant, "kind": "csv", "path": path, "entity": "contact",
            "id_field": "id", "fields": fields, "acl": ["sales"]}  # fmt: skip


@pytest.fixture
def grounded(home: Path) -> Iterator[LiveServer]:
    """A server whose acme tenant has two contact sources (one row skipped) and globex one."""
    (home / "crm.csv").write_text(CRM)
    (home / "support.csv").write_text(SUPPORT)
    config = copy.deepcopy(ECHO_CONFIG)
    config["sources"] = [
        _source("crm", "acme", "crm.csv", {"first_name": "first", "last_name": "last",
                                            "email": "email"}),
        _source("helpdesk", "acme", "support.csv", {"full_name": "name", "email": "email"}),
        _source("globex-crm", "globex", "support.csv", {"full_name": "name"}),
    ]  # fmt: skip
    with serving(home, config) as live:
        yield live


def test_sources_show_counts_skips_and_merged_contacts(grounded: LiveServer) -> None:
    admin = ConsoleClient(grounded, grounded.key("acme", "alice", "admin"))
    before = admin.get("/sources").text
    assert "crm" in before and "not recorded" in before and "none stored" in before
    assert "No contact has records from more than one source" in before
    grounded.platform.grounding.ingest()
    # What identity resolution writes: Jane Doe of both sources is one contact.
    set_contact_ids(grounded.platform.db, "acme", {
        ("crm", "C1"): "contact_jane", ("helpdesk", "S1"): "contact_jane",
        ("crm", "C2"): "contact_raj", ("helpdesk", "S2"): "contact_ana",
    })  # fmt: skip
    page = admin.get("/sources")
    assert page.status_code == 200
    assert "contact: 2" in page.text and "2 added, 0 updated, 0 unchanged, 0 removed" in page.text
    assert "globex-crm" not in page.text
    assert 'href="#skipped-crm">1</a>' in page.text and "no value in the id field" in page.text
    assert "1 contacts combine records of more than one source" in page.text
    assert "<code>contact_jane</code>" in page.text and "<code>S1</code>" in page.text
    assert "contact_raj" not in page.text  # one source only: not a merge
    assert admin.get("/sources", page="0").status_code == 400
    assert "no merged contacts on this page" in admin.get("/sources", page="2").text
    reviewer = ConsoleClient(grounded, grounded.key("acme", "rita", "reviewer"))
    refused = reviewer.get("/sources")
    assert refused.status_code == 403 and "for admins" in refused.text
    admin.http.close()
    reviewer.http.close()


def test_sources_empty_state(admin: ConsoleClient) -> None:
    page = admin.get("/sources")
    assert page.status_code == 200 and "No data sources yet" in page.text
    assert "No contact has records from more than one source" in page.text
