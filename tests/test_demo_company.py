"""The demo company: deterministic, internally consistent and shaped the way connectors read it."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from bastion.demo import company as company_module
from bastion.demo.company import CompanySummary, generate_company

SCALE = 0.3


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CompanySummary]:
    root = tmp_path_factory.mktemp("acme") / "data"
    return root, generate_company(root, scale=SCALE)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CompanySummary]:
    root = tmp_path_factory.mktemp("acme-full") / "data"
    return root, generate_company(root)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _slack_days(root: Path) -> dict[str, list[list[dict[str, Any]]]]:
    slack = root / "slack"
    return {
        folder.name: [_json(day) for day in sorted(folder.glob("*.json"))]
        for folder in sorted(slack.iterdir())
        if folder.is_dir()
    }


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-10:]


def test_same_seed_gives_the_same_bytes(acme: tuple[Path, CompanySummary], tmp_path: Path) -> None:
    root, summary = acme
    again = generate_company(tmp_path / "again", scale=SCALE)
    first, second = _files(root), _files(tmp_path / "again")
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
    assert again == summary
    generate_company(tmp_path / "other", seed=8, scale=SCALE)
    other = _files(tmp_path / "other")
    assert other["crm/contacts.csv"] != first["crm/contacts.csv"]
    assert other["slack/support/2026-01-05.json"] != first["slack/support/2026-01-05.json"]


def test_counts_follow_the_scale(
    acme: tuple[Path, CompanySummary], full: tuple[Path, CompanySummary]
) -> None:
    (_, small), (full_root, large) = acme, full
    assert (large.accounts, large.contacts, large.support_customers) == (40, 200, 150)
    assert (large.cases, large.orders) == (120, 400)
    assert (small.accounts, small.contacts, small.support_customers) == (12, 60, 45)
    assert (small.cases, small.orders) == (36, 120)
    assert 2.5 * small.slack_messages < large.slack_messages < 4 * small.slack_messages
    for fixed in ("products", "articles", "campaigns", "slack_channels"):
        assert getattr(small, fixed) == getattr(large, fixed)
    assert large.to_dict()["slack_channels"] == 7
    # Text stays small enough for a demo index.
    text = sum(len(b) for n, b in _files(full_root).items() if not n.endswith(".pdf"))
    assert text < 1_500_000


def test_summary_counts_match_the_files(acme: tuple[Path, CompanySummary]) -> None:
    root, summary = acme
    with sqlite3.connect(root / "erp.sqlite") as con:
        products = con.execute("SELECT count(*) FROM products").fetchone()[0]
        orders = con.execute("SELECT count(*) FROM orders").fetchone()[0]
    articles = [p for p in (root / "kb").iterdir() if p.name != "_acl.json"]
    slack = root / "slack"
    assert summary.to_dict() == {
        "accounts": len(_csv(root / "crm" / "accounts.csv")),
        "contacts": len(_csv(root / "crm" / "contacts.csv")),
        "support_customers": len(_jsonl(root / "support" / "customers.jsonl")),
        "cases": len(_jsonl(root / "support" / "cases.jsonl")),
        "products": products,
        "orders": orders,
        "articles": len(articles),
        "campaigns": len(list((root / "marketing" / "campaigns").glob("*.md"))),
        "slack_messages": sum(len(day) for days in _slack_days(root).values() for day in days),
        "slack_channels": len(_json(slack / "channels.json")) + len(_json(slack / "groups.json")),
    }


def test_records_parse_and_point_at_each_other(acme: tuple[Path, CompanySummary]) -> None:
    root, _ = acme
    usernames = {u["name"] for u in _json(root / "slack" / "users.json")}
    accounts = {a["account_id"]: a for a in _csv(root / "crm" / "accounts.csv")}
    contacts = {c["contact_id"]: c for c in _csv(root / "crm" / "contacts.csv")}
    assert list(accounts)[:2] == ["A001", "A002"] and list(contacts)[:1] == ["C0001"]
    for account in accounts.values():
        assert account["tier"] in {"strategic", "growth", "smb"}
        assert account["owner"] in usernames and int(account["annual_revenue_usd"]) > 0
        assert account["notes"]
    for contact in contacts.values():
        assert contact["account_id"] in accounts
        assert re.fullmatch(r"[a-z0-9._]+@[a-z0-9]+\.com", contact["email"])
        assert len(_digits(contact["phone"])) == 10
    customers = {c["customer_id"]: c for c in _jsonl(root / "support" / "customers.jsonl")}
    assert set(next(iter(customers.values()))) == {
        "customer_id",
        "name",
        "email",
        "phone",
        "company",
    }
    cases = _jsonl(root / "support" / "cases.jsonl")
    for case in cases:
        assert case["customer_id"] in customers and case["assignee"] in usernames
        assert case["status"] in {"open", "pending", "closed"}
        assert case["created_at"] < "2026-01-05T09:00:00Z"
        assert 3 <= case["body"].count(". ") + case["body"].count("? ") + 1 <= 6
    assert [c["case_id"] for c in cases][:2] == ["CS-5001", "CS-5002"]
    with sqlite3.connect(root / "erp.sqlite") as con:
        skus = {row[0] for row in con.execute("SELECT sku FROM products")}
        orders = con.execute("SELECT * FROM orders").fetchall()
    assert len(skus) >= 15
    for order_id, account_id, contact_id, sku, quantity, total, status, ordered_at in orders:
        assert order_id.startswith("SO-") and sku in skus and quantity > 0 and total >= 0
        assert contacts[contact_id]["account_id"] == account_id
        assert "2024-01-01" < ordered_at < "2026-01-05" and status
    mentioned = {m for case in cases for m in re.findall(r"SO-\d+", case["body"])}
    assert mentioned and mentioned <= {o[0] for o in orders}


def test_identity_truth_covers_every_person_once(acme: tuple[Path, CompanySummary]) -> None:
    root, _ = acme
    people = _json(root / "truth" / "identity.json")["people"]
    keys = [key for person in people for key in person]
    assert len(keys) == len(set(keys))
    users = _json(root / "slack" / "users.json")
    expected = (
        {f"crm-contacts:{c['contact_id']}" for c in _csv(root / "crm" / "contacts.csv")}
        | {
            f"support-customers:{c['customer_id']}"
            for c in _jsonl(root / "support/customers.jsonl")
        }
        | {f"slack:{u['id']}" for u in users if not u["is_bot"]}
    )
    assert set(keys) == expected
    linked = [p for p in people if len(p) > 1]
    assert len(linked) >= 25
    assert any(len(p) == 3 for p in people)  # one contact with two support profiles
    assert any(k.startswith("slack:") for p in linked for k in p)  # staff testing the portal


def test_support_customers_are_crm_contacts_written_differently(
    acme: tuple[Path, CompanySummary],
) -> None:
    root, _ = acme
    contacts = {c["contact_id"]: c for c in _csv(root / "crm" / "contacts.csv")}
    customers = {c["customer_id"]: c for c in _jsonl(root / "support" / "customers.jsonl")}
    pairs = [
        (contacts[a.split(":")[1]], customers[b.split(":")[1]])
        for person in _json(root / "truth" / "identity.json")["people"]
        for a in person
        for b in person
        if a.startswith("crm-contacts:") and b.startswith("support-customers:")
    ]
    assert len(pairs) == round(0.7 * len(customers))
    same_phone = [c for c, s in pairs if s["phone"] and _digits(s["phone"]) == _digits(c["phone"])]
    assert len(same_phone) >= 0.85 * len(pairs)
    assert all(c["phone"] != s["phone"] for c, s in pairs)  # always another format
    assert any(s["email"] != c["email"] and s["email"].lower() == c["email"] for c, s in pairs)
    assert any("+support@" in s["email"] for _, s in pairs)
    assert any(s["name"] == f"{c['last_name']}, {c['first_name']}" for c, s in pairs)
    assert any(s["name"] != f"{c['first_name']} {c['last_name']}" for c, s in pairs)


def test_slack_export_structure(acme: tuple[Path, CompanySummary]) -> None:
    root, _ = acme
    slack = root / "slack"
    users = {u["name"]: u for u in _json(slack / "users.json")}
    assert {"alice", "bob", "carol", "dave"} <= set(users) and len(users) >= 14
    assert users["alice"]["profile"]["email"] == "alice@acmecorp.com"
    assert sum(u["is_bot"] for u in users.values()) == 1
    ids = {u["id"] for u in users.values()}
    public = {c["name"]: c for c in _json(slack / "channels.json")}
    private = {c["name"]: c for c in _json(slack / "groups.json")}
    assert set(public) == {"general", "support", "sales", "engineering", "random"}
    assert set(private) == {"exec-private", "deal-desk"}
    assert public["general"]["is_general"] and not public["random"]["is_general"]
    execs = set(private["exec-private"]["members"])
    assert users["alice"]["id"] in execs and len(execs) == 3
    assert not execs & {users[u]["id"] for u in ("bob", "carol", "dave")}
    assert users["carol"]["id"] in private["deal-desk"]["members"]
    days = _slack_days(root)
    assert set(days) == set(public) | set(private)
    subtypes = set()
    for name, files in days.items():
        assert len(files) == 10
        for messages in files:
            stamps = [m["ts"] for m in messages]
            assert stamps == sorted(stamps, key=float) and len(set(stamps)) == len(stamps)
            by_ts = {m["ts"]: m for m in messages}
            for m in messages:
                assert m["type"] == "message" and m["user"] in ids
                assert set(re.findall(r"<@(U\w+)>", m["text"])) <= ids
                subtypes.add(m.get("subtype"))
                if "thread_ts" in m and m["thread_ts"] != m["ts"]:
                    parent = by_ts[m["thread_ts"]]
                    assert float(parent["ts"]) < float(m["ts"])
                    assert {"user": m["user"], "ts": m["ts"]} in parent["replies"]
                elif "thread_ts" in m:
                    assert m["reply_count"] == len(m["replies"]) >= 1
            members = {**public, **private}[name]["members"]
            assert all(m["user"] in members for m in messages)
    assert "channel_join" in subtypes


def test_confidential_talk_stays_in_private_channels(full: tuple[Path, CompanySummary]) -> None:
    texts = {
        name: " ".join(m["text"] for day in days for m in day)
        for name, days in _slack_days(full[0]).items()
    }
    for secret in ("Project Bluebird", "no layoffs are planned", "February 12, 2026", "$42M"):
        assert secret in texts["exec-private"]
    assert not any("Bluebird" in text for name, text in texts.items() if name != "exec-private")
    assert re.search(r"Approved at \d+%", texts["deal-desk"])
    assert "Approved at" not in texts["sales"]


def test_knowledge_base_formats(acme: tuple[Path, CompanySummary]) -> None:
    root, _ = acme
    kb = root / "kb"
    by_kind: dict[str, list[Path]] = {}
    for path in kb.iterdir():
        if path.name != "_acl.json":
            by_kind.setdefault(path.suffix, []).append(path)
    assert {k: len(v) for k, v in by_kind.items()} == {".md": 14, ".html": 4, ".pdf": 2}
    for path in by_kind[".md"]:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# ") and "\n## " in text and len(text) > 1500
    for path in by_kind[".html"]:
        page = path.read_text(encoding="utf-8")
        title = re.search(r"<title>(.*)</title>", page)
        assert title and f"<h1>{title[1]}</h1>" in page
        assert "<script>" in page and "<nav" in page and "<h2>" in page and "<ul>" in page
    for path in by_kind[".pdf"]:
        reader = PdfReader(path)
        text = "\n".join(page.extract_text() for page in reader.pages)
        assert reader.metadata is not None and reader.metadata.title
        assert text.startswith(reader.metadata.title) and len(text) > 2000
    acl = _json(kb / "_acl.json")
    assert acl["default"] == ["*"]
    assert acl["files"] == {
        "internal-escalation-playbook.md": ["support", "exec"],
        "pricing-discount-policy.md": ["sales", "exec"],
    }
    assert all((kb / name).is_file() for name in acl["files"])


def test_marketing_campaigns_have_front_matter(acme: tuple[Path, CompanySummary]) -> None:
    root, _ = acme
    marketing = root / "marketing"
    assert _json(marketing / "_acl.json") == {"default": ["marketing", "exec"]}
    assert "## Words we avoid" in (marketing / "brand-voice.md").read_text(encoding="utf-8")
    campaigns = sorted((marketing / "campaigns").glob("*.md"))
    assert len(campaigns) == 8
    for path in campaigns:
        subject, segment, sent, blank, *body = path.read_text(encoding="utf-8").splitlines()
        assert subject.startswith("Subject: ") and segment.startswith("Segment: ")
        assert re.fullmatch(r"Sent: 20\d\d-\d\d-\d\d", sent) and sent[6:] <= "2026-01-05"
        assert blank == "" and len(body) > 5
    assert (root / "README.md").read_text(encoding="utf-8").startswith("# Acme Corp demo data")


def test_regenerating_replaces_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "data"
    generate_company(target, scale=0.05)
    (target / "stale.txt").write_text("from an older version")
    (target / "crm" / "old.csv").write_text("x")
    generate_company(target, scale=0.05)
    assert not (target / "stale.txt").exists() and not (target / "crm" / "old.csv").exists()
    assert (target / "crm" / "accounts.csv").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no staging or old folders left


def test_a_failed_run_keeps_the_previous_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "data"
    generate_company(target, scale=0.05)
    before = _files(target)

    def broken(folder: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(company_module, "write_kb", broken)
    with pytest.raises(OSError, match="disk full"):
        generate_company(target, seed=99, scale=0.05)
    assert _files(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


@pytest.mark.parametrize("scale", [0, -1, 10.5])
def test_scale_must_be_sensible(tmp_path: Path, scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        generate_company(tmp_path / "data", scale=scale)
    assert not (tmp_path / "data").exists()
