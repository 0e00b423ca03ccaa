"""Acme Corp, the demo company: CRM, support desk, ERP, knowledge base, marketing and Slack.

Connectors, grounded answers and identity resolution only show something on believable data, and
tests need the same data on every run, so everything comes from one seed and a fixed date.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import random
import re
import shutil
import sqlite3
import tempfile
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from faker import Faker
from fpdf import FPDF

COMPANY_NAME = "Acme Corp"
EMAIL_DOMAIN = "acmecorp.com"
BASE_DATE = date(2026, 1, 5)  # the Slack export starts here; CRM, ERP and cases lie before it
MAX_SCALE = 10.0  # beyond this the fictional 555-01xx phone numbers run out
SLACK_DAYS = 10  # business days from BASE_DATE


@dataclass(frozen=True)
class CompanySummary:
    """How many records of each kind `generate_company` wrote."""

    accounts: int
    contacts: int
    support_customers: int
    cases: int
    products: int
    orders: int
    articles: int
    campaigns: int
    slack_messages: int
    slack_channels: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def generate_company(target: Path, *, seed: int = 7, scale: float = 1.0) -> CompanySummary:
    """Write Acme Corp's data under `target`, replacing whatever was there.

    The same seed and scale give byte-identical files. `scale` multiplies the number of records
    (accounts, contacts, support customers, cases, orders, Slack messages); the catalogue,
    articles, campaigns, employees and channels are written content and do not scale.
    """
    if not 0 < scale <= MAX_SCALE:
        raise ValueError(f"scale must be in (0, {MAX_SCALE:g}], got {scale}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        summary = _Company(seed, scale).write(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Readers see the old folder or the new one, never a half-written one; only the instant
    # between the two renames has no folder at all.
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return summary


# --------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class _Employee:
    username: str
    real_name: str
    title: str
    team: str  # exec, sales, support, engineering, marketing or bot
    slack_id: str
    phone: _Phone | None


@dataclass(frozen=True)
class _Phone:
    area: str
    line: str  # 0100-0199: 555-0100..555-0199 is reserved for fiction, so no real person is hit

    def format(self, style: int) -> str:
        return _PHONE_STYLES[style].format(a=self.area, x="555", n=self.line)


@dataclass(frozen=True)
class _Account:
    account_id: str
    name: str
    short_name: str  # without the legal suffix, as people write it
    domain: str
    industry: str
    region: str
    tier: str
    owner: str
    revenue: int
    notes: str


@dataclass(frozen=True)
class _Contact:
    contact_id: str
    account: _Account
    first: str
    last: str
    email: str
    phone: _Phone
    phone_text: str
    phone_style: int
    job_title: str
    notes: str


@dataclass(frozen=True)
class _Customer:
    customer_id: str
    name: str
    email: str
    phone: str
    company: str
    account: _Account | None
    person: str  # identity key of the person's first record (a CRM contact, a Slack user, itself)


@dataclass(frozen=True)
class _Order:
    order_id: str
    account: _Account
    contact: _Contact
    sku: str
    quantity: int
    total_usd: float
    status: str
    ordered_at: date


@dataclass(frozen=True)
class _Case:
    case_id: str
    customer: _Customer
    subject: str
    body: str
    status: str
    priority: str
    created_at: datetime
    assignee: str


@dataclass
class _Message:
    user: str
    text: str
    second: int
    subtype: str | None = None
    bot_id: str | None = None
    replies: list[_Message] = field(default_factory=list)
    ts: str = ""


@dataclass(frozen=True)
class _Channel:
    channel_id: str
    name: str
    private: bool
    members: tuple[str, ...]  # usernames
    purpose: str
    topic: str


# -------------------------------------------------------------------------------------- the work


class _Company:
    def __init__(self, seed: int, scale: float) -> None:
        self.seed = seed
        self.scale = scale
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.phones: set[_Phone] = set()
        self.emails: set[str] = set()
        self.names: set[str] = set()
        rng = self._rng("employees")
        self.employees = [
            _Employee(
                username=username,
                real_name=real_name,
                title=title,
                team=team,
                slack_id=_slack_id(rng, "U"),
                phone=None if team == "bot" else self._new_phone(rng, ("510",)),
            )
            for username, real_name, title, team in _EMPLOYEES
        ]
        self.by_username = {e.username: e for e in self.employees}

    def _rng(self, part: str) -> random.Random:
        # Each part draws from its own stream, so changing one part leaves the others as they were.
        return random.Random(f"{self.seed}:{part}")

    def _count(self, base: int) -> int:
        return max(1, round(base * self.scale))

    def write(self, root: Path) -> CompanySummary:
        self.accounts = self._accounts()
        self.contacts = self._contacts()
        self.contacts_by_account: dict[str, list[_Contact]] = {}
        for contact in self.contacts:
            self.contacts_by_account.setdefault(contact.account.account_id, []).append(contact)
        self.orders = self._orders()
        self.customers = self._customers()
        self.cases = self._cases()
        channels, messages = self._write_slack(root / "slack")
        self._write_crm(root / "crm")
        self._write_support(root / "support")
        self._write_erp(root / "erp.sqlite")
        self._write_truth(root / "truth" / "identity.json")
        _write_kb(root / "kb")
        _write_marketing(root / "marketing")
        _write_text(root / "README.md", _README)
        return CompanySummary(
            accounts=len(self.accounts),
            contacts=len(self.contacts),
            support_customers=len(self.customers),
            cases=len(self.cases),
            products=len(_PRODUCTS),
            orders=len(self.orders),
            articles=len(_ARTICLES),
            campaigns=len(_CAMPAIGNS),
            slack_messages=messages,
            slack_channels=channels,
        )

    def _new_phone(self, rng: random.Random, area_codes: Sequence[str]) -> _Phone:
        for attempt in range(200):
            codes = area_codes if attempt < 30 else _ALL_AREA_CODES  # the region is full
            phone = _Phone(rng.choice(codes), f"01{rng.randrange(100):02d}")
            if phone not in self.phones:
                self.phones.add(phone)
                return phone
        raise RuntimeError("ran out of fictional phone numbers")

    def _new_name(self) -> tuple[str, str]:
        # Unique names, so the only namesakes are the ones placed on purpose for identity tests.
        while True:
            first, last = self.fake.first_name(), self.fake.last_name()
            if f"{first} {last}" not in self.names:
                self.names.add(f"{first} {last}")
                return first, last

    def _new_email(self, local: str, domain: str) -> str:
        email, n = f"{local}@{domain}", 1
        while email in self.emails:
            n += 1
            email = f"{local}{n}@{domain}"
        self.emails.add(email)
        return email

    # ----------------------------------------------------------------------------------- CRM

    def _accounts(self) -> list[_Account]:
        rng = self._rng("accounts")
        prefixes = list(_ACCOUNT_PREFIXES)
        rng.shuffle(prefixes)
        accounts: list[_Account] = []
        taken: set[str] = set()
        owners = {
            "strategic": ("heidi", "carol", "carol"),
            "growth": ("carol", "ivan", "nina"),
            "smb": ("ivan", "nina", "carol"),
        }
        revenue = {"strategic": (500, 6000), "growth": (50, 500), "smb": (4, 50)}  # $M
        i = 0
        while len(accounts) < self._count(40):
            prefix = prefixes[i % len(prefixes)]
            i += 1
            industry = rng.choice(sorted(_INDUSTRIES))
            noun = rng.choice(_INDUSTRIES[industry])
            short = f"{prefix} {noun}"
            domain = f"{_slug(prefix)}{_slug(noun.split()[0])}.com"
            if short in taken or domain in taken:
                continue
            taken.update((short, domain))
            public_body = noun.endswith(("District", "Cooperative", "Authority"))
            suffix = "" if public_body else rng.choice(_LEGAL_SUFFIXES)
            tier = rng.choices(("strategic", "growth", "smb"), (2, 4, 4))[0]
            low, high = revenue[tier]
            notes_t = rng.choice(
                [t for scope, t in _ACCOUNT_NOTES if not scope or industry in scope]
            )
            notes = _fill(rng, notes_t, _crm_context(rng))
            account = _Account(
                account_id=f"A{len(accounts) + 1:03d}",
                name=short + suffix,
                short_name=short,
                domain=domain,
                industry=industry,
                region=rng.choices(list(_REGION_WEIGHTS), list(_REGION_WEIGHTS.values()))[0],
                tier=tier,
                owner=rng.choice(owners[tier]),
                revenue=rng.randrange(low * 10, high * 10) * 100_000,
                notes=notes,
            )
            accounts.append(account)
        return accounts

    def _contacts(self) -> list[_Contact]:
        rng = self._rng("contacts")
        n = self._count(200)
        weight = {"strategic": 3, "growth": 2, "smb": 1}
        per_account = dict.fromkeys((a.account_id for a in self.accounts), 0)
        for account in self.accounts[:n]:  # everyone gets one before anyone gets a second
            per_account[account.account_id] = 1
        for _ in range(n - sum(per_account.values())):
            pick = rng.choices(self.accounts, [weight[a.tier] for a in self.accounts])[0]
            per_account[pick.account_id] += 1
        contacts: list[_Contact] = []
        for account in self.accounts:
            for _ in range(per_account[account.account_id]):
                first, last = self._new_name()
                f, la = _ascii(first), _ascii(last)
                local = rng.choice(
                    (f"{f}.{la}", f"{f}.{la}", f"{f[0]}{la}", f"{f}{la[0]}", f"{f}_{la}")
                )
                phone = self._new_phone(rng, _REGIONS[account.region])
                style = rng.randrange(len(_PHONE_STYLES))
                phone_text = phone.format(style)
                if rng.random() < 0.06:
                    phone_text += f" ext. {rng.randrange(200, 480)}"
                contacts.append(
                    _Contact(
                        contact_id=f"C{len(contacts) + 1:04d}",
                        account=account,
                        first=first,
                        last=last,
                        email=self._new_email(local, account.domain),
                        phone=phone,
                        phone_text=phone_text,
                        phone_style=style,
                        job_title=rng.choice(_JOB_TITLES),
                        notes=rng.choice(_CONTACT_NOTES),
                    )
                )
        return contacts

    def _write_crm(self, folder: Path) -> None:
        _write_csv(
            folder / "accounts.csv",
            (
                "account_id",
                "name",
                "industry",
                "region",
                "tier",
                "owner",
                "annual_revenue_usd",
                "notes",
            ),
            [
                (a.account_id, a.name, a.industry, a.region, a.tier, a.owner, a.revenue, a.notes)
                for a in self.accounts
            ],
        )
        _write_csv(
            folder / "contacts.csv",
            (
                "contact_id",
                "account_id",
                "first_name",
                "last_name",
                "email",
                "phone",
                "job_title",
                "notes",
            ),
            [
                (
                    c.contact_id,
                    c.account.account_id,
                    c.first,
                    c.last,
                    c.email,
                    c.phone_text,
                    c.job_title,
                    c.notes,
                )
                for c in self.contacts
            ],
        )

    # ----------------------------------------------------------------------------------- ERP

    def _orders(self) -> list[_Order]:
        rng = self._rng("orders")
        weight = {"strategic": 4, "growth": 2, "smb": 1}
        contact_weights = [weight[c.account.tier] for c in self.contacts]
        drafts: list[tuple[date, _Contact, str, int, float, str]] = []
        for _ in range(self._count(400)):
            contact = rng.choices(self.contacts, contact_weights)[0]
            sku, _name, category, price, _description = rng.choices(
                _PRODUCTS, [_ORDER_MIX[p[2]] for p in _PRODUCTS]
            )[0]
            low, high = _QUANTITIES[sku]
            quantity = rng.randint(low, high)
            if contact.account.tier == "strategic":
                quantity *= 2
            discount = rng.choice((0, 0, 0, 0.05, 0.08, 0.1, 0.15))
            age = int(rng.triangular(1, 540, 1))  # a growing company: more orders lately
            ordered_at = BASE_DATE - timedelta(days=age)
            if rng.random() < 0.03:
                status = "cancelled"
            elif rng.random() < 0.02 and category in ("gateway", "sensor"):
                status = "returned"
            elif age <= 7:
                status = "processing"
            elif age <= 21 and category != "subscription":
                status = "shipped"
            else:
                status = "fulfilled"
            total = round(price * quantity * (1 - discount), 2)
            drafts.append((ordered_at, contact, sku, quantity, total, status))
        drafts.sort(key=lambda d: (d[0], d[1].contact_id, d[2]))
        return [
            _Order(f"SO-{100_001 + i}", c.account, c, sku, qty, total, status, day)
            for i, (day, c, sku, qty, total, status) in enumerate(drafts)
        ]

    def _write_erp(self, path: Path) -> None:
        con = sqlite3.connect(path)
        try:
            with con:
                con.executescript(_ERP_SCHEMA)
                con.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?)", _PRODUCTS)
                con.executemany(
                    "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            o.order_id,
                            o.account.account_id,
                            o.contact.contact_id,
                            o.sku,
                            o.quantity,
                            o.total_usd,
                            o.status,
                            o.ordered_at.isoformat(),
                        )
                        for o in self.orders
                    ],
                )
        finally:
            con.close()

    # ------------------------------------------------------------------------------- support

    def _customers(self) -> list[_Customer]:
        rng = self._rng("customers")
        n = self._count(150)
        n_known = min(round(n * 0.7), len(self.contacts))
        n_twice = n_known // 20  # a few people opened a second profile with a personal address
        known = rng.sample(self.contacts, n_known - n_twice)
        twice = rng.sample(known, n_twice)
        rows: list[tuple[str, str, str, str, _Account | None, str]] = []
        for contact in known:
            rows.append(self._support_view(rng, contact, personal=False))
        for contact in twice:
            rows.append(self._support_view(rng, contact, personal=True))
        n_new = n - len(rows)
        staff = [self.by_username[u] for u in ("dave", "judy")][: n_new // 4]
        for employee in staff:  # support staff test the portal with their own details
            first, last = employee.real_name.split()
            phone = employee.phone
            assert phone is not None
            rows.append(
                (
                    f"{first} {last} (test)",
                    f"{first.lower()}.{last.lower()}+test@{EMAIL_DOMAIN}",
                    phone.format(rng.randrange(len(_PHONE_STYLES))),
                    COMPANY_NAME,
                    None,
                    f"slack:{employee.slack_id}",
                )
            )
        # Namesakes of CRM contacts who are other people: a trap for naive name matching.
        for contact in rng.sample(self.contacts, min(2, len(self.contacts)))[: n_new // 6]:
            rows.append(self._stranger(rng, (contact.first, contact.last)))
        while len(rows) < n:
            rows.append(self._stranger(rng, self._new_name()))
        rng.shuffle(rows)
        customers = []
        for i, (name, email, phone_text, company, account, person) in enumerate(rows):
            customer_id = f"S-{1001 + i}"
            customers.append(
                _Customer(
                    customer_id=customer_id,
                    name=name,
                    email=email,
                    phone=phone_text,
                    company=company,
                    account=account,
                    person=person or f"support-customers:{customer_id}",
                )
            )
        return customers

    def _support_view(
        self, rng: random.Random, contact: _Contact, *, personal: bool
    ) -> tuple[str, str, str, str, _Account | None, str]:
        """The contact as they typed themselves into the support portal."""
        first, last = contact.first, contact.last
        kinds, weights = ("typo", "comma", "initial", "lower", "as-is"), (10, 15, 15, 7, 53)
        variant = rng.choices(kinds, weights)[0]
        if variant == "typo" and rng.random() < 0.5:
            first = _typo(rng, first)
        elif variant == "typo":
            last = _typo(rng, last)
        name = {
            "comma": f"{last}, {first}",
            "initial": f"{first} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {last}",
            "lower": f"{first} {last}".lower(),
        }.get(variant, f"{first} {last}")
        local, domain = contact.email.split("@")
        if personal:
            email = self._personal_email(rng, contact.first, contact.last)
        else:
            email = rng.choice(
                (
                    contact.email,
                    contact.email,
                    contact.email.upper(),
                    _mixed_case(local, domain),
                    f"{local}+support@{domain}",
                    self._personal_email(rng, contact.first, contact.last),
                )
            )
        styles = [s for s in range(len(_PHONE_STYLES)) if s != contact.phone_style]
        phone = "" if rng.random() < 0.05 else contact.phone.format(rng.choice(styles))
        company = rng.choice(
            (
                contact.account.name,
                contact.account.name,
                contact.account.short_name,
                *_company_variants(contact.account),
            )
        )
        return name, email, phone, company, contact.account, f"crm-contacts:{contact.contact_id}"

    def _stranger(
        self, rng: random.Random, name: tuple[str, str]
    ) -> tuple[str, str, str, str, _Account | None, str]:
        """Someone the CRM does not know: a new user at a customer, or at another company."""
        first, last = name
        f, la = _ascii(first), _ascii(last)
        account: _Account | None = None
        if rng.random() < 0.6:
            account = rng.choice(self.accounts)
            company, domain, region = account.name, account.domain, account.region
        else:
            company = self.fake.company()
            domain = f"{_slug(company.split()[0].rstrip(','))}{rng.choice(('', 'corp', 'inc'))}.com"
            region = rng.choice(sorted(_REGIONS))
        email = (
            self._personal_email(rng, first, last)
            if rng.random() < 0.2
            else self._new_email(rng.choice((f"{f}.{la}", f"{f[0]}{la}")), domain)
        )
        phone = self._new_phone(rng, _REGIONS[region]).format(rng.randrange(len(_PHONE_STYLES)))
        return f"{first} {last}", email, phone, company, account, ""

    def _personal_email(self, rng: random.Random, first: str, last: str) -> str:
        f, la = _ascii(first), _ascii(last)
        local = rng.choice((f"{f}{la}", f"{f}.{la}", f"{f[0]}{la}")) + str(rng.randrange(1, 99))
        return self._new_email(local, rng.choice(_FREEMAIL))

    def _cases(self) -> list[_Case]:
        rng = self._rng("cases")
        orders_by_account: dict[str, list[_Order]] = {}
        for order in self.orders:
            orders_by_account.setdefault(order.account.account_id, []).append(order)
        customers = [c for c in self.customers if not c.person.startswith("slack:")]
        drafts: list[tuple[datetime, _Customer, str, str, str, str, str]] = []
        for _ in range(self._count(120)):
            customer = rng.choice(customers)
            age_hours = int(rng.triangular(2, 120 * 24, 10 * 24))
            created = datetime(2026, 1, 5, 9, tzinfo=UTC) - timedelta(
                hours=age_hours, minutes=rng.randrange(60)
            )
            account_id = customer.account.account_id if customer.account else ""
            orders = [
                o for o in orders_by_account.get(account_id, []) if o.ordered_at < created.date()
            ]
            problems = [p for p in _CASE_PROBLEMS if orders or "{order}" not in "".join(p)]
            subject_t, *lines = rng.choice(problems)
            context = _case_context(rng)
            if orders:
                # Prefer a sensor order, so "the sensors from order X" names what X delivered.
                order = rng.choice([o for o in orders if o.sku in _SKU_SENSOR] or orders)
                context.update(order=order.order_id, order_qty=str(order.quantity))
                if order.sku in _SKU_SENSOR:
                    sensor = _SKU_SENSOR[order.sku]
                    context.update(
                        sensor=sensor, serial=f"{_SERIAL_PREFIX[sensor]}-{_serial_tail(rng)}"
                    )
            if rng.random() < 0.35 and (customer.phone or customer.email):
                with_phone = customer.phone and (not customer.email or rng.random() < 0.6)
                context.update(phone=customer.phone, email=customer.email)
                lines.append(rng.choice(_CASE_PHONE_LINES if with_phone else _CASE_EMAIL_LINES))
            if rng.random() < 0.6:
                lines.append(rng.choice(_CASE_CLOSERS))
            if age_hours < 72:  # recent cases are still being worked on, old ones mostly closed
                status = rng.choice(("open", "open", "pending"))
            elif age_hours < 20 * 24:
                status = rng.choice(("open", "pending", "pending", "closed"))
            else:
                status = rng.choice(("closed", "closed", "closed", "closed", "pending"))
            drafts.append(
                (
                    created,
                    customer,
                    _fill(rng, subject_t, context),
                    " ".join(_fill(rng, line, context) for line in lines),
                    status,
                    rng.choices(("low", "normal", "high", "urgent"), (25, 45, 22, 8))[0],
                    rng.choices(("dave", "judy", "priya", "bob"), (35, 25, 25, 15))[0],
                )
            )
        drafts.sort(key=lambda d: (d[0], d[1].customer_id))
        return [
            _Case(f"CS-{5001 + i}", customer, subject, body, status, priority, created, assignee)
            for i, (created, customer, subject, body, status, priority, assignee) in enumerate(
                drafts
            )
        ]

    def _write_support(self, folder: Path) -> None:
        _write_jsonl(
            folder / "customers.jsonl",
            (
                {
                    "customer_id": c.customer_id,
                    "name": c.name,
                    "email": c.email,
                    "phone": c.phone,
                    "company": c.company,
                }
                for c in self.customers
            ),
        )
        _write_jsonl(
            folder / "cases.jsonl",
            (
                {
                    "case_id": c.case_id,
                    "customer_id": c.customer.customer_id,
                    "subject": c.subject,
                    "body": c.body,
                    "status": c.status,
                    "priority": c.priority,
                    "created_at": c.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "assignee": c.assignee,
                }
                for c in self.cases
            ),
        )

    def _write_truth(self, path: Path) -> None:
        people: dict[str, list[str]] = {}
        for contact in self.contacts:
            key = f"crm-contacts:{contact.contact_id}"
            people[key] = [key]
        for employee in self.employees:
            if employee.team != "bot":
                key = f"slack:{employee.slack_id}"
                people[key] = [key]
        for customer in self.customers:
            key = f"support-customers:{customer.customer_id}"
            if customer.person == key:
                people[key] = [key]
            else:
                people[customer.person].append(key)
        _write_json(path, {"people": list(people.values())})

    # --------------------------------------------------------------------------------- Slack

    def _write_slack(self, folder: Path) -> tuple[int, int]:
        rng = self._rng("slack")
        ids = {e.username: e.slack_id for e in self.employees}
        created = int(datetime(2021, 3, 1, 17, tzinfo=UTC).timestamp())
        _write_json(
            folder / "users.json",
            [
                {
                    "id": e.slack_id,
                    "team_id": "T01ACMECORP",
                    "name": e.username,
                    "real_name": e.real_name,
                    "deleted": False,
                    "is_bot": e.team == "bot",
                    "is_admin": e.username == "alice",
                    "tz": "America/Los_Angeles",
                    "profile": _slack_profile(e),
                }
                for e in self.employees
            ],
        )
        channels = [
            _Channel(
                _slack_id(rng, "G" if private else "C"), name, private, members, purpose, topic
            )
            for name, private, members, purpose, topic in _CHANNELS
        ]
        for private in (False, True):
            _write_json(
                folder / ("groups.json" if private else "channels.json"),
                [
                    {
                        "id": c.channel_id,
                        "name": c.name,
                        "created": created + i * 86_400,
                        "creator": ids["alice"],
                        "is_archived": False,
                        "is_general": c.name == "general",
                        "members": [ids[m] for m in c.members],
                        "purpose": {"value": c.purpose, "creator": ids["alice"], "last_set": 0},
                        "topic": {"value": c.topic, "creator": ids["alice"], "last_set": 0},
                    }
                    for i, c in enumerate(channels)
                    if c.private == private
                ],
            )
        calendar = (BASE_DATE + timedelta(days=i) for i in range(SLACK_DAYS * 2))
        days = [d for d in calendar if d.weekday() < 5][:SLACK_DAYS]
        total = 0
        for channel in channels:
            decks = _Decks(rng, _SLACK_THREADS[channel.name], _SLACK_SINGLES[channel.name])
            for day in days:
                messages = self._slack_day(rng, channel, day, decks)
                _write_json(folder / channel.name / f"{day.isoformat()}.json", messages, indent=4)
                total += len(messages)
        return len(channels), total

    def _slack_day(
        self, rng: random.Random, channel: _Channel, day: date, decks: _Decks
    ) -> list[dict[str, Any]]:
        low, high = _CHANNEL_VOLUME[channel.name]
        target = self._count(rng.randint(low, high))
        start = int(datetime(day.year, day.month, day.day, 14, tzinfo=UTC).timestamp())
        used: set[int] = set()

        def second(at: int) -> int:
            while at in used:
                at += 1
            used.add(at)
            return at

        people = [m for m in channel.members if self.by_username[m].team != "bot"]

        def speaker(spec: str, thread: Sequence[tuple[str, str]], previous: str) -> str:
            """The username for `spec`; "+team" avoids whoever the thread names or just spoke."""
            if not spec.startswith("+"):
                return spec
            team = [m for m in people if self.by_username[m].team == spec[1:]] or people
            avoid = {s for s, _ in thread if not s.startswith("+")} | {previous}
            return rng.choice([m for m in team if m not in avoid] or team)

        messages: list[_Message] = []
        if day == BASE_DATE:
            for username in _SLACK_JOINS.get(channel.name, ()):
                uid = self.by_username[username].slack_id
                messages.append(
                    _Message(uid, f"<@{uid}> has joined the channel", second(start), "channel_join")
                )
        count = len(messages)
        while count < target:
            context = self._slack_context(rng)
            if target - count >= 3 and rng.random() < 0.45:
                lines = decks.thread()[: target - count]
            else:
                lines = (decks.single(),)
            at = second(start + rng.randrange(7 * 3600 if len(lines) > 1 else 9 * 3600))
            parent: _Message | None = None
            author = previous = ""
            for spec, text in lines:
                username = author if spec == "op" else speaker(spec, lines, previous)
                employee = self.by_username[username]
                text = self._slack_text(rng, text, context, channel, parent, username)
                message = _Message(employee.slack_id, text, at)
                if employee.team == "bot":
                    message.bot_id = "B01PULSEBOT"
                if parent is None:
                    parent, author = message, username
                    messages.append(message)
                else:
                    parent.replies.append(message)
                previous = username
                at = second(at + rng.randrange(60, 25 * 60))
            count += len(lines)
        for m in (m for top in messages for m in (top, *top.replies)):
            m.ts = f"{m.second}.{rng.randrange(1_000_000):06d}"
        records = [record for top in messages for record in _slack_records(top)]
        return sorted(records, key=lambda r: float(r["ts"]))

    def _slack_text(
        self,
        rng: random.Random,
        text: str,
        context: dict[str, str],
        channel: _Channel,
        parent: _Message | None,
        author: str,
    ) -> str:
        def mention(match: re.Match[str]) -> str:
            spec = match[1]
            if spec == "op" and parent is not None:
                return f"<@{parent.user}>"
            if spec.startswith("+"):  # someone from the team other than the author
                team = [m for m in channel.members if self.by_username[m].team == spec[1:]]
                spec = rng.choice([m for m in team if m != author] or team or [author])
            return f"<@{self.by_username[spec].slack_id}>"

        return _fill(rng, re.sub(r"\{@([+\w]+)\}", mention, text), context)

    def _slack_context(self, rng: random.Random) -> dict[str, str]:
        case = rng.choice(self.cases)
        account = case.customer.account or rng.choice(self.accounts)
        contact = rng.choice(self.contacts_by_account.get(account.account_id, self.contacts))
        pct = rng.choice((22, 24, 25, 28, 30))
        context = _case_context(rng)
        context.update(
            account=account.short_name,
            account2=rng.choice(self.accounts).short_name,
            contact=f"{contact.first} {contact.last}",
            case=case.case_id,
            order=rng.choice(self.orders).order_id,
            pct=str(pct),
            pct_ok=str(pct - rng.choice((3, 4, 6))),
            pct_small=str(rng.choice((5, 6, 8, 10))),
            amount=str(rng.choice((48, 72, 96, 135, 180, 240, 310, 420))),
            big=str(rng.choice((120, 180, 250, 400, 600))),
        )
        return context


class _Decks:
    """Draws Slack templates without repeats until each pool is used up, then reshuffles."""

    def __init__(
        self,
        rng: random.Random,
        threads: Sequence[tuple[tuple[str, str], ...]],
        singles: Sequence[tuple[str, str]],
    ) -> None:
        self._rng = rng
        self._pools = (list(threads), [(s,) for s in singles])
        self._decks: tuple[list[tuple[tuple[str, str], ...]], ...] = ([], [])

    def _draw(self, which: int) -> tuple[tuple[str, str], ...]:
        deck = self._decks[which]
        if not deck:
            deck.extend(self._pools[which])
            self._rng.shuffle(deck)
        return deck.pop()

    def thread(self) -> tuple[tuple[str, str], ...]:
        return self._draw(0)

    def single(self) -> tuple[str, str]:
        return self._draw(1)[0]


def _slack_records(top: _Message) -> list[dict[str, Any]]:
    """The parent and its replies as Slack export records (each file is sorted after)."""
    record: dict[str, Any] = {"type": "message", "user": top.user, "text": top.text, "ts": top.ts}
    if top.subtype:
        record["subtype"] = top.subtype
    if top.bot_id:
        record["bot_id"] = top.bot_id
    if not top.replies:
        return [record]
    record.update(
        thread_ts=top.ts,
        reply_count=len(top.replies),
        reply_users_count=len({r.user for r in top.replies}),
        reply_users=sorted({r.user for r in top.replies}),
        latest_reply=top.replies[-1].ts,
        replies=[{"user": r.user, "ts": r.ts} for r in top.replies],
    )
    replies = [
        {
            "type": "message",
            "user": r.user,
            "text": r.text,
            "ts": r.ts,
            "thread_ts": top.ts,
            "parent_user_id": top.user,
        }
        for r in top.replies
    ]
    return [record, *replies]


def _slack_profile(e: _Employee) -> dict[str, str]:
    first, _, last = e.real_name.partition(" ")
    profile = {
        "title": e.title,
        "real_name": e.real_name,
        "display_name": e.username,
        "first_name": first,
        "last_name": last,
    }
    if e.phone is not None:  # bots have neither an address nor a phone
        profile["email"] = f"{e.username}@{EMAIL_DOMAIN}"
        profile["phone"] = e.phone.format(0)
    return profile


def _slack_id(rng: random.Random, prefix: str) -> str:
    return prefix + "0" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))


# ------------------------------------------------------------------------- knowledge base, etc.


def _write_kb(folder: Path) -> None:
    for filename, markdown in _ARTICLES:
        path = folder / filename
        if filename.endswith(".md"):
            _write_text(path, markdown)
        elif filename.endswith(".html"):
            _write_text(path, _html_page(markdown))
        else:
            path.write_bytes(_pdf_document(markdown))
    _write_json(folder / "_acl.json", _KB_ACL)


def _write_marketing(folder: Path) -> None:
    _write_text(folder / "brand-voice.md", _BRAND_VOICE)
    for filename, text in _CAMPAIGNS:
        _write_text(folder / "campaigns" / filename, text)
    _write_json(folder / "_acl.json", {"default": ["marketing", "exec"]})


def _blocks(markdown: str) -> list[tuple[str, list[str]]]:
    """The small Markdown subset the articles use: headings, paragraphs, lists, code fences."""
    blocks: list[tuple[str, list[str]]] = []
    lines = iter(markdown.strip().split("\n"))
    after_blank = True
    for line in lines:
        list_item = re.match(r"(- |\d+\. )(.*)", line)
        heading = re.match(r"(#{1,3}) (.*)", line)
        kind = blocks[-1][0] if blocks and not after_blank else ""
        if line.startswith("```"):
            code: list[str] = []
            for inner in lines:
                if inner.startswith("```"):
                    break
                code.append(inner)
            blocks.append(("code", code))
        elif heading:
            blocks.append((f"h{len(heading[1])}", [heading[2]]))
        elif list_item:
            list_kind = "ul" if list_item[1] == "- " else "ol"
            if blocks and blocks[-1][0] == list_kind:
                blocks[-1][1].append(list_item[2])
            else:
                blocks.append((list_kind, [list_item[2]]))
        elif line.strip() and kind in ("p", "ul", "ol"):
            blocks[-1][1][-1] += " " + line.strip()
        elif line.strip():
            blocks.append(("p", [line.strip()]))
        after_blank = not line.strip()
    return blocks


def _inline_html(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _plain(text: str) -> str:
    return text.replace("**", "").replace("`", "")


def _html_page(markdown: str) -> str:
    blocks = _blocks(markdown)
    title = blocks[0][1][0]
    body: list[str] = []
    for kind, lines in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            body.append(f"<{kind}>{_inline_html(lines[0])}</{kind}>")
        elif kind in ("ul", "ol"):
            items = "".join(f"\n  <li>{_inline_html(item)}</li>" for item in lines)
            body.append(f"<{kind}>{items}\n</{kind}>")
        else:
            body.append(f"<pre><code>{html.escape(chr(10).join(lines))}</code></pre>")
    return _HTML_PAGE.format(title=html.escape(title), body="\n".join(body))


def _pdf_document(markdown: str) -> bytes:
    blocks = _blocks(markdown)
    pdf = FPDF(format="Letter")
    pdf.set_creation_date(datetime(2026, 1, 5, tzinfo=UTC))  # otherwise "now", breaking sameness
    pdf.set_title(blocks[0][1][0])
    pdf.set_author(f"{COMPANY_NAME} Support")
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()

    def cell(text: str, height: float, indent: float = 0) -> None:
        pdf.set_x(pdf.l_margin + indent)
        pdf.multi_cell(pdf.epw - indent, height, text, new_x="LMARGIN", new_y="NEXT")

    styles = {"h1": ("B", 18, 9.0), "h2": ("B", 13, 7.0), "h3": ("B", 11, 6.0)}
    for kind, lines in blocks:
        if kind in styles:
            style, size, height = styles[kind]
            pdf.set_font("Helvetica", style, size)
            pdf.ln(3 if kind != "h1" else 0)
            cell(_plain(lines[0]), height)
        elif kind == "p":
            pdf.set_font("Helvetica", "", 10.5)
            cell(_plain(lines[0]), 5.5)
        elif kind in ("ul", "ol"):
            pdf.set_font("Helvetica", "", 10.5)
            for n, item in enumerate(lines, 1):
                marker = "-" if kind == "ul" else f"{n}."
                cell(f"{marker} {_plain(item)}", 5.5, indent=4)
        else:
            pdf.set_font("Courier", "", 9)
            cell("\n".join(lines), 4.5, indent=4)
        pdf.ln(2)
    return bytes(pdf.output())


# ----------------------------------------------------------------------------------- helpers


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _write_json(path: Path, value: Any, indent: int = 2) -> None:
    _write_text(path, json.dumps(value, indent=indent, ensure_ascii=False) + "\n")


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    _write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    _write_text(path, buffer.getvalue())


def _fill(rng: random.Random, template: str, context: dict[str, str]) -> str:
    """Fill {placeholders}; `a|b|c` alternatives in [[...]] are picked at random."""
    text = re.sub(r"\[\[([^\]]+)\]\]", lambda m: rng.choice(m[1].split("|")), template)
    return text.format_map(context)


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", folded.lower())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word) - 1) if len(word) > 2 else 0
    kind = rng.choice(("swap", "drop", "double"))
    if kind == "swap" and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop" and len(word) > 3:
        return word[:i] + word[i + 1 :]
    return word[: i + 1] + word[i] + word[i + 1 :]


def _mixed_case(local: str, domain: str) -> str:
    return ".".join(part.capitalize() for part in local.split(".")) + "@" + domain.capitalize()


def _company_variants(account: _Account) -> tuple[str, ...]:
    return (account.short_name.upper(), f"{account.short_name}, Inc.", account.short_name + " Co")


def _crm_context(rng: random.Random) -> dict[str, str]:
    context = _case_context(rng)
    context.update(
        month=rng.choice(_MONTHS),
        year=str(rng.choice((2022, 2023, 2024))),
        plan=rng.choice(("Starter", "Professional", "Enterprise")),
        n_sites=str(rng.randrange(2, 14)),
        n_users=str(rng.choice((8, 15, 22, 40, 65, 120))),
    )
    return context


def _serial_tail(rng: random.Random) -> str:
    return f"2{rng.randrange(3, 6)}{rng.choice('ABCDEFGHK')}-{rng.randrange(10_000, 99_999)}"


def _case_context(rng: random.Random) -> dict[str, str]:
    sensor = rng.choice(_SENSOR_NAMES)
    return {
        "site": rng.choice(_SITES),
        "site2": rng.choice(_SITES),
        "sensor": sensor,
        "serial": f"{_SERIAL_PREFIX[sensor]}-{_serial_tail(rng)}",
        "serial_tail": _serial_tail(rng),
        "gw_serial": f"GW2-{_serial_tail(rng)}",
        "battery_sensor": rng.choice(_SENSOR_NAMES[:4]),
        "gateway": rng.choice(("EdgeGateway G2", "EdgeGateway G2", "EdgeGateway G2 Rugged")),
        "gw_fw": rng.choice(("4.2.1", "4.2.1", "4.2.0", "4.1.7")),
        "invoice": f"INV-2025-{rng.randrange(10_000, 19_999)}",
        "n": str(rng.choice((3, 4, 6, 8, 12, 15, 20, 24, 36))),
        "n2": str(rng.choice((40, 60, 85, 120, 150, 210))),
        "offset": rng.choice(("0.8", "1.2", "1.5", "2", "2.5")),
        "dashboard": rng.choice(_DASHBOARDS),
        "rule": rng.choice(_RULES),
        "weekday": rng.choice(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")),
        "deadline": rng.choice(("January 15", "January 20", "January 28", "February 3")),
        "rssi": str(rng.choice((-109, -112, -114, -117, -119))),
        "month": rng.choice(_MONTHS),
    }


# ------------------------------------------------------------------------------ fixed content

# alice, bob, carol and dave are the demo's Bastion users (see bastion.demo.DEMO_USERS).
_EMPLOYEES = (
    ("alice", "Alice Nakamura", "Chief Executive Officer", "exec"),
    ("bob", "Bob Mendoza", "Senior Firmware Engineer", "engineering"),
    ("carol", "Carol Jensen", "Account Executive", "sales"),
    ("dave", "Dave Okafor", "Customer Support Engineer", "support"),
    ("frank", "Frank Castellano", "Chief Financial Officer", "exec"),
    ("grace", "Grace Lindqvist", "Chief Operating Officer", "exec"),
    ("heidi", "Heidi Brandt", "VP of Sales", "sales"),
    ("ivan", "Ivan Petrov", "Account Executive", "sales"),
    ("judy", "Judy Alvarez", "Support Team Lead", "support"),
    ("ken", "Ken Watanabe", "VP of Engineering", "engineering"),
    ("laura", "Laura Bianchi", "Platform Engineer", "engineering"),
    ("mike", "Mike Sullivan", "Sales Engineer", "sales"),
    ("nina", "Nina Haddad", "Account Executive", "sales"),
    ("olivia", "Olivia Park", "Marketing Manager", "marketing"),
    ("priya", "Priya Raman", "Customer Success Manager", "support"),
    ("pulsebot", "Pulse Alerts", "Monitoring bot", "bot"),
)

_PHONE_STYLES = (
    "({a}) {x}-{n}",
    "{a}-{x}-{n}",
    "{a}.{x}.{n}",
    "+1 {a} {x} {n}",
    "+1 ({a}) {x}-{n}",
    "{a}{x}{n}",
    "+1-{a}-{x}-{n}",
    "1-{a}-{x}-{n}",
)

_REGIONS = {
    "Canada": ("416", "604", "403", "514", "613"),
    "US Central": ("312", "612", "314", "816", "414", "317", "216"),
    "US East": ("212", "617", "215", "412", "202", "410", "718"),
    "US South": ("713", "214", "404", "305", "615", "512", "704"),
    "US West": ("415", "510", "408", "206", "503", "916", "702", "619"),
}
_REGION_WEIGHTS = {"US West": 4, "US Central": 3, "US East": 3, "US South": 3, "Canada": 1}
_ALL_AREA_CODES = tuple(code for codes in _REGIONS.values() for code in codes)

_ACCOUNT_PREFIXES = (
    "Harbor Point", "Redwood Valley", "Granite Peak", "Blue Ridge", "Silver Lake", "Northwind",
    "Ironwood", "Cedar Creek", "Summit", "Riverbend", "Pinecrest", "Lakeshore", "Copperline",
    "Bayview", "Stonebridge", "Eagle Rock", "Falcon", "Westfield", "Meridian", "Keystone",
    "Prairie Wind", "Sierra", "Tidewater", "Oakmont", "Highland", "Maple Leaf", "Crescent",
    "Brightwater", "Fairhaven", "Timberline", "Clearwater", "Red Mesa", "Canyon", "Evergreen",
    "Lone Star", "Great Plains", "Atlas", "Beacon", "Cobalt", "Delta", "Juniper", "Sandstone",
)  # fmt: skip

_INDUSTRIES = {
    "Agriculture": ("Growers", "Farms", "AgriSystems"),
    "Chemicals": ("Chemical", "Coatings", "Polymers"),
    "Facilities Management": ("Property Services", "Facilities Group", "Building Services"),
    "Food & Beverage": ("Foods", "Dairy Cooperative", "Brewing", "Cold Storage", "Bakeries"),
    "Logistics": ("Logistics", "Freight", "Distribution", "Warehousing"),
    "Manufacturing": ("Precision Machining", "Fabrication", "Components", "Industries"),
    "Mining": ("Mining", "Aggregates", "Minerals"),
    "Oil & Gas": ("Midstream", "Petroleum", "Pipeline"),
    "Pharmaceuticals": ("Pharma", "Biologics", "Life Sciences"),
    "Utilities": ("Water District", "Power Cooperative", "Energy", "Water Authority"),
}
_LEGAL_SUFFIXES = ("", "", " Inc.", " LLC", " Co.", " Corporation")

_COLD_CHAIN = ("Food & Beverage", "Pharmaceuticals", "Logistics", "Agriculture")
_HEAVY = ("Mining", "Oil & Gas", "Utilities", "Agriculture")
# (industries the note fits, or () for any; note)
_ACCOUNT_NOTES: tuple[tuple[tuple[str, ...], str], ...] = (
    ((), "Pulse {plan} renewal due in {month}; the plant manager is our champion."),
    ((), "Piloting VibeSense V3 on {n} pumps and compressors; expansion to {n_sites} sites if the "
         "pilot hits its uptime target."),
    ((), "Moved to us from Sensaphone in {year}. Sensitive about gateway downtime after the 4.1 "
         "update incident."),
    ((), "Procurement requires a signed MSA and net-60 terms. Security review completed in "
         "{month}."),
    ((), "Uses SSO through Okta with {n_users} Pulse users across maintenance and EHS."),
    ((), "Interested in energy monitoring with PowerTap E1 on their main feeders; asked for a "
         "quote in {month}."),
    ((), "Escalated in Q3 over a delayed RMA; relationship is stable again."),
    ((), "Signed a three-year Enterprise agreement in {year}; wants quarterly business reviews."),
    (_COLD_CHAIN, "Cold-chain compliance is the main driver; auditors check ThermoPoint "
                  "calibration certificates every year."),
    (_COLD_CHAIN, "Monitors {n2} freezers and cold rooms with ThermoPoint T1; excursion reports "
                  "go to QA every morning."),
    (_HEAVY, "Runs {n_sites} remote sites on LTE gateways; no wired network in the field."),
    (_HEAVY, "Standardized on the EdgeGateway G2 Rugged for outdoor sites after a winter of "
             "failures with their old loggers."),
    ((), "Budget freeze until {month}. Keep them warm with the firmware 4.2 webinar."),
    ((), "Reliability team exports raw vibration data nightly through the API into their own "
         "data lake."),
    ((), "Evaluating a competitor on price; decision expected in {month}."),
    ((), "Happy customer, referenceable. Spoke at our user group in {year}."),
    (("Pharmaceuticals", "Chemicals"), "Validated environment (GxP); every firmware update needs "
                                       "a change request two weeks ahead."),
    (("Facilities Management",), "Rolling out AirGuard Q1 in {n_sites} office buildings for "
                                 "CO2 and occupancy reporting."),
)  # fmt: skip

_JOB_TITLES = (
    "Plant Manager", "Reliability Engineer", "Maintenance Supervisor", "Director of Operations",
    "IT Manager", "Procurement Specialist", "VP of Engineering", "Facilities Manager",
    "Controls Engineer", "EHS Manager", "Operations Analyst", "Maintenance Planner",
    "Quality Assurance Manager", "Energy Manager", "Site Lead", "CFO", "Buyer",
    "Automation Engineer", "Director of Maintenance", "OT Security Lead",
)  # fmt: skip

_CONTACT_NOTES = (
    "", "", "", "",
    "Prefers email; rarely picks up the phone.",
    "Decision maker for the sensor rollout.",
    "Technical champion; very hands-on with the API.",
    "Signs POs up to $25k.",
    "Met at Pack Expo 2025.",
    "Reports to the VP of Operations.",
    "Out of office on Fridays.",
    "Wants to be copied on every RMA.",
    "Asked for a demo of the Enterprise retention features.",
    "Former customer at another company; knows the product well.",
    "Main contact for invoices and PO numbers.",
    "Skeptical of cloud; ask about the offline buffer.",
)  # fmt: skip

_FREEMAIL = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com")

# (sku, name, category, price_usd, description): the catalogue the articles describe.
_PRODUCTS = (
    ("GW-200", "EdgeGateway G2", "gateway", 1290.0,
     "Indoor gateway for up to 250 sensors: AcmeLink sub-GHz radio, 2x Gigabit Ethernet, Wi-Fi, "
     "RS-485 for Modbus RTU, PoE or 12-48 V DC, 7-day store-and-forward buffer."),
    ("GW-210", "EdgeGateway G2 Rugged", "gateway", 1890.0,
     "IP67 gateway for outdoor and washdown areas, -40 to 70 °C, M12 connectors, same radio and "
     "software as the EdgeGateway G2."),
    ("GW-100", "EdgeGateway Lite", "gateway", 690.0,
     "Small-site gateway for up to 40 sensors with Wi-Fi and one Ethernet port."),
    ("SN-VIB-3", "VibeSense V3", "sensor", 349.0,
     "Tri-axial vibration and surface temperature sensor for motors, pumps and fans; 0-6 kHz, "
     "±16 g, magnetic or stud mount, five-year battery at 10-minute reports."),
    ("SN-TMP-1", "ThermoPoint T1", "sensor", 129.0,
     "Temperature sensor with a probe on a 2 m cable, -40 to 125 °C, ±0.3 °C accuracy; made "
     "for freezers, cold rooms and process lines."),
    ("SN-HUM-2", "HumiTrack H2", "sensor", 159.0,
     "Humidity and temperature sensor, 0-100 % RH at ±2 % RH, for warehouses and clean rooms."),
    ("SN-PRS-2", "PressureLine P2", "sensor", 289.0,
     "Pressure transmitter with a 1/4 in NPT port, ranges up to 600 psi, 0.25 % full scale."),
    ("SN-FLW-4", "FlowMeter F4", "sensor", 1150.0,
     "Clamp-on ultrasonic flow meter for pipes from 1 to 12 in; no cutting, no downtime."),
    ("SN-PWR-1", "PowerTap E1", "sensor", 219.0,
     "Energy meter with three split-core current clamps up to 400 A for panels and feeders."),
    ("SN-AIR-1", "AirGuard Q1", "sensor", 249.0,
     "Air quality sensor for CO2, PM2.5, VOC, temperature and humidity in occupied buildings."),
    ("ACC-BAT-36", "Battery pack 3.6 V", "accessory", 24.0,
     "Replacement 3.6 V lithium-thionyl chloride D-cell pack for VibeSense, ThermoPoint, "
     "HumiTrack and PressureLine sensors."),
    ("ACC-LTE-1", "LTE modem module", "accessory", 179.0,
     "LTE-M / Cat-1 modem for the EdgeGateway G2 with nano-SIM slot and two antennas."),
    ("PLS-STR", "Pulse Starter (annual, per sensor)", "subscription", 36.0,
     "Acme Pulse Starter: dashboards, email alerts, 30 days of raw data, up to 5 users."),
    ("PLS-PRO", "Pulse Professional (annual, per sensor)", "subscription", 60.0,
     "Acme Pulse Professional: SMS, Slack and webhook alerts, API, SAML SSO, 13 months of raw "
     "data, up to 50 users."),
    ("PLS-ENT", "Pulse Enterprise (annual, per sensor)", "subscription", 96.0,
     "Acme Pulse Enterprise: everything in Professional plus SCIM, bulk export, 36 months of raw "
     "data, unlimited users; 250-sensor minimum."),
    ("SVC-PSUP", "Premium Support (annual, per site)", "service", 4800.0,
     "24/7 phone support with a 1-hour response for Sev1, advance hardware replacement and a "
     "named support engineer."),
)  # fmt: skip
_SKU_SENSOR = {sku: name for sku, name, category, *_ in _PRODUCTS if category == "sensor"}
_ORDER_MIX = {"gateway": 14, "sensor": 46, "accessory": 12, "subscription": 22, "service": 6}
_QUANTITIES = {
    "GW-200": (1, 8),
    "GW-210": (1, 6),
    "GW-100": (1, 3),
    "SN-VIB-3": (10, 120),
    "SN-TMP-1": (10, 160),
    "SN-HUM-2": (5, 80),
    "SN-PRS-2": (4, 40),
    "SN-FLW-4": (1, 8),
    "SN-PWR-1": (2, 30),
    "SN-AIR-1": (5, 60),
    "ACC-BAT-36": (10, 100),
    "ACC-LTE-1": (1, 8),
    "PLS-STR": (20, 120),
    "PLS-PRO": (40, 400),
    "PLS-ENT": (250, 1200),
    "SVC-PSUP": (1, 3),
}
_ERP_SCHEMA = """
CREATE TABLE products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price_usd REAL NOT NULL,
    description TEXT NOT NULL
);
CREATE TABLE orders (
    order_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    sku TEXT NOT NULL REFERENCES products(sku),
    quantity INTEGER NOT NULL,
    total_usd REAL NOT NULL,
    status TEXT NOT NULL,
    ordered_at TEXT NOT NULL
);
CREATE INDEX orders_account ON orders(account_id);
"""

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_SITES = (
    "Plant 2", "the Fresno warehouse", "Line 4", "our Tulsa distribution center", "Building C",
    "the north pump station", "Cold Room 3", "the packaging hall", "the Reno plant",
    "the boiler house", "Warehouse 7", "the east wastewater lift station", "the paint shop",
    "the Hamilton site", "the compressor room",
)  # fmt: skip
# Battery-powered first: the last two run on mains power.
_SENSOR_NAMES = ("VibeSense V3", "ThermoPoint T1", "HumiTrack H2", "PressureLine P2",
                 "PowerTap E1", "AirGuard Q1")  # fmt: skip
_SERIAL_PREFIX = {"VibeSense V3": "VS3", "ThermoPoint T1": "TP1", "HumiTrack H2": "HT2",
                  "PressureLine P2": "PL2", "PowerTap E1": "PE1", "AirGuard Q1": "AQ1",
                  "FlowMeter F4": "FM4"}  # fmt: skip
_DASHBOARDS = ("Compressor Health", "Cold Chain Overview", "Line 4 Vibration",
               "Energy by Building", "Pump Station Summary", "Warehouse Climate")  # fmt: skip
_RULES = ("Freezer above -15 °C", "Pump P-101 vibration high", "Warehouse humidity over 70%",
          "Boiler pressure low", "Gateway offline", "Compressor 3 velocity > 7 mm/s")  # fmt: skip

# (subject, sentence, ...): a customer's report; closers and contact lines are added at random.
_CASE_PROBLEMS = (
    ("{gateway} offline since firmware {gw_fw} update",
     "Our {gateway} at {site} went offline right after the automatic update to firmware {gw_fw} "
     "[[last night|on {weekday}|over the weekend]].",
     "The cloud LED is blinking amber and Pulse shows the gateway as Disconnected.",
     "We power-cycled it twice and the Ethernet link light on the switch is on."),
    ("Gaps in {sensor} data at {site}",
     "Since {weekday} we see gaps of 20 to 40 minutes in the readings from {n} {sensor} sensors "
     "at {site}.",
     "The gateway stays online and the other sensors on it report normally.",
     "The device details page shows a signal strength of about {rssi} dBm on the affected units."),
    ("Dashboard '{dashboard}' times out",
     "The '{dashboard}' dashboard spins for over a minute and then shows 'Query timed out'.",
     "It has {n} widgets, most of them 30-day trend charts across all of our sensors.",
     "Other dashboards load fine for the same users, so it seems specific to this one."),
    ("ThermoPoint readings {offset} °C too high",
     "Our ThermoPoint T1 probes in {site} read about {offset} °C higher than our calibrated "
     "reference thermometer.",
     "This matters for our food safety audit on {deadline}, so the numbers have to be right.",
     "Is there a field calibration procedure, or do the probes need to come back to you?"),
    ("Not receiving SMS alerts for '{rule}'",
     "The alert rule '{rule}' fired according to the event log, but nobody on the on-call list "
     "got an SMS.",
     "Email notifications for the same rule arrived normally.",
     "We changed our on-call phone numbers last week, which may be related."),
    ("API returns 401 with a new token",
     "Our integration started getting 401 Unauthorized from the /v2/telemetry endpoint "
     "[[this morning|on {weekday}|after lunch]].",
     "We created a new API token with the read:telemetry scope because the old one expired after "
     "90 days.",
     "The same token works with curl from my laptop but not from our ETL server."),
    ("Batteries draining fast on {battery_sensor}",
     "Several {battery_sensor} units we installed in {month} already report a battery level "
     "below 20%.",
     "The datasheet promises about five years at the default interval, but we set "
     "report_interval_s to 30 on these for a study.",
     "Can you tell us what battery life to expect and how to get them back to normal?"),
    ("Cannot pair new sensors from order {order}",
     "We received {order_qty} new {sensor} sensors with order {order} and none of them will "
     "pair with our {gateway}.",
     "Holding the PAIR button for 5 seconds makes the LED blink blue, but they never show up "
     "under Pending devices.",
     "The gateway is on firmware {gw_fw} and the older sensors on it still work."),
    ("RMA request: damaged {sensor} from order {order}",
     "One of the {sensor} units from order {order} arrived with a cracked housing.",
     "The serial number is {serial} and I attached photos of the box and the unit.",
     "Please send a replacement and a return label."),
    ("Question about invoice {invoice}",
     "Invoice {invoice} lists {n2} Pulse Professional sensor licenses, but we decommissioned "
     "[[about 30|about 20|a dozen]] of those sensors in {month}.",
     "Are decommissioned devices still being billed until renewal?",
     "Our AP team needs a corrected invoice or an explanation before month end."),
    ("SSO login loop with Microsoft Entra ID",
     "Since we switched Pulse to SSO with Microsoft Entra ID, users are sent back to the login "
     "page in a loop.",
     "The SAML response carries the address in the NameID, but I am not sure which attribute "
     "Pulse expects for the email.",
     "Our owner account can still log in with a password, so we are not locked out."),
    ("Bulk export of raw data for {site}",
     "Our reliability team wants the raw vibration data for {site} from the last 12 months.",
     "The CSV export in the web app stops at 31 days per download.",
     "Is there a bulk export, or can you deliver it to our S3 bucket?"),
    ("LTE gateway at {site} keeps dropping",
     "Our {gateway} with the LTE modem at {site} loses its connection several times a day.",
     "The cellular page shows one bar and an RSRP of about -118 dBm.",
     "The site has no wired internet, so LTE is our only option there."),
    ("Modbus values 10x too high",
     "We connected a flow controller over Modbus RTU to the gateway and the values in Pulse are "
     "ten times too high.",
     "The manual says register 40012 holds the flow in tenths of cubic meters per hour.",
     "Where do we set the scale factor for this register?"),
    ("Webhook deliveries failing since {weekday}",
     "Our webhook endpoint stopped receiving alert events on {weekday}.",
     "The delivery log in Pulse shows HTTP 413 responses from our side.",
     "Did the payload format or size change in a recent release?"),
    ("PowerTap E1 reads 0 A on the main feeder",
     "A new PowerTap E1 on the main feeder at {site} reports 0.0 A although the line is loaded.",
     "We checked that the arrow on each clamp points toward the load.",
     "The voltage readings look right, only the current is zero."),
    ("Remove Pulse access for a former employee",
     "Please remove Pulse access for a colleague who left the company last Friday.",
     "We do not use SSO yet, so I cannot deprovision people myself as far as I know.",
     "Also, will the API tokens they created stop working?"),
    ("Firmware updates during production hours",
     "Last week {n} of our gateways at {site} updated at 10:00 in the middle of a shift.",
     "I thought updates only run in the maintenance window.",
     "How do we move the window to Sunday night and stop this from happening again?"),
    ("Data retention for our security questionnaire",
     "Our security team is filling out a vendor questionnaire and needs to know how long you keep "
     "raw sensor data.",
     "We are on Pulse Professional with {n2} sensors.",
     "They also asked what happens to our data if we cancel."),
    ("PressureLine P2 drifting at {site}",
     "A PressureLine P2 on the boiler feed line at {site} drifted about 4 psi over two months "
     "compared with our mechanical gauge.",
     "The other transmitters on the same header agree with their gauges.",
     "Is this a calibration issue or should we RMA it? Serial is PL2-{serial_tail}."),
    ("Gateway {gw_serial} shows solid red LED",
     "Gateway {gw_serial} at {site} shows a solid red cloud LED since we moved it to a new VLAN.",
     "Our network team says outbound 443 is open.",
     "Do we need any other ports for the gateway?"),
    ("Alert storm from '{rule}'",
     "The rule '{rule}' sent us more than 200 notifications overnight.",
     "The value hovers right around the threshold and the alert keeps firing and clearing.",
     "Is there a way to stop the flapping without raising the threshold?"),
)  # fmt: skip
_CASE_PHONE_LINES = (
    "You can reach me directly at {phone}.",
    "Best number for a callback is {phone}, mornings are better.",
    "If it is easier to talk it through, call me at {phone}.",
)
_CASE_EMAIL_LINES = (
    "Please reply to {email}, I do not check the portal often.",
    "Send the details to {email} and I will forward them to our IT team.",
)
_CASE_CLOSERS = (
    "This affects production monitoring at {site2}, so a quick answer would be appreciated.",
    "Let me know if you need logs; I can download a diagnostics bundle from the gateway.",
    "Thanks in advance for looking into this.",
    "We have an audit on {deadline} and would like this fixed before then.",
    "Happy to set up a screen share if that helps.",
)

_EVERYONE = tuple(u for u, *_rest in _EMPLOYEES if u != "pulsebot")
# (name, private, members, purpose, topic)
_CHANNELS = (
    ("general", False, _EVERYONE, "Company-wide announcements and questions.",
     "All-hands Friday 10:00 PT | Q1 goals in the wiki"),
    ("support", False, ("dave", "judy", "priya", "bob", "ken", "alice", "pulsebot"),
     "Customer cases, escalations and the support queue.",
     "Queue triage 09:30 PT daily | Sev1? page on-call via PagerDuty"),
    ("sales", False, ("carol", "heidi", "ivan", "nina", "mike", "alice", "olivia", "priya"),
     "Pipeline, deals, demos and customer news.", "Q1 kickoff Jan 13 | Forecast due Thursdays"),
    ("engineering", False, ("bob", "ken", "laura", "dave", "judy", "grace", "pulsebot"),
     "Firmware, platform and releases.", "Gateway 4.2.1 rollout at 100% | Freeze Jan 29-Feb 2"),
    ("random", False, _EVERYONE, "Non-work banter and water-cooler conversation.",
     "Lunch orders before 11:30"),
    ("exec-private", True, ("alice", "frank", "grace"),
     "Executive team only. Confidential: do not forward.", "Board meeting Feb 12 | Bluebird"),
    ("deal-desk", True, ("carol", "heidi", "ivan", "nina", "mike", "frank"),
     "Discount and non-standard terms approvals.",
     "Post the template: account, products, list, ask, competitor, term"),
)  # fmt: skip
_CHANNEL_VOLUME = {
    "general": (10, 14),
    "support": (14, 24),
    "sales": (12, 20),
    "engineering": (14, 24),
    "random": (10, 13),
    "exec-private": (10, 14),
    "deal-desk": (10, 15),
}
_SLACK_JOINS = {"support": ("priya",), "sales": ("priya",), "deal-desk": ("mike",)}

# Speakers are usernames, "+team" (someone from that team in the channel) or "op" (the thread's
# author); {@name}, {@+team} and {@op} in a text become user mentions.
_SLACK_THREADS: dict[str, tuple[tuple[tuple[str, str], ...], ...]] = {
    "general": (
        (
            (
                "alice",
                "Happy new year everyone! Quick reminder that the Q1 all-hands is Friday at "
                "10:00 PT. We'll go over 2025 results and the Q1 goals.",
            ),
            ("+sales", "Will it be recorded? Half of the sales team is at customer sites Friday."),
            ("olivia", "Yes, the recording goes to the wiki the same afternoon."),
            ("alice", "And bring questions, we'll keep 20 minutes for Q&A."),
        ),
        (
            (
                "grace",
                "Please welcome {@priya} who joins us as Customer Success Manager! Priya was "
                "at a SCADA vendor for six years and will own onboarding for strategic "
                "accounts.",
            ),
            ("+any", "Welcome Priya! :wave:"),
            ("+support", "Welcome! Ping me for anything support-related."),
            ("priya", "Thanks all, happy to be here!"),
        ),
        (
            (
                "olivia",
                "We're a case study again: {account} agreed to let us publish how they cut "
                "unplanned downtime with VibeSense V3. Draft is in the marketing folder.",
            ),
            ("+sales", "Nice! Can we use it in decks already?"),
            ("olivia", "Not until their legal approves, probably in two weeks."),
        ),
        (
            (
                "grace",
                "Office note: the Oakland office HVAC is being serviced Thursday, expect it "
                "to be chilly in the morning.",
            ),
            ("+any", "Ironic for a company that sells temperature sensors :sweat_smile:"),
            ("grace", "We did put a ThermoPoint on the wall, it's on the Office dashboard."),
        ),
        (
            (
                "alice",
                "Shout-out to {@+support} for closing 140 cases in December with a median "
                "first response of 38 minutes. Customers noticed.",
            ),
            ("judy", "Team effort, and thanks to engineering for the quick 4.2.1 fix."),
            ("ken", ":raised_hands:"),
        ),
        (
            (
                "olivia",
                "Reminder: the 2026 brand voice guide is in the marketing folder. Please "
                "skim it before writing anything customer-facing.",
            ),
            ("+sales", "Does it cover LinkedIn posts too?"),
            ("olivia", "Yes, same rules. Short sentences, no 'revolutionary'."),
        ),
        (
            (
                "frank",
                "Expense reports for December are due by January 12. Submit them in Ramp "
                "with receipts attached.",
            ),
            ("+any", "Does the holiday party taxi count as a business expense?"),
            ("frank", "Yes, code it as team event."),
        ),
    ),
    "support": (
        (
            (
                "+support",
                "Heads up: {account} reports their {gateway} offline since the {gw_fw} "
                "update ({case}). Cloud LED blinking amber.",
            ),
            (
                "bob",
                "Is it behind a proxy with TLS inspection? We saw exactly this with Zscaler "
                "last month.",
            ),
            ("op", "Yes, they run a Fortinet with SSL inspection on that VLAN."),
            (
                "bob",
                "Ask them to exempt *.pulse.acmecorp.com and port 8883. The gateway pins our "
                "certificate so inspection breaks MQTT.",
            ),
            ("op", "That fixed it, closing {case} :white_check_mark:"),
        ),
        (
            (
                "+support",
                "Anyone seen ThermoPoint offsets of {offset} °C after a probe swap? "
                "{account} has an audit on {deadline}. Case {case}.",
            ),
            (
                "judy",
                "After a probe swap the offset resets to 0. They need to redo the two-point "
                "calibration, the PDF guide has the steps.",
            ),
            ("op", "Makes sense, sending them the calibration guide."),
        ),
        (
            (
                "judy",
                "Queue status: 23 open, 9 pending customer, 2 high priority. {@+support} can "
                "you take {case} ({account})? It's about {sensor} data gaps.",
            ),
            ("+support", "On it."),
            ("judy", "Thanks. Remember the 4-hour first response target for high priority."),
        ),
        (
            (
                "+support",
                "{account} asks if we can extend their raw data retention beyond 13 "
                "months on Professional. What do I tell them?",
            ),
            (
                "judy",
                "Professional is fixed at 13 months. Enterprise has 36 months, and longer "
                "retention is an add-on. Loop in {@priya} for the upsell.",
            ),
            ("priya", "I'll reach out to {contact} this week."),
        ),
        (
            (
                "+support",
                "Customer on {case} says SMS alerts stopped after they changed on-call "
                "numbers. Do we cache numbers anywhere?",
            ),
            (
                "bob",
                "No, but numbers need to be re-verified after a change. Check the recipient's "
                "status under Alerts > Recipients.",
            ),
            ("op", "It says 'unverified' for both numbers. Thanks!"),
        ),
        (
            (
                "dave",
                "RMA for {account}: cracked {sensor} housing from order {order}. Serial "
                "{serial}. Approving advance replacement since they have Premium Support.",
            ),
            (
                "judy",
                "Approved. Use the RMA- number from the form and put the order number in the case.",
            ),
            ("dave", "Done, replacement ships tomorrow."),
        ),
        (
            (
                "+support",
                "{@bob} quick one: what's the max pairing window on the G2? Customer "
                "wants to pair 120 sensors in one go.",
            ),
            (
                "bob",
                "10 minutes per window, but they can use bulk pairing with the CSV of serials "
                "and install keys, no button pressing needed.",
            ),
            ("op", "Perfect, pointing them to the pairing article."),
        ),
        (
            (
                "judy",
                "Reminder: for Sev1 page on-call via PagerDuty and open an #inc- channel. "
                "Don't wait for a reply in here.",
            ),
            ("+support", "Is the playbook updated with the new credit approval limits?"),
            ("judy", "Yes, support lead up to 10% of the monthly fee, above that Frank."),
        ),
        (
            (
                "pulsebot",
                ":large_yellow_circle: [WARNING] 14 gateways for {account} offline for "
                "more than 30 minutes (region us-east-2).",
            ),
            ("+support", "Checking. Looks like a site power outage, all at {site}."),
            ("+support", "Customer confirmed: planned electrical work. No action needed."),
        ),
    ),
    "sales": (
        (
            (
                "carol",
                "{account} just signed! {n2} VibeSense V3, {n} EdgeGateway G2 and Pulse "
                "Enterprise for three years. :tada:",
            ),
            ("heidi", "Huge, congrats {@carol}! That's the biggest deal of the quarter so far."),
            ("alice", "Great work. Who was the champion?"),
            (
                "carol",
                "{contact}, their reliability lead. The pilot found a failing bearing in week two.",
            ),
        ),
        (
            (
                "+sales",
                "Lost {account2} to Sensaphone on price. They quoted about 20% below our "
                "hardware list.",
            ),
            (
                "heidi",
                "Did they compare the subscription? Sensaphone charges per gateway plus data.",
            ),
            ("op", "They only looked at year one hardware. I'll send a three-year TCO anyway."),
        ),
        (
            (
                "mike",
                "Demo tip: the new 'Compressor Health' dashboard template lands really well "
                "with reliability engineers. Takes 2 minutes to set up live.",
            ),
            ("+sales", "Can you record a short walkthrough?"),
            ("mike", "Sure, will post it here by Thursday."),
        ),
        (
            (
                "heidi",
                "Forecast is due Thursday noon. Please update close dates in the CRM, "
                "several are still in December.",
            ),
            ("+sales", "Moving {account} to February, their budget freeze ends then."),
            ("heidi", "Thanks. Commit vs best case please, not 'maybe'."),
        ),
        (
            (
                "priya",
                "{account} wants a QBR in two weeks. Their usage dropped 30% since they "
                "moved Line 4. {@+sales} can you join?",
            ),
            (
                "+sales",
                "Yes. Let's frame it around re-pairing the moved sensors, not a renewal pitch.",
            ),
            ("priya", "Agreed. I'll send the invite to {contact}."),
        ),
        (
            ("+sales", "Does anyone have a reference customer in Oil & Gas for the G2 Rugged?"),
            (
                "heidi",
                "{account2} runs them at -35 °C in North Dakota. Ask {@priya} before "
                "contacting them.",
            ),
            ("priya", "They're happy to take a call, just give me a day's notice."),
        ),
        (
            (
                "olivia",
                "Webinar 'Predictive maintenance for pumps in 30 minutes' has 212 "
                "registrations. I'll share the lead list Monday.",
            ),
            ("+sales", "Please tag them by region so we don't double-dip."),
            ("olivia", "Will do."),
        ),
    ),
    "engineering": (
        (
            (
                "pulsebot",
                ":red_circle: [FIRING] ingest-latency-p95 > 2s for 5m (us-east-2, mqtt-ingest)",
            ),
            ("laura", "Looking. Kafka consumer lag on telemetry-raw is climbing."),
            ("laura", "One broker had a full disk. Expanded the volume, lag draining."),
            ("pulsebot", ":large_green_circle: [RESOLVED] ingest-latency-p95 > 2s (us-east-2)"),
            ("ken", "Thanks {@laura}. Please add disk usage to the broker alerts."),
        ),
        (
            (
                "bob",
                "Gateway 4.2.1 is at 100% of the fleet. Crash rate is 0.02%, down from 0.3% "
                "on 4.2.0. The Modbus poller leak is gone.",
            ),
            ("ken", "Great. Any stragglers?"),
            (
                "bob",
                "About 40 gateways with manual update policy. Support is nudging those customers.",
            ),
            ("dave", "Yes, I'm on it."),
        ),
        (
            (
                "ken",
                "Code freeze for the Pulse 26.2 release is Jan 29 to Feb 2. Please get PRs "
                "for SCIM groups and the export API in before then.",
            ),
            ("laura", "Export API PR is up, needs a review."),
            ("bob", "I'll take it this afternoon."),
        ),
        (
            (
                "dave",
                "Case {case}: customer's LTE gateway drops several times a day at RSRP -118. "
                "Anything we can do on firmware side?",
            ),
            (
                "bob",
                "4.2.1 improved the modem reconnect, but at -118 the fix is an external "
                "antenna. The antenna kit gives them about 6 dB.",
            ),
            ("dave", "OK, I'll suggest the antenna kit and moving the gateway up."),
        ),
        (
            (
                "laura",
                "Postmortem for last week's dashboard timeouts is in the wiki. Root cause: "
                "30-day queries on raw data instead of hourly rollups.",
            ),
            ("ken", "Action items have owners?"),
            ("laura", "Yes, query planner change ships in 26.2."),
        ),
        (
            (
                "bob",
                "PR #2184: sensor firmware 2.8.1 fixes the pairing issue with HumiTrack H2 "
                "batches from November (wrong install key CRC).",
            ),
            ("judy", "Thank you! We had {n} cases about that."),
            ("bob", "Rolling out to 10% tomorrow, full fleet Monday if clean."),
        ),
        (
            (
                "pulsebot",
                ":large_yellow_circle: [WARNING] webhook-delivery-failure-rate > 5% for 15m",
            ),
            (
                "laura",
                "Mostly one customer endpoint returning 413. Payloads with 200+ alerts batched.",
            ),
            ("ken", "Cap batches at 100 alerts and document it."),
        ),
        (
            (
                "grace",
                "What's our plan for the EU region capacity in Q1? Two new Enterprise "
                "customers go live in Frankfurt in February.",
            ),
            ("ken", "Adding two ingest nodes in January, we're at 55% now."),
            ("grace", "Good, please keep me posted."),
        ),
    ),
    "random": (
        (
            ("+any", "Who took the last oat milk from the fridge? :eyes:"),
            ("+any", "Guilty. New carton arrives with the grocery order tomorrow."),
            ("+any", "Forgiven."),
        ),
        (
            ("+any", "Lunch at the taqueria on Broadway? Leaving at 12:15."),
            ("+any", "I'm in"),
            ("+any", "Me too, save me a seat"),
        ),
        (
            ("+any", "Post your desk setups, I need inspiration for the new monitor arm."),
            ("+any", "Two monitors and a plant that somehow survives."),
            ("+any", "My cat is my desk setup."),
        ),
        (
            ("+any", "Anyone running the Oakland half marathon in March?"),
            ("+any", "Signed up last week, training starts Monday."),
            ("+any", "I'll be at the finish line with coffee."),
        ),
        (
            ("+any", "The coffee machine on 3 is making that noise again."),
            ("+any", "Should we put a VibeSense on it?"),
            ("+any", "Honestly yes, it'd make a great demo."),
        ),
    ),
    "exec-private": (
        (
            (
                "alice",
                "Project Bluebird update: Larkspur Analytics' board accepted the revised "
                "term sheet at $42M, 60% stock, 40% cash. Data room opens Monday.",
            ),
            ("frank", "Good. Our bank covenants allow up to $18M cash out, so 40% works."),
            (
                "grace",
                "Integration plan draft is in the exec drive under Bluebird. Nobody outside "
                "this channel has access.",
            ),
            ("alice", "Reminder: codename only, including calendar invites and Slack."),
        ),
        (
            (
                "frank",
                "Board meeting confirmed for Thursday, February 12, 2026, 9:00-13:00 PT. "
                "Deck drafts to me by February 2.",
            ),
            ("alice", "I'll do strategy and Bluebird. Grace, ops and hiring plan?"),
            ("grace", "Yes. Also the May 14 meeting is tentatively in Boston."),
        ),
        (
            (
                "grace",
                "Rumors in #random about layoffs after the slow December. To be clear: no "
                "layoffs are planned. We're adding 6 roles in Q1.",
            ),
            ("alice", "Agreed. I'll address it at Friday's all-hands without mentioning Bluebird."),
            ("frank", "The plan funds the 6 roles even without the Larkspur synergies."),
        ),
        (
            (
                "frank",
                "Q4 close (preliminary): bookings $11.8M vs $11.2M plan, ARR $27.4M, gross "
                "margin 61%. Cash $38.6M, runway 31 months at current burn.",
            ),
            ("alice", "Strong quarter. What drove the bookings beat?"),
            ("frank", "Two strategic deals pulled in from Q1 and Enterprise upgrades."),
        ),
        (
            (
                "alice",
                "Bluebird: Larkspur's CTO asks for retention packages for 9 engineers, "
                "about $2.1M over two years. Frank, can we absorb that?",
            ),
            ("frank", "Yes if it vests over 24 months and half of it is in stock."),
            ("grace", "I'd keep the packages confidential from our own team until announcement."),
        ),
        (
            (
                "frank",
                "Comp review: proposing a 4% merit pool and 1.5% promotion pool for 2026. "
                "Needs comp committee sign-off at the February 12 board meeting.",
            ),
            ("grace", "Engineering will ask for more. Market for firmware engineers is tight."),
            ("alice", "Let's hold at 4% and use the promotion pool for the key people."),
        ),
        (
            (
                "grace",
                "Bluebird announcement target is March 2 if the HSR waiting period ends on "
                "time. Filing goes out next week.",
            ),
            ("frank", "Outside counsel confirmed the filing fee and timeline."),
            ("alice", "Let's draft the customer FAQ now, but keep it in the exec folder."),
        ),
        (
            (
                "alice",
                "CRO search is down to two finalists. Heidi doesn't know yet, let's keep "
                "this here until the offer is signed.",
            ),
            ("grace", "Second interviews are on January 14 and 16."),
            ("frank", "Budget for the role is approved up to $310k base."),
        ),
    ),
    "deal-desk": (
        (
            (
                "carol",
                "Discount request: {account}. {n2} VibeSense V3, {n} EdgeGateway G2, Pulse "
                "Enterprise 3-year. List ${amount}k, asking {pct}% off. Competitor: "
                "Sensaphone about 20% below us.",
            ),
            ("heidi", "{pct}% is above my 20% limit, needs {@frank}."),
            (
                "frank",
                "Approved at {pct_ok}% if they sign for three years with annual prepay. No "
                "free hardware.",
            ),
            ("carol", "Thanks, updating the quote in the CRM now."),
        ),
        (
            (
                "ivan",
                "FYI: giving {account} {pct_small}% on their Pulse Professional renewal, "
                "within my 10% limit. Term: 1 year.",
            ),
            ("heidi", "OK. Try for a two-year term next time, it's worth another 3 points to us."),
            ("op", "Will do."),
        ),
        (
            (
                "nina",
                "Can we waive the Enterprise 250-sensor minimum for {account}? They're at "
                "180 sensors and adding two sites in Q2.",
            ),
            (
                "heidi",
                "Approved for year one only. The minimum applies at renewal, put it in the "
                "order form.",
            ),
            ("frank", "Agreed. No waiver on the price per sensor."),
        ),
        (
            ("ivan", "{account} wants net-60 payment terms instead of net-30. Deal is ${amount}k."),
            ("frank", "Net-60 is fine above $100k ARR. Below that, net-45 is the most I'll do."),
            ("ivan", "They're at ${big}k ARR, so net-60 it is."),
        ),
        (
            ("carol", "{account} asks for a free pilot: 20 sensors and one gateway for 60 days."),
            (
                "heidi",
                "Standard pilot, approved. We need a success plan signed by {contact} "
                "before shipping.",
            ),
            ("mike", "I'll run the kickoff and the week-4 review."),
        ),
        (
            (
                "+sales",
                "Quarter-end question: {account2} wants an extra 5% if they sign by "
                "March 27. Allowed?",
            ),
            (
                "frank",
                "No extra discounts in the last 5 business days of the quarter without my "
                "approval, and I won't approve this one. Hold the price.",
            ),
            ("op", "Understood."),
        ),
        (
            (
                "carol",
                "Non-standard terms for {account}: they want uncapped liability for data breaches.",
            ),
            (
                "frank",
                "No. Our cap is 12 months of fees, we can go to 24 months for data breach "
                "only. Send it to legal.",
            ),
            ("carol", "Thanks, I'll propose the 24-month super-cap."),
        ),
    ),
}

_SLACK_SINGLES: dict[str, tuple[tuple[str, str], ...]] = {
    "general": (
        ("+any", "Reminder: badge in at the front door, the side entrance is locked this week."),
        ("olivia", "New customer stories are up on the website, thanks to everyone who helped."),
        ("grace", "The wiki page with Q1 goals is updated, have a look before the all-hands."),
        ("+any", "Has anyone seen a black Anker charger in the big meeting room?"),
        ("frank", "Payroll runs a day early this month because of the holiday."),
        ("+any", "Thanks {@+support} for helping me with my first customer call today!"),
        ("alice", "Congrats to {@+sales} on closing {account}. Great start to the year."),
        ("olivia", "Photos from the holiday party are in the shared drive."),
        ("+any", "Heads up, the parking garage is closed Saturday for repaving."),
        ("grace", "IT reminder: laptops need the January OS update by Friday."),
        ("+any", "Friendly reminder to fill out the benefits survey, it closes Wednesday."),
        ("+any", "Is the all-hands in the big room or online only?"),
    ),
    "support": (
        ("+support", "Taking {case} ({account}, {sensor} data gaps)."),
        ("+support", "{case} is waiting on the customer for a diagnostics bundle."),
        ("+support", "Closed {case}: customer re-verified their SMS recipients, alerts work."),
        ("judy", "Triage done. Everything high priority has an owner."),
        ("+support", "Anyone free to cover the phone queue from 2 to 3 PT?"),
        (
            "pulsebot",
            ":large_yellow_circle: [WARNING] {n} sensors at {account} report battery below 15%.",
        ),
        ("+support", "{account} asks for an RMA on a {sensor}, serial {serial}. On it."),
        ("+support", "Customer on {case} confirms the fix, closing it."),
        (
            "+support",
            "Pointing {account} to the SSO article, they mapped the wrong email attribute.",
        ),
        ("priya", "Onboarding call with {account} went well, they'll pair {n2} sensors this week."),
        ("+support", "Escalated {case} to engineering, repro steps in the case."),
        (
            "+support",
            "For the record: firmware 4.2.1 release notes are linked in the KB article on updates.",
        ),
        (
            "judy",
            "{@+support} please don't promise fix dates to customers, say we'll update "
            "them by a date instead.",
        ),
        ("+support", "Invoice question from {account} ({invoice}), forwarding to finance."),
    ),
    "sales": (
        ("+sales", "Demo with {account} went well, they want a pilot quote for {n} sensors."),
        ("+sales", "Updated the battle card for Sensaphone, link in the sales folder."),
        ("heidi", "Reminder: Q1 kickoff is January 13, agenda in your inbox."),
        ("+sales", "{account} is asking for SOC 2 report, who sends it?"),
        ("mike", "Pilot at {account} found a misaligned motor coupling in week one :muscle:"),
        ("+sales", "Quote sent to {account}: {n2} ThermoPoint T1 and Pulse Professional."),
        ("+sales", "Meeting {contact} from {account} on Thursday for the expansion."),
        ("olivia", "New one-pager for the G2 Rugged is up, please use it instead of the old PDF."),
        ("+sales", "Anyone going to the Pack Expo planning call?"),
        ("heidi", "Pipeline coverage for Q1 is at 2.8x, we need 3x by end of month."),
        ("+sales", "{account} renewal is done, no change in price."),
        ("+sales", "{account2} went dark again, trying their ops director next."),
    ),
    "engineering": (
        ("pulsebot", ":large_green_circle: [RESOLVED] api-error-rate > 1% (us-east-2)"),
        ("pulsebot", ":large_yellow_circle: [WARNING] postgres-replica-lag > 30s for 5m"),
        (
            "+engineering",
            "Deploying Pulse web 26.1.4 to production, hotfix for CSV export timezone.",
        ),
        ("+engineering", "PR for the webhook batch cap is up, {@+engineering} review please."),
        ("ken", "Standup moved to 10:15 today."),
        ("+engineering", "Staging is down for 20 minutes for the Postgres upgrade."),
        (
            "+engineering",
            "Reminder: rotate your personal API tokens, the 90-day expiry hits next week.",
        ),
        ("+support", "Repro for {case} is in the case, happens only with firmware {gw_fw}."),
        ("+engineering", "Sensor firmware 2.8.1 at 10% of the fleet, no regressions so far."),
        ("bob", "Found the HumiTrack install key bug, fix incoming."),
        ("laura", "Hourly rollups backfill finished for all Enterprise tenants."),
        ("+engineering", "Who owns the status page config? It still says 4.2.0."),
    ),
    "random": (
        ("+any", "Rain all week again. Oakland, please."),
        ("+any", "Cookies from my kid's bake sale on the kitchen counter :cookie:"),
        ("+any", "Recommendations for a good podcast on the commute?"),
        ("+any", "The Warriors game tonight, anyone watching at the bar?"),
        ("+any", "Found a hoodie in the meeting room, it's on the coat rack."),
        ("+any", "Happy Friday! :tada:"),
        ("+any", "Anyone want to join a board game night next week?"),
        ("+any", "The new ramen place downstairs is excellent, go."),
        ("+any", "My dog ate a VibeSense pull-tab. He's fine."),
        ("+any", "Who is bringing snacks for the all-hands?"),
    ),
    "exec-private": (
        ("alice", "Bluebird weekly sync moved to Wednesday 16:00."),
        ("frank", "Board pre-read v2 uploaded to the exec folder. Please comment by Friday."),
        (
            "grace",
            "Larkspur diligence: customer contracts reviewed, 3 have change-of-control clauses.",
        ),
        ("frank", "Auditors start fieldwork January 26."),
        ("alice", "Keep Bluebird out of email, use this channel or the exec folder."),
        ("grace", "Hiring: 6 Q1 roles approved, 2 offers out."),
        ("frank", "Our line of credit renewal is signed at the same terms."),
        ("alice", "Board dinner on February 11 at 19:00, venue TBD."),
        ("grace", "Larkspur's ARR is $4.3M, growing 70% year over year. Matches their deck."),
        ("frank", "Cash forecast updated with the Bluebird cash component."),
        ("alice", "Talked to our lead investor about Bluebird, supportive."),
        ("grace", "Facilities: the second floor lease option expires March 31."),
    ),
    "deal-desk": (
        (
            "+sales",
            "Approved last week: {account} at {pct_small}% for 2 years. Quote expires in 30 days.",
        ),
        ("heidi", "Reminder: approvals are valid for 30 days. After that, repost."),
        ("frank", "Hardware discounts are capped at 15%, no exceptions this quarter."),
        ("+sales", "{account}: 12% on Pulse Professional 2-year, approved by Heidi."),
        ("+sales", "Requesting 18% for {account}, 3-year Enterprise with prepay."),
        ("heidi", "Approved 18% for {account}."),
        ("mike", "Pilot success plan for {account} is signed, shipping the kit tomorrow."),
        ("+sales", "Withdrawn: {account2} postponed the project to Q3."),
        ("frank", "Prepay discounts only apply when the invoice is paid within 30 days."),
        ("heidi", "Please always post the competitor quote, I can't approve blind."),
    ),
}

# ------------------------------------------------------------------------------ knowledge base

_KB_ACL = {
    "default": ["*"],
    "files": {
        "internal-escalation-playbook.md": ["support", "exec"],
        "pricing-discount-policy.md": ["sales", "exec"],
    },
}

_GATEWAY_INSTALLATION = """\
# EdgeGateway G2 Installation Guide

This guide covers unpacking, mounting, powering and connecting an EdgeGateway G2 (GW-200) or
EdgeGateway G2 Rugged (GW-210), and claiming it in Acme Pulse. Plan about 30 minutes per
gateway. Document version 4.2, January 2026.

## What is in the box

- The gateway with two screw-on antennas for the AcmeLink sub-GHz radio.
- A DIN-rail clip and a wall-mount bracket with four screws and anchors.
- A 24 V DC power supply (GW-200 only; the Rugged model is powered by PoE or field wiring).
- A label sheet with the serial number, the 12-character claim code and the local admin
  password. Keep this sheet: the password is unique to each gateway.

## Choosing a location

The gateway talks to the sensors over AcmeLink, a sub-GHz radio (902-928 MHz in North America,
863-870 MHz in Europe). Range is up to 300 m with a clear line of sight and typically 50 to
80 m indoors through walls and racking. One gateway serves up to 250 sensors.

- Mount the gateway at least 2 m above the floor, centered among the sensors it serves.
- Keep at least 1 m between the antennas and large metal surfaces, motors or VFD cabinets.
- Do not install the GW-200 inside a closed metal enclosure. If you must, use the antenna
  extension kit and put the antennas outside the enclosure.
- The GW-200 is rated for 0 to 50 °C indoors. The GW-210 Rugged is IP67 and rated from -40 to
  70 °C, for outdoor, washdown and freezer areas.

## Power

The GW-200 accepts 12-48 V DC on the terminal block or PoE (802.3at, class 4) on the WAN port.
The GW-210 accepts PoE (802.3at) or 18-36 V DC through the M12 power connector. Typical draw
is 6 W, 9 W with the LTE modem active. Do not power the gateway from both PoE and DC at the
same time.

## Network connection

Connect the WAN port (marked WAN, the left port) to a network with internet access. The gateway
uses DHCP by default. It only makes outbound connections: TCP 443 and 8883 to
*.pulse.acmecorp.com, and UDP 123 for NTP. No inbound ports are needed. See the article
"Network requirements" for the full list, proxy settings and static IP configuration.

If the site has no wired network, install the LTE modem module (ACC-LTE-1) before powering
the gateway, or use Wi-Fi through the local web interface.

## Claiming the gateway in Acme Pulse

1. Power the gateway and wait until the power LED is solid green (about 90 seconds).
2. In Acme Pulse, go to Settings > Sites, open the site and click Add gateway.
3. Enter the 12-character claim code from the label (for example 7KQ2-M9XP-4TRA).
4. Give the gateway a name that says where it is, for example "Plant 2 - Mezzanine".
5. Within two minutes the cloud LED turns solid green and the gateway shows as Online.

## The local web interface

For network settings without the cloud, connect a laptop to the LAN port (the right port) and
open https://192.168.50.1 in a browser. Log in as admin with the password from the label. The
browser warns about the self-signed certificate; this is expected. Change the password on first
login. From here you can set a static IP, a VLAN ID, a proxy or Wi-Fi credentials.

## LED reference

- Power LED solid green: powered and booted.
- Cloud LED solid green: connected to Acme Pulse.
- Cloud LED blinking amber: network is up but Acme Pulse cannot be reached.
- Cloud LED solid red: no network link or no IP address.
- Cloud LED blinking blue: pairing window open.
- Both LEDs alternating red and green: firmware update in progress. Do not unplug.

## After installation

Pair the sensors (see "Pairing sensors"), check that each sensor reports a signal better than
-100 dBm, and set up at least a "Gateway offline" alert rule. If the gateway cannot reach the
cloud, it buffers up to 7 days of readings and uploads them once the connection is back.
"""

_CALIBRATION = """\
# Sensor Calibration Guide

All Acme sensors leave the factory calibrated and ship with a calibration certificate that
you can download from the device page in Acme Pulse (Devices > sensor > Documents). Field
calibration corrects drift and installation effects. This guide explains when to calibrate,
which sensors support it and how to do it. Document version 2.8, January 2026.

## When to calibrate

- Cold chain and pharmaceutical sites: every 12 months, or as your quality system requires.
- After replacing a ThermoPoint T1 probe: the stored offset is reset to 0 when a new probe is
  detected, so calibrate again.
- When a reading disagrees with a trusted reference by more than the sensor's accuracy.
- VibeSense V3 sensors do not need field calibration; see the verification section below.

## How calibration is stored

Each sensor has an offset and a gain (slope) in Acme Pulse under Devices > sensor >
Calibration. Corrected value = raw value x gain + offset. Offsets are limited to ±5 °C for
temperature, ±10 % RH for humidity and ±2 % of full scale for pressure; larger errors mean the
sensor needs an RMA, not a calibration. Every change is recorded in the audit log with the
user, the time, the old and new values and the reference instrument you enter.

## ThermoPoint T1: two-point calibration

Accuracy is ±0.3 °C from -40 to 85 °C and ±0.5 °C above 85 °C. Use a reference thermometer
with a valid certificate and an accuracy of ±0.1 °C or better.

1. Set report_interval_s to 30 for the sensor during calibration (Devices > sensor > Settings).
   Set it back to 600 afterwards to save battery.
2. Low point: place the probe and the reference in a stirred ice bath made with crushed ice and
   distilled water. Wait 5 minutes until both readings are stable. Record both values.
3. High point: place both in a stable bath or dry-block near your process temperature, for
   example -20 °C for a freezer or 70 °C for a hot line. Wait 5 minutes and record both values.
4. Open Devices > sensor > Calibration > Two-point and enter the four values. Acme Pulse
   computes the gain and offset and shows the expected residual error.
5. Click Apply. The new values take effect with the next reading and are listed in the
   calibration history.

For a quick check with one reference point, use Single-point instead. It changes only the
offset, which is enough for most cold rooms that operate in a narrow range.

## HumiTrack H2: salt test

Accuracy is ±2 % RH from 10 to 90 % RH. Check it with saturated salt solutions in a sealed
container at a stable room temperature: magnesium chloride gives 33 % RH and sodium chloride
gives 75 % RH. Leave the sensor in each container for at least 4 hours, then enter the two
readings under Calibration > Two-point (humidity).

## PressureLine P2: zero and span

Accuracy is 0.25 % of full scale. To zero the transmitter, isolate it from the process, vent
it to atmosphere and click Calibration > Zero. For span, connect a deadweight tester or a
calibrated pressure source at 80 to 100 % of the range and enter the applied pressure. Drift
of more than 1 % of full scale per year points to a damaged diaphragm: open an RMA.

## FlowMeter F4: pipe setup and zero

The FlowMeter F4 is accurate to ±1 % of reading only when the pipe data is right. Enter the
pipe outer diameter, wall thickness, material and liner under Settings > Pipe. Mount the
transducers at least 10 pipe diameters downstream and 5 upstream of bends, valves or pumps.
With the pipe full and the flow stopped, click Calibration > Zero flow.

## VibeSense V3: verification instead of calibration

The accelerometer in the VibeSense V3 is stable for the life of the sensor and cannot be
adjusted in the field. To verify it, mount it on a handheld shaker that produces 1 g (9.81
m/s2) at 159.2 Hz and compare the reading in Devices > sensor > Live view. A reading outside
±5 % means the sensor should be replaced under warranty.

## Certificates

After a field calibration, Acme Pulse generates a calibration record (PDF) with the before and
after values and your reference instrument. Auditors usually ask for these records together
with the certificate of the reference instrument.
"""

_GETTING_STARTED = """\
# Getting started with Acme Pulse

Acme Pulse is the monitoring platform for Acme sensors and gateways. This article walks through
the first hour: from an empty organization to a working dashboard and your first alert.

## Concepts

- **Organization**: your company in Acme Pulse. Billing, users and SSO are set per organization.
- **Site**: a physical location such as a plant or a warehouse. Each site has a time zone, a
  maintenance window and one or more gateways.
- **Gateway**: an EdgeGateway G2, G2 Rugged or Lite that collects readings from sensors and
  sends them to the cloud.
- **Sensor**: a VibeSense V3, ThermoPoint T1, HumiTrack H2, PressureLine P2, FlowMeter F4,
  PowerTap E1 or AirGuard Q1, paired to exactly one gateway.
- **Asset**: the machine or room you monitor, for example "Pump P-101". Assets group sensors
  and make dashboards readable.

## Step by step

1. Accept the invitation email and set up two-factor authentication. Owners must use 2FA.
2. Create your first site under Settings > Sites > New site. Set the time zone correctly:
   alert schedules, reports and the maintenance window all use it.
3. Install and claim a gateway (see the EdgeGateway G2 Installation Guide).
4. Pair sensors (see "Pairing sensors") and assign each one to an asset.
5. Open Dashboards > New dashboard > From template. "Compressor Health", "Cold Chain
   Overview" and "Energy by Building" are good starting points.
6. Create an alert rule, for example "Freezer above -15 °C for 10 minutes" (see "Alert rules").
7. Invite your colleagues under Settings > Users and give them the right role.

## Default settings worth knowing

- Sensors report every 600 seconds (10 minutes). You can go down to 30 seconds per sensor, at
  the cost of battery life.
- Readings are shown in the site's units; switch between metric and imperial under Settings >
  Organization > Units.
- A sensor is marked Offline when no reading arrives for 3 report intervals.

## Where to go next

Read "Network requirements" before installing gateways on a locked-down network, "API tokens"
if you want to pull data into your own systems, and "Data retention" to understand how long
your plan keeps raw readings.
"""

_PAIRING = """\
# Pairing sensors

A sensor sends readings through exactly one gateway. Pairing links a sensor to a gateway and
exchanges the encryption keys for the AcmeLink radio. A gateway accepts up to 250 sensors
(40 for the EdgeGateway Lite).

## Before you start

- The gateway is claimed and Online (solid green cloud LED).
- Gateway firmware is 4.2.0 or later for HumiTrack H2 and AirGuard Q1 sensors.
- The sensor's battery is installed. New sensors ship with a plastic pull-tab that keeps the
  battery disconnected; pull it out and the sensor LED flashes green three times.

## Pair one sensor

1. In Acme Pulse go to Devices > Add sensors and choose the gateway.
2. Click **Start pairing**. The gateway opens a 10-minute pairing window and its cloud LED
   blinks blue.
3. Hold the PAIR button on the sensor for 5 seconds until its LED blinks blue, then release.
4. The sensor appears under **Pending devices** within about 30 seconds with its serial
   number. Check the serial and click **Approve**.
5. Assign the sensor to an asset and give it a position label, for example "Motor DE
   bearing".

## Pair many sensors at once (bulk pairing)

For large rollouts you do not need to press buttons. Every sensor has a serial number and an
install key printed on its label and in the packing list CSV that comes with the order.

1. Go to Devices > Add sensors > Bulk pairing and choose the gateway.
2. Upload the CSV with the columns `serial,install_key,asset,label` (asset and label are
   optional), or scan the QR codes with the Acme Pulse mobile app.
3. Pull the battery tabs. Sensors pair automatically the first time they are heard by that
   gateway, within 24 hours of the upload.

## Moving a sensor to another gateway

A sensor can only be paired to one gateway at a time. To move it, open the sensor and click
**Unpair**, wait until the status shows Unpaired (up to one report interval), then pair it with
the new gateway. Its history stays with the sensor.

## Mounting tips

- VibeSense V3: mount on the bearing housing, as close to the load zone as possible, with the
  stud mount or the magnetic base on a flat, clean, unpainted spot. Avoid thin covers and fan
  shrouds.
- ThermoPoint T1: in freezers, route the probe cable through the door gasket with the flat
  section of the cable and keep the sensor body outside the freezer for better battery life.
- HumiTrack H2: keep it out of direct sunlight and at least 30 cm from doors and vents.

## If a sensor does not show up

- Check that the pairing window is still open (blinking blue LED on the gateway).
- Move the sensor closer to the gateway for pairing; you can mount it afterwards.
- Sensors shipped with order batches from November 2025 may need gateway firmware 4.2.1 for
  HumiTrack H2 install keys to be accepted.
- Hold PAIR for 15 seconds to factory-reset a sensor that was paired elsewhere.
"""

_ALERT_RULES = """\
# Alert rules

Alert rules watch your readings and notify people when something needs attention. Create them
under Alerts > Rules > New rule.

## Condition types

- **Threshold**: the value is above or below a limit, for example "temperature above -15 °C".
- **Rate of change**: the value changes faster than a limit, for example "pressure drops more
  than 10 psi in 5 minutes".
- **No data**: a sensor or gateway sends nothing for a given time. The default is 30 minutes.
- **Battery low**: fires at 15 % battery, which leaves several weeks to replace it.
- **ISO 10816 zone**: for VibeSense V3, fires when velocity RMS enters zone C or D for the
  machine class you choose.

## Avoiding noisy alerts

Every threshold rule has two settings that prevent flapping:

- **For at least** (duration): the condition must hold for this long before the alert fires.
  For freezers, 10 minutes avoids alerts when a door is opened.
- **Clear threshold** (hysteresis): the value must cross back past this second limit before the
  alert resolves. A freezer rule that fires above -15 °C might clear below -17 °C.

If a rule fires and clears many times per hour, add a duration or widen the hysteresis rather
than raising the threshold.

## Severity and notifications

Each rule has a severity: info, warning or critical. Notifications go to channels you set up
under Alerts > Channels:

- Email (all plans).
- SMS to US and Canadian numbers (Professional and Enterprise), at most 10 messages per hour
  per recipient. New or changed numbers must be verified by replying YES before they receive
  alerts.
- Slack and Microsoft Teams channels.
- PagerDuty, through an Events API v2 integration key.
- Webhooks (see "Webhooks and integrations").

## Escalation and acknowledgement

Critical alerts re-notify every 30 minutes until someone acknowledges them, in the web app, by
replying ACK to the SMS, or from PagerDuty. You can add an escalation step, for example "notify
the maintenance manager if not acknowledged within 60 minutes".

## Quiet hours

Quiet hours mute info and warning notifications per channel, for example nights and weekends
for email. Critical alerts always go through.

## Limits

- Starter: 25 rules per organization.
- Professional: 500 rules.
- Enterprise: 2,000 rules.

## Example: freezer monitoring

```yaml
name: Freezer above -15 °C
condition: threshold
metric: temperature
operator: above
value: -15
for_at_least: 10m
clear_below: -17
severity: critical
channels: [sms-maintenance, email-quality]
```

You can import rules in this YAML format under Alerts > Rules > Import.
"""

_API_TOKENS = """\
# API tokens

The Acme Pulse REST API lets you read telemetry, manage devices and create alerts from your own
systems. Every request is authenticated with an API token.

## Create a token

1. Go to Settings > API tokens > Create token (you need the Admin or Owner role).
2. Give the token a name that says what uses it, for example "ETL - data lake".
3. Choose scopes. Give each integration only what it needs.
4. Choose an expiry: 30, 90 (default) or 365 days.
5. Copy the token. It is shown only once; Acme Pulse stores only a hash of it.

Tokens start with `pk_live_` for production organizations and `pk_test_` for sandbox
organizations.

## Scopes

- `read:telemetry`: read readings and rollups.
- `read:devices`: list gateways, sensors and their status.
- `write:devices`: rename, move and configure devices.
- `write:alerts`: create and change alert rules.
- `admin`: everything, including users. Avoid it for integrations.

## Using a token

Send it in the Authorization header. The base URL is `https://api.pulse.acmecorp.com/v2`.

```bash
curl -H "Authorization: Bearer pk_live_..." \\
  "https://api.pulse.acmecorp.com/v2/telemetry?sensor=VS3-24K-08812&from=2026-01-01T00:00:00Z"
```

## Rate limits

Each token may make 600 requests per minute. Above that the API returns HTTP 429 with a
Retry-After header in seconds. Use the bulk endpoint `/v2/telemetry/batch` for more than 50
sensors at a time.

## Expiry and rotation

Acme Pulse emails the token's creator 14 days and 3 days before a token expires. To rotate
without downtime, create the new token, deploy it, then revoke the old one under Settings >
API tokens.

## Tokens and user accounts

A token belongs to the user who created it. When that user is deactivated, all of their tokens
are revoked immediately. For integrations, create a service account under Settings > Users >
Service accounts (Professional and Enterprise) and create the token as that account.

## Common errors

- 401 Unauthorized: the token is missing, mistyped, expired or revoked. Check for a trailing
  newline when the token comes from a file or a secret store.
- 403 Forbidden: the token lacks the scope, or the request comes from an IP address outside the
  token's allowlist (Enterprise only).
- 429 Too Many Requests: slow down and honor Retry-After.
"""

_FIRMWARE = """\
# Firmware updates

Acme updates gateway and sensor firmware over the air. Current versions (January 2026):
gateway firmware 4.2.1 and sensor firmware 2.8.0, with 2.8.1 rolling out.

## Update policies

Set the policy per site under Settings > Sites > site > Firmware:

- **Automatic** (default): updates install during the site's maintenance window.
- **Staged**: 10 % of the site's gateways update first; the rest follow 24 hours later if no
  problems are detected. Recommended for sites with more than 10 gateways.
- **Manual**: nothing installs until an admin clicks Update. Security fixes marked critical
  still install automatically after 30 days.

## Maintenance window

The default window is Sunday 02:00 to 05:00 in the site's time zone. Change it under Settings >
Sites > site > Maintenance window. A wrong site time zone is the most common reason for updates
during production hours: check it first.

## What happens during an update

- The gateway downloads the image from updates.pulse.acmecorp.com and verifies its signature.
- It installs to the inactive partition (A/B) and reboots, which takes about 3 minutes. The
  LEDs alternate red and green: do not unplug the gateway.
- Readings are buffered by the sensors during the reboot, so no data is lost.
- If the new image fails to boot 3 times, the gateway rolls back to the previous version
  automatically and reports the failure in Acme Pulse.

Sensors update through their gateway, one at a time, about 20 minutes each. A sensor only
updates when its battery is above 30 %.

## Release notes: gateway 4.2.1 (December 2025)

- Fixes a memory leak in the Modbus poller that caused reboots every few days on gateways
  polling more than 10 Modbus devices.
- Faster LTE modem reconnect after network loss (from about 5 minutes to under 60 seconds).
- Accepts install keys of HumiTrack H2 sensors shipped from November 2025.
- Known issue: proxies that require NTLM authentication are not supported; use basic
  authentication or an allowlist.

## Release notes: gateway 4.2.0 (November 2025)

- Staged update policy.
- Store-and-forward buffer increased from 3 to 7 days.
- New local diagnostics command `acmectl diag --upload`.

## Checking versions

The firmware version of every device is shown in Devices, and can be filtered, for example
`firmware < 4.2.1`. From the gateway shell or the local web interface, run `acmectl status`.
"""

_CONNECTIVITY = """\
# Troubleshooting connectivity

Most connectivity problems fall into two groups: the gateway cannot reach Acme Pulse, or
sensors cannot reach the gateway. Start with the gateway's cloud LED.

## Gateway: read the cloud LED

- **Solid red**: no network link or no IP address. Check the cable on the WAN port (the left
  port), the switch port and DHCP. On LTE, check the SIM and the APN.
- **Blinking amber**: the network is up but Acme Pulse cannot be reached. This is almost always
  a firewall, proxy, DNS or clock problem.
- **Solid green**: connected. If data is still missing, the problem is between sensors and the
  gateway.

## Gateway: blinking amber checklist

1. Outbound TCP 8883 (MQTT over TLS) and 443 must be open to `*.pulse.acmecorp.com`.
2. TLS inspection breaks the connection: the gateway pins Acme's certificate. Exempt
   `*.pulse.acmecorp.com` from SSL inspection on Zscaler, Fortinet, Palo Alto and similar.
3. The clock must be within 5 minutes of real time or TLS fails. Allow NTP (UDP 123) or set an
   internal NTP server in the local web interface.
4. DNS must resolve `ingest.pulse.acmecorp.com`.
5. Proxies must allow HTTP CONNECT. NTLM authentication is not supported.

Run the built-in test from the local web interface (Diagnostics) or the shell:

```text
$ acmectl net test
wan link .............. up (1000 Mb/s)
ip address ............ 10.20.4.17/24 (dhcp)
dns ingest ............ ok (34 ms)
ntp ................... ok (offset 0.012 s)
tcp 443 api ........... ok
tcp 8883 ingest ....... FAIL (connection reset after TLS hello)
hint: TLS inspection or firewall on port 8883
```

Then run `acmectl diag --upload` and give the bundle ID to support.

## Sensors: signal strength

Open the sensor in Devices to see its signal strength (RSSI) and link quality:

- Better than -100 dBm: good.
- -100 to -110 dBm: fair; occasional retries.
- -110 to -115 dBm: poor; expect gaps in data.
- Below -115 dBm: the sensor will drop out regularly.

To improve it, move the gateway higher or closer, keep antennas vertical and away from metal,
use the antenna extension kit to get antennas out of cabinets, or add a second gateway. Since
firmware 4.1, sensors retry a failed reading up to 3 times and store up to 48 readings while
out of range.

## LTE gateways

In the local web interface under Network > Cellular, check RSRP: better than -100 dBm is good,
worse than -115 dBm is unreliable. An external antenna on the roof usually gains 6 to 10 dB.

## Still stuck?

Open a case with the gateway serial number, the output of `acmectl net test` and the
diagnostics bundle ID. For sites that are down completely, call support.
"""

_NETWORK = """\
# Network requirements

EdgeGateways only make outbound connections. No inbound ports, port forwarding or VPN are
needed. Give this page to your network or OT security team before installation.

## Allowlist

| Destination | Port | Purpose |
|---|---|---|
| ingest.pulse.acmecorp.com | TCP 8883 | Telemetry (MQTT over TLS 1.2+) |
| api.pulse.acmecorp.com | TCP 443 | Configuration and commands |
| updates.pulse.acmecorp.com | TCP 443 | Firmware images |
| time.pulse.acmecorp.com or your NTP server | UDP 123 | Clock synchronization |

EU organizations use the same names under `eu.pulse.acmecorp.com`, for example
`ingest.eu.pulse.acmecorp.com`. Acme does not publish fixed IP ranges; allow by host name.

## Bandwidth

At the default 10-minute interval, 100 sensors use about 50 MB per month. At 30-second
intervals the same 100 sensors use about 1 GB per month. Firmware updates add about 60 MB per
gateway per update.

## Static IP, VLAN and proxy

Set these in the local web interface (https://192.168.50.1 from the LAN port) or in
`/etc/acme/gateway.yaml`:

```yaml
wan:
  mode: static          # dhcp (default) or static
  address: 10.20.4.17/24
  gateway: 10.20.4.1
  dns: [10.20.0.53, 10.20.0.54]
  vlan_id: 120          # optional 802.1Q tag
proxy:
  url: http://proxy.example.internal:3128
  username: gw-plant2   # basic authentication only; NTLM is not supported
ntp:
  servers: [10.20.0.10]
```

Apply changes with `acmectl config apply`. The gateway keeps the previous configuration and
reverts after 5 minutes if it loses its connection to Acme Pulse.

## Segmentation

We recommend putting gateways on a dedicated OT or IoT VLAN with outbound access to the hosts
above only. The gateway does not need access to other systems on the network, except Modbus TCP
devices you want it to poll.

## Security

All traffic is encrypted with TLS 1.2 or newer and the gateway pins Acme's certificate
authority, which is why TLS inspection must be disabled for these hosts. The radio link
between sensors and gateway is encrypted with AES-128 using per-sensor keys exchanged at
pairing.
"""

_ROLES = """\
# User roles and permissions

Acme Pulse has five roles. Assign them under Settings > Users, or map them from your identity
provider's groups when you use SSO.

## Roles

- **Owner**: everything, including billing, SSO and deleting the organization. At least one
  and at most three owners per organization. Owners must use two-factor authentication.
- **Admin**: manage users, sites, devices, alert rules and API tokens. No billing.
- **Editor**: create and change dashboards, assets and alert rules; acknowledge alerts. Cannot
  add devices or users.
- **Viewer**: read dashboards and alerts, acknowledge alerts if the rule allows it.
- **Billing**: invoices, payment methods and plan changes only.

## Site-level access

On Professional and Enterprise, you can limit Editors and Viewers to certain sites. A
maintenance planner at the Reno plant, for example, sees only Reno's devices and dashboards.
Admins and Owners always see all sites.

## User limits

- Starter: 5 users.
- Professional: 50 users.
- Enterprise: unlimited users.

Service accounts for API access do not count toward the limit.

## Two-factor authentication

Owners can require 2FA for everyone under Settings > Security. Users then have 7 days to set
it up with an authenticator app. SMS codes are not offered. With SSO, 2FA is handled by your
identity provider.

## Removing a user

Deactivate the user under Settings > Users. This ends their sessions within 5 minutes and
revokes their API tokens immediately. Their dashboards and rules stay and can be reassigned.
With SCIM (Enterprise), deactivating the user in your identity provider does this
automatically.

## Audit log

Every sign-in, permission change, device change and calibration is recorded in the audit log
under Settings > Audit log. It is kept for 1 year on Professional and 3 years on Enterprise,
and can be exported as CSV.
"""

_BATTERY = """\
# Battery life and replacement

VibeSense V3, ThermoPoint T1, HumiTrack H2 and PressureLine P2 sensors run on one 3.6 V
lithium-thionyl chloride D-cell (ACC-BAT-36). PowerTap E1 and AirGuard Q1 are mains powered.

## Expected battery life

Battery life depends mostly on the report interval (`report_interval_s`):

| Report interval | VibeSense V3 | ThermoPoint T1, HumiTrack H2 |
|---|---|---|
| 600 s (default) | 5 years | 7 years |
| 120 s | 2 years | 4 years |
| 30 s | 8 months | 14 months |

Cold shortens battery life: below -20 °C, expect about 30 % less. Weak signal also costs
battery because the sensor retries: a sensor at -115 dBm can use twice as much energy as one
at -90 dBm.

## Battery alerts

The battery level is shown on each sensor. Acme Pulse raises a Battery low alert at 15 %,
which leaves several weeks at the default interval. The Devices list can be sorted by battery
level to plan replacement rounds.

## Replacing the battery

1. Order ACC-BAT-36 packs. Only use Acme packs: other cells may not fit the contacts and void
   the warranty.
2. Remove the sensor from its mount. Open the battery compartment by loosening the four T10
   Torx screws on the back.
3. Unplug the old pack, plug in the new one and check that the LED flashes green three times.
4. Check the gasket is seated, then tighten the screws to 0.6 Nm to keep the IP rating.
5. The sensor reconnects on its own; no pairing is needed. Reset the battery counter in
   Devices > sensor > Battery > Replaced.

## Shipping and disposal

Lithium-thionyl chloride batteries are dangerous goods for shipping (UN3090). Do not send
loose batteries back with RMAs. Dispose of used packs through a battery recycler; do not put
them in general waste.
"""

_LTE = """\
# LTE modem setup

The LTE modem module (ACC-LTE-1) gives an EdgeGateway G2 or G2 Rugged a cellular connection
where there is no wired network, or as a backup WAN.

## Installing the module

1. Power off the gateway.
2. Remove the bottom cover (four Phillips screws) and insert the module into the M.2 slot
   labeled LTE. Fasten it with the supplied screw.
3. Insert a nano-SIM into the slot next to it, contacts down.
4. Connect the two antenna cables to MAIN and DIV and screw the antennas onto the connectors
   marked LTE on the housing.
5. Close the cover and power on. The module is detected automatically.

The module supports LTE-M and LTE Cat-1 on bands 2, 4, 5, 12, 13, 14, 66 and 71, which covers
AT&T, Verizon, T-Mobile, Rogers, Bell and Telus. Ask your carrier for an IoT data plan; 500 MB
per month is enough for about 100 sensors at the default interval.

## APN settings

Most SIMs work without configuration. If yours needs an APN, set it in the local web interface
under Network > Cellular or in `/etc/acme/gateway.yaml`:

```yaml
cellular:
  apn: iot.carrier.example
  username: ""
  password: ""
  pin: ""          # only if the SIM has a PIN
  roaming: false
```

## WAN priority and failover

When more than one WAN is available, the gateway prefers Ethernet, then Wi-Fi, then LTE. It
switches to the next one after 60 seconds without a connection to Acme Pulse and back when the
preferred link has been stable for 5 minutes. Change the order under Network > WAN priority.

## Signal quality

The Cellular page shows RSRP and RSRQ. RSRP better than -100 dBm is good; worse than -115 dBm
is unreliable. If the signal is weak, mount the gateway higher, or use the external antenna kit
with a 5 m cable to put the antennas on a wall or roof. Firmware 4.2.1 reconnects in under 60
seconds after a network loss.
"""

_MODBUS = """\
# Modbus integration

EdgeGateways can poll existing equipment over Modbus and send the values to Acme Pulse
alongside sensor readings. A gateway polls up to 32 Modbus devices.

## Wiring Modbus RTU

Connect the RS-485 bus to the gateway's terminal block: A+ to A+, B- to B- and GND to the
shield ground at one end only. Terminate both ends of the bus with 120 ohm. The default serial
settings are 9600 baud, 8 data bits, no parity, 1 stop bit (8N1); change them per bus under
Devices > gateway > Modbus > Serial.

## Modbus TCP

For Modbus TCP devices, the gateway must reach the device on TCP 502 from its WAN or LAN port.
Enter the device's IP address and unit ID.

## Adding a device and its registers

1. Go to Devices > Add Modbus device and choose the gateway.
2. Enter the unit ID (1-247) and, for TCP, the IP address.
3. Add registers: address, function code (03 holding or 04 input registers), data type and
   scaling. Data types are int16, uint16, int32, uint32 and float32; for 32-bit values choose
   the word order (big-endian or little-endian word swap) as your device's manual says.
4. Set the poll interval. The minimum is 5 seconds; 60 seconds is a good default.

## Scaling

Many devices store values as integers with an implied decimal. Pulse applies value = raw x
scale + offset. A flow in tenths of cubic meters per hour needs a scale of 0.1. Register
addresses like 40012 mean holding register 12 in the 4xxxx convention; enter 12 with function
code 03 unless your device documentation uses zero-based addresses, in which case enter 11.

```yaml
device: flow-controller-1
unit_id: 3
registers:
  - name: flow
    address: 12
    function: 3
    type: uint16
    scale: 0.1
    unit: m3/h
  - name: totalizer
    address: 20
    function: 3
    type: uint32
    word_order: big
    unit: m3
```

## Troubleshooting

- Timeouts on every register: check A/B wiring (swapping them is the most common mistake) and
  the baud rate.
- Values off by a factor of 10, 100 or 1000: fix the scale.
- Nonsense 32-bit values: switch the word order.
- Gateway firmware before 4.2.1 leaks memory when polling more than 10 devices; update.
"""

_WEBHOOKS = """\
# Webhooks and integrations

Webhooks send Acme Pulse events to your own systems as HTTP POST requests. They are available
on Professional and Enterprise.

## Events

- `alert.fired` and `alert.resolved`
- `alert.acknowledged`
- `device.offline` and `device.online`
- `device.battery_low`

## Setting up a webhook

1. Go to Settings > Integrations > Webhooks > New webhook.
2. Enter an HTTPS URL. Plain HTTP is not accepted.
3. Choose the events.
4. Copy the signing secret, which starts with `whsec_`.

## Payload

Events are sent as JSON. Alerts that fire together within 10 seconds are batched, with at most
100 alerts per request since release 26.1. Requests are at most 256 KB.

```json
{
  "type": "alert.fired",
  "id": "evt_01HN8Z4K2Q",
  "created_at": "2026-01-07T14:03:11Z",
  "data": {
    "rule": "Freezer above -15 °C",
    "severity": "critical",
    "site": "Cold Room 3",
    "sensor": "TP1-24C-44120",
    "value": -12.4,
    "unit": "°C"
  }
}
```

## Verifying signatures

Each request has an `X-Pulse-Signature` header: `t=timestamp,v1=signature`, where the signature
is an HMAC-SHA256 of `timestamp.body` with your signing secret, hex encoded. Reject requests
whose timestamp is more than 5 minutes old.

## Retries

Respond with any 2xx status within 10 seconds. Otherwise Acme Pulse retries with exponential
backoff (1 minute, 5 minutes, 30 minutes, then hourly) for up to 24 hours. The delivery log
under the webhook shows every attempt with the status code. A webhook that fails for 24 hours
straight is disabled and the owner gets an email.

## Built-in integrations

- Slack and Microsoft Teams: notification channels for alert rules.
- PagerDuty: Events API v2.
- ServiceNow and Maximo: create work orders from alerts (Enterprise). Configure under Settings >
  Integrations.
"""

_ESCALATION = """\
# Internal escalation playbook

INTERNAL: support and exec only. Do not share with customers or paste into cases.

## Severity levels

| Severity | Definition | First response | Updates |
|---|---|---|---|
| Sev1 | Platform outage, data loss or a strategic account down | 15 min, 24/7 | every 30 min |
| Sev2 | One customer site down or a major function broken | 1 hour | every 2 hours |
| Sev3 | Degraded function with a workaround | 1 business day | daily |
| Sev4 | Question or cosmetic issue | 2 business days | as needed |

## Sev1 and Sev2: what to do

1. Page the on-call engineer in PagerDuty (service "Pulse Platform"). Do not rely on Slack.
2. Open an incident channel named `#inc-YYYYMMDD-short-name` and post the case ID.
3. The incident commander is the support team lead (Judy Alvarez) in business hours and the
   on-call engineer outside them.
4. For Sev1, update the status page within 30 minutes: status.pulse.acmecorp.com.
5. For strategic accounts, tell the account owner and the CSM (Priya Raman) within 1 hour.

## Escalating to engineering

Post in #engineering with this template and link the case:

```text
Case: CS-XXXX  Account: <name> (tier)  Severity: SevN
Impact: <what the customer cannot do, how many sites/devices>
Firmware: gateway x.y.z / sensor x.y.z
Repro: <steps or "not reproduced">
Diag bundle: <ID from acmectl diag --upload>
```

Engineering commits to a first look within 4 business hours for Sev3 escalations.

## Service credits

- The support lead may approve credits up to 10 % of the monthly fee.
- Above 10 %, or any credit for a strategic account, needs the CFO (Frank Castellano).
- Never offer credits in writing before approval.

## What not to say

- Do not promise fix dates; promise the date of the next update instead.
- Do not name other customers affected by the same issue.
- Do not confirm security incidents; route any suspected breach to security@acmecorp.com and
  the CEO immediately.

## Known issues (internal)

- KI-212: gateways behind Zscaler with SSL inspection drop MQTT every 4 hours. Workaround:
  bypass rule for *.pulse.acmecorp.com.
- KI-219: HumiTrack H2 from November 2025 batches fail to pair on gateway firmware older than
  4.2.1. Fix: update the gateway.
- KI-224: CSV export shows UTC timestamps for sites in other time zones. Fixed in web 26.1.4.

## Postmortems

Every Sev1 and Sev2 gets a blameless postmortem in the wiki within 5 business days, with owners
and dates for action items. Share a customer-facing summary only after the VP of Engineering
approves it.
"""

_DISCOUNTS = """\
# Pricing and discount policy

INTERNAL: sales and exec only. Do not share with customers, partners or in quotes.

## List prices (USD)

- Pulse Starter: $3 per sensor per month, billed annually ($36 per year).
- Pulse Professional: $5 per sensor per month, billed annually ($60 per year).
- Pulse Enterprise: $8 per sensor per month, billed annually ($96 per year), 250-sensor
  minimum.
- EdgeGateway G2 $1,290; G2 Rugged $1,890; Lite $690.
- VibeSense V3 $349; ThermoPoint T1 $129; HumiTrack H2 $159; PressureLine P2 $289;
  FlowMeter F4 $1,150; PowerTap E1 $219; AirGuard Q1 $249.
- Premium Support: $4,800 per site per year.

## Discount authority

| Discount on the total deal | Who approves |
|---|---|
| Up to 10 % | Account Executive |
| Up to 20 % | VP of Sales (Heidi Brandt) |
| Up to 35 % | CFO (Frank Castellano) |
| Above 35 % | CEO |

- A three-year term with annual prepayment allows up to 5 additional points, within the same
  approval levels.
- Hardware discounts are capped at 15 % regardless of approver: hardware margin must stay
  above 45 %.
- Premium Support is never discounted more than 20 %.

## Deal desk process

Post requests in #deal-desk with: account, products and quantities, list price, requested
discount, competitor and their price, term and payment terms. Approvals are valid for 30 days.
No extra discounts in the last 5 business days of a quarter without the CFO.

## Pilots

Standard pilot: up to 20 sensors and one gateway, free for 60 days, with a success plan signed
by the customer before shipping. Hardware is returned or bought at 50 % off list at the end.

## Non-standard terms

- Payment terms: net-30 standard. Net-45 with VP of Sales approval, net-60 only above $100k ARR
  and with CFO approval.
- Liability cap: 12 months of fees. Up to 24 months for data-breach claims only; never
  uncapped.
- Enterprise minimum of 250 sensors can be waived for the first year only, with VP of Sales
  approval.

## Competitor guidance

Do not match competitor hardware prices. Compare three-year total cost: subscription, hardware,
battery life and installation time. Sensaphone and similar vendors charge per gateway plus data
and have shorter battery life at 10-minute intervals.
"""

_SSO = """\
# Single sign-on (SAML and OIDC)

Acme Pulse supports single sign-on with SAML 2.0 on Professional and Enterprise, and OpenID
Connect (OIDC) on Enterprise. Only Owners can configure SSO, under Settings > Security >
Single sign-on.

## Values for your identity provider

- ACS (reply) URL: `https://pulse.acmecorp.com/sso/saml/acs`
- Entity ID (audience): `https://pulse.acmecorp.com/sso/saml/metadata/<org-id>`; your org ID is
  shown on the SSO settings page, for example `org_7f3k2m`.
- NameID format: emailAddress.
- Required attributes: `email`, `firstName`, `lastName`. Optional: `groups`.
- OIDC redirect URI: `https://pulse.acmecorp.com/sso/oidc/callback`, scopes `openid email
  profile`.

## Okta

1. In Okta, create a SAML 2.0 app integration named Acme Pulse.
2. Set Single sign-on URL to the ACS URL and Audience URI to the entity ID above.
3. Add attribute statements email = user.email, firstName = user.firstName, lastName =
   user.lastName, and a group attribute statement groups matching your Pulse groups.
4. Copy the metadata URL from the Sign On tab and paste it into Acme Pulse.

## Microsoft Entra ID (Azure AD)

1. Create an Enterprise application (non-gallery) and choose SAML.
2. Enter the entity ID as Identifier and the ACS URL as Reply URL.
3. Under Attributes and claims, add claims named exactly `email`, `firstName` and
   `lastName`. Entra ID uses long claim names by default
   (http://schemas.xmlsoap.org/...); Pulse ignores those, which causes a login loop.
4. Download the Federation Metadata XML and upload it to Acme Pulse.

## Testing and enforcing

Click Test SSO before enforcing. When SSO is enforced, users sign in only through your
identity provider, except Owners, who keep a password login as a break-glass account. Keep
at least one Owner with 2FA enabled.

## Provisioning

- Just-in-time provisioning creates users on first sign-in with the default role you choose
  (Viewer unless you change it).
- Group mapping assigns roles from the `groups` attribute, for example `pulse-admins` to Admin.
- SCIM 2.0 (Enterprise) creates, updates and deactivates users automatically. Endpoint:
  `https://api.pulse.acmecorp.com/scim/v2`, authenticated with a SCIM token from the SSO page.

## Certificates

Pulse warns Owners by email 30 days before your identity provider's signing certificate
expires. Upload the new metadata before the old certificate expires to avoid a lockout.

## Troubleshooting

- Login loop: attribute names do not match; check `email` exactly.
- "Clock skew" error: the identity provider's clock is more than 3 minutes off.
- "User not assigned": assign the user or their group to the app in your identity provider.
"""

_RETENTION = """\
# Data retention

This article explains how long Acme Pulse keeps your data, how to export it and what happens
when a subscription ends.

## Raw readings by plan

- Pulse Starter: 30 days.
- Pulse Professional: 13 months.
- Pulse Enterprise: 36 months. Extended retention up to 7 years is available as an add-on.

Retention is counted from the time of the reading. Older readings are deleted in a daily job.

## Rollups

Acme Pulse also stores aggregates: 1-minute and 1-hour minimum, maximum and average for every
sensor. Hourly rollups are kept for the whole life of the subscription on every plan, so
long-term trend charts keep working after the raw data has expired. Dashboards automatically
use rollups for time ranges longer than 7 days.

## Other data

- Alert history: 13 months on all plans.
- Audit log: 1 year on Professional, 3 years on Enterprise.
- Calibration records: for the life of the subscription.
- Deleted devices: their readings remain until normal retention expires, unless an Owner
  chooses Purge data when deleting.

## Exporting data

- CSV export from any chart or sensor: up to 31 days per download.
- API: `/v2/telemetry` and `/v2/telemetry/batch` (see "API tokens").
- Bulk export (Enterprise): daily Parquet files delivered to your Amazon S3 bucket or Azure
  Blob container, configured under Settings > Data > Bulk export.

## Data residency

Organizations are hosted in the US (AWS us-east-2, Ohio) or the EU (AWS eu-central-1,
Frankfurt). The region is chosen at signup and cannot be changed later without a migration
project.

## When a subscription ends

1. The organization becomes read-only for 30 days. You can still sign in and export.
2. After 30 days, all data is deleted within 60 days.
3. Backups are purged within 90 days after the end of the subscription.

An Owner can ask for earlier deletion and a deletion certificate through support.
"""

_BILLING = """\
# Billing FAQ

Answers to the most common questions about plans, invoices and payments.

## How is Acme Pulse priced?

Per active sensor per month, billed annually in advance: Starter $3, Professional $5 and
Enterprise $8 per sensor per month. Enterprise has a minimum of 250 sensors. Gateways and
sensors are bought once; the subscription covers the software, data and standard support.

## Can we pay monthly?

Starter and Professional can be billed monthly at a 20 % higher price. Enterprise is billed
annually.

## When are invoices issued?

On the 1st of the month of your subscription start and each renewal. Payment terms are net 30.
Invoices are emailed to the billing contact and available under Settings > Billing > Invoices
(Owner and Billing roles).

## How can we pay?

Credit card, ACH transfer or wire transfer in USD. Canadian customers can be invoiced in CAD.
Add your PO number under Settings > Billing so it appears on every invoice.

## What happens when we add sensors mid-term?

New sensors are billed prorated to the day until your next renewal, on a separate invoice on
the 1st of the following month.

## What happens when we remove sensors?

Removed or decommissioned sensors stay billed until your renewal date; the renewal invoice
counts only active sensors. A sensor is active if it sent data in the last 30 days before the
renewal date.

## Can we change plans?

Upgrades take effect immediately and are prorated. Downgrades take effect at renewal. Moving
from Professional to Starter reduces raw data retention to 30 days, so export what you need
first.

## What if a payment fails?

We retry card payments 3 times over 10 days and email the billing contact each time. Accounts
more than 30 days overdue become read-only: data keeps being collected, but dashboards and
alerts are limited until payment.

## Who do I contact about an invoice?

Open a case with the invoice number (for example INV-2025-10432) or email
billing@acmecorp.com. We answer billing questions within 2 business days.
"""

_WARRANTY = """\
# Warranty and RMA

## Warranty terms

- Sensors and the EdgeGateway G2 and Lite: 2 years from the ship date.
- EdgeGateway G2 Rugged: 3 years from the ship date.
- Batteries: covered only if dead on arrival; they are consumables afterwards.
- Accessories: 1 year.

The warranty covers defects in materials and workmanship. It does not cover physical damage,
water ingress on devices that are not rated for it, damage from wrong wiring or power, or
devices whose housing was opened beyond the battery compartment.

## Requesting an RMA

1. Open a support case with the serial numbers, a description of the fault and, for gateways,
   a diagnostics bundle ID (`acmectl diag --upload`).
2. Support troubleshoots with you first; many issues are fixed remotely.
3. If the device must come back, support issues an RMA number (format RMA-2xxxxx) within 1
   business day, with a prepaid return label for devices under warranty.
4. Ship the device within 30 days. Remove the battery first: lithium batteries must not be
   shipped loose with the RMA. Write the RMA number on the outside of the box.

Return address: Acme Corp RMA Department, 2200 Foundry Way, Suite 300, Oakland, CA 94607, USA.

## Replacement

- Standard: we repair or replace within 10 business days of receiving the device.
- Advance replacement: for Enterprise and Premium Support customers, the replacement ships
  within 1 business day, before you return the faulty unit. Unreturned units are invoiced at
  list price after 30 days.
- Dead on arrival (within 30 days of delivery): advance replacement for every customer.

Replacement sensors must be paired again; their history can be merged with the old sensor
under Devices > sensor > Replace.

## Out of warranty

Out-of-warranty repairs cost a flat 40 % of the current list price, if the device can be
repaired. We quote before any work starts.
"""

_HTML_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/helpcenter.css">
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag() {{ dataLayer.push(arguments); }}
  gtag("js", new Date());
  gtag("config", "G-ACMEPULSE1");
  document.addEventListener("DOMContentLoaded", function () {{ trackPageView("helpcenter"); }});
</script>
</head>
<body>
<nav class="helpcenter-nav">
  <a href="/">Acme Pulse Help Center</a>
  <ul>
    <li><a href="/getting-started">Getting started</a></li>
    <li><a href="/devices">Devices</a></li>
    <li><a href="/security">Security and SSO</a></li>
    <li><a href="/billing">Billing</a></li>
    <li><a href="/contact">Contact support</a></li>
  </ul>
  <form action="/search"><input type="search" name="q" placeholder="Search articles"></form>
</nav>
<main>
<article>
{body}
</article>
</main>
<footer>
  <p>Was this article helpful? <button>Yes</button> <button>No</button></p>
  <p>© 2026 Acme Corp. All rights reserved.</p>
</footer>
<script src="/static/helpcenter.js" defer></script>
</body>
</html>
"""

_ARTICLES = (
    ("getting-started-with-pulse.md", _GETTING_STARTED),
    ("pairing-sensors.md", _PAIRING),
    ("alert-rules.md", _ALERT_RULES),
    ("api-tokens.md", _API_TOKENS),
    ("firmware-updates.md", _FIRMWARE),
    ("troubleshooting-connectivity.md", _CONNECTIVITY),
    ("network-requirements.md", _NETWORK),
    ("user-roles-and-permissions.md", _ROLES),
    ("battery-life-and-replacement.md", _BATTERY),
    ("lte-modem-setup.md", _LTE),
    ("modbus-integration.md", _MODBUS),
    ("webhooks-and-integrations.md", _WEBHOOKS),
    ("internal-escalation-playbook.md", _ESCALATION),
    ("pricing-discount-policy.md", _DISCOUNTS),
    ("sso-setup.html", _SSO),
    ("data-retention.html", _RETENTION),
    ("billing-faq.html", _BILLING),
    ("warranty-and-rma.html", _WARRANTY),
    ("gateway-installation-guide.pdf", _GATEWAY_INSTALLATION),
    ("sensor-calibration.pdf", _CALIBRATION),
)

# ----------------------------------------------------------------------------------- marketing

_BRAND_VOICE = """\
# Acme Corp brand voice guide

Version 3, January 2026. Owner: Olivia Park (marketing). Applies to emails, the website, social
posts, release notes, sales decks and anything else a customer reads.

## Who we sound like

We sound like a senior reliability engineer who is also a good teacher: calm, precise and
practical. Our readers run plants, warehouses and pump stations. They are busy, skeptical of
hype and they know their machines better than we do. We respect that.

## Tone

- **Plainspoken.** Short sentences. One idea per sentence. If a sentence needs a comma to
  breathe twice, split it.
- **Specific.** Numbers beat adjectives. "Five-year battery at 10-minute reports" beats "long
  battery life". "Found a failing bearing 3 weeks before it seized" beats "predictive insights".
- **Helpful first.** Every email should teach something useful even to someone who never buys
  from us.
- **Confident, not loud.** No exclamation marks in subject lines, and at most one in a body.
- **Warm, not cute.** A little humor is fine; puns about "good vibrations" are not.

## Words we use

- uptime, downtime, readings, alerts, plant, site, line, shift, maintenance team
- "sensor", "gateway", "Acme Pulse" (never just "the platform" on first mention)
- "you" and "your team"; "we" for Acme

## Words we avoid

| Avoid | Use instead |
|---|---|
| revolutionary, game-changing, cutting-edge | say what it does |
| leverage, utilize | use |
| seamless, effortless | "takes 10 minutes", "no tools needed" |
| IoT-enabled digital transformation | monitoring your machines |
| synergy, best-in-class, world-class | drop it |
| users (in marketing copy) | your team, technicians, engineers |

## Product names

Write product names exactly, every time: Acme Pulse, EdgeGateway G2, EdgeGateway G2 Rugged,
EdgeGateway Lite, VibeSense V3, ThermoPoint T1, HumiTrack H2, PressureLine P2, FlowMeter F4,
PowerTap E1, AirGuard Q1. Never "Edge Gateway", "Vibesense" or "Pulse platform". Plans are
Pulse Starter, Pulse Professional and Pulse Enterprise.

## Style rules

- American English. Sentence case for headlines and subject lines.
- Numerals for all numbers except at the start of a sentence.
- Oxford comma.
- Units with a space: 10 minutes, -15 °C, 250 sensors.
- Dates as "January 13, 2026" in prose.
- Subject lines under 60 characters, with the benefit up front.

## Sign-off

Campaign emails end with:

> Questions? Just reply to this email, a real person on our team reads every reply.
>
> The Acme Pulse team

Emails from the CEO end with "Alice Nakamura, CEO, Acme Corp". Never "Cheers" or "Best
regards" in campaigns.

## Examples

**Don't:** "Unlock revolutionary predictive maintenance with our seamless, AI-powered IoT
platform!"

**Do:** "VibeSense V3 spots a failing bearing weeks before it seizes. Mount it in 10 minutes,
then forget about it for five years."

**Don't:** "We're excited to announce game-changing firmware!"

**Do:** "Firmware 4.2 lets you update 10 % of your gateways first and the rest a day later."
"""

_SIGN_OFF = """
Questions? Just reply to this email, a real person on our team reads every reply.

The Acme Pulse team
"""

_CAMPAIGNS = (
    (
        "2025-03-11-vibesense-v3-launch.md",
        """\
Subject: VibeSense V3: twice the battery life, same price
Segment: All customers and open opportunities
Sent: 2025-03-11

Hi {{first_name}},

VibeSense V3 is available today. It measures vibration on three axes up to 6 kHz, plus surface
temperature, and it runs for five years on one battery at the default 10-minute interval. That
is twice as long as VibeSense V2.

What changed:

- A new low-power radio mode that uses 60 % less energy per reading.
- A magnetic base and a stud mount in the box, so you can try a location before you drill.
- ISO 10816 zones built into Acme Pulse alerts: pick your machine class and you are done.

The price stays at $349. V2 sensors keep working and keep their support.

See how one packaging plant found a misaligned motor coupling in the first week:
https://acmecorp.com/stories/vibesense-v3
"""
        + _SIGN_OFF,
    ),
    (
        "2025-04-22-pump-webinar.md",
        """\
Subject: Predictive maintenance for pumps in 30 minutes
Segment: Prospects in manufacturing and utilities
Sent: 2025-04-22

Hi {{first_name}},

Pumps fail in a few predictable ways: bearings, cavitation, misalignment and seal leaks. Most of
them show up in vibration and temperature weeks before the pump stops.

Join Mike Sullivan, our sales engineer and a former reliability engineer at a water utility,
for a 30-minute webinar on May 6 at 10:00 PT. You will learn:

- Where to mount a sensor on a centrifugal pump, and where not to.
- Which three readings tell you most about pump health.
- How to set alert thresholds without drowning your team in notifications.

No slides about the future of industry. Just pumps.

Register: https://acmecorp.com/webinars/pumps
"""
        + _SIGN_OFF,
    ),
    (
        "2025-06-10-cold-chain-checklist.md",
        """\
Subject: Your cold-chain audit checklist for this summer
Segment: Food & Beverage and Pharmaceuticals customers
Sent: 2025-06-10

Hi {{first_name}},

Summer is audit season, and auditors ask the same four questions every year. Here is how to
answer them with Acme Pulse:

1. Are your sensors calibrated? Download the calibration records from each ThermoPoint T1
   under Devices > Documents. Calibrations older than 12 months show up in orange.
2. What happened during excursions? The alert history shows every excursion, who acknowledged
   it and when.
3. Can you show continuous records? Export 31 days at a time as CSV, or use bulk export.
4. Who changed what? The audit log records every calibration and rule change.

Need to calibrate before your audit? Our two-point calibration guide takes about 20 minutes per
probe: https://help.acmecorp.com/sensor-calibration
"""
        + _SIGN_OFF,
    ),
    (
        "2025-07-15-enterprise-sso-scim.md",
        """\
Subject: Pulse Enterprise now includes SCIM provisioning
Segment: Pulse Professional customers with more than 100 sensors
Sent: 2025-07-15

Hi {{first_name}},

When someone leaves your company, their access to Acme Pulse should end the same day. With SCIM
in Pulse Enterprise, it does: deactivate them in Okta or Microsoft Entra ID and Acme Pulse
removes their access and revokes their API tokens within minutes.

Pulse Enterprise also gives you:

- 36 months of raw data instead of 13.
- Daily bulk export to your S3 bucket or Azure Blob container.
- Unlimited users and 2,000 alert rules.

If you have more than 250 sensors, Enterprise often costs less than you think. Reply to this
email and your account manager will send you a side-by-side quote.
"""
        + _SIGN_OFF,
    ),
    (
        "2025-09-09-pack-expo.md",
        """\
Subject: See us at Pack Expo Las Vegas, booth N-1234
Segment: Prospects and customers in Food & Beverage and Logistics
Sent: 2025-09-09

Hi {{first_name}},

We will be at Pack Expo Las Vegas from September 29 to October 1, booth N-1234 in the North
Hall.

At the booth you can:

- Watch a VibeSense V3 pick up a loose bearing on our demo conveyor in real time.
- Try the ThermoPoint T1 calibration workflow yourself.
- Get your free expo pass with code ACME25.

Want 20 minutes with an engineer instead of a booth visit? Book a slot:
https://acmecorp.com/packexpo
"""
        + _SIGN_OFF,
    ),
    (
        "2025-10-14-g2-rugged.md",
        """\
Subject: EdgeGateway G2 Rugged: built for -40 °C
Segment: Oil & Gas, Mining and Utilities accounts
Sent: 2025-10-14

Hi {{first_name}},

Some of your sites are not friendly to electronics. The EdgeGateway G2 Rugged is made for them:

- IP67 housing with M12 connectors, for outdoor, washdown and freezer areas.
- Rated from -40 to 70 °C.
- PoE or 18-36 V DC field power, and the LTE modem module for sites without a network.
- A 3-year warranty, one year longer than the standard gateway.

It runs the same software as the EdgeGateway G2, so your sensors, dashboards and alerts work
without changes. One pipeline operator in North Dakota has run 14 of them through two winters.

List price is $1,890. Ask your account manager about trading in older outdoor enclosures.
"""
        + _SIGN_OFF,
    ),
    (
        "2025-11-18-firmware-4-2.md",
        """\
Subject: Firmware 4.2: update your gateways in stages
Segment: Admins and owners of all organizations
Sent: 2025-11-18

Hi {{first_name}},

Gateway firmware 4.2 starts rolling out on November 24. Two changes matter most:

- **Staged updates.** Update 10 % of your gateways first; the rest follow 24 hours later if
  nothing looks wrong. Turn it on under Settings > Sites > Firmware.
- **A 7-day buffer.** If a gateway loses its connection, it now keeps 7 days of readings
  instead of 3 and uploads them when it is back.

Updates install in each site's maintenance window, Sunday 02:00 to 05:00 local time by default.
Please check that your sites have the right time zone, so updates never run during a shift.

Release notes: https://help.acmecorp.com/firmware-updates
"""
        + _SIGN_OFF,
    ),
    (
        "2026-01-02-year-in-review.md",
        """\
Subject: Your 2025 in Acme Pulse
Segment: All customers
Sent: 2026-01-02

Hi {{first_name}},

Thank you for an excellent year. Across all Acme Pulse customers in 2025:

- 61,000 sensors sent 9.4 billion readings.
- 2,300 alerts were acknowledged within 10 minutes of firing.
- Gateways were connected 99.93 % of the time.

Your own numbers are in your organization's 2025 report under Reports > Year in review.

Coming in the first half of 2026: an export API for large data sets, SCIM group sync and
better alert grouping for sites with many sensors. As always, reply and tell us what you would
like to see next.

Alice Nakamura, CEO, Acme Corp
""",
    ),
)

_README = """\
# Acme Corp demo data

Synthetic data for the Bastion demo: Acme Corp sells industrial IoT sensors, the EdgeGateway
gateways and Acme Pulse, a SaaS monitoring platform. Everything here is fictional and was
generated by `bastion.demo.company.generate_company`; the same seed gives the same files.
Phone numbers use the 555-01xx range reserved for fiction.

- `crm/accounts.csv`, `crm/contacts.csv`: customer accounts and their contacts.
- `support/customers.jsonl`, `support/cases.jsonl`: the support desk's customers and cases.
  Many customers are CRM contacts written differently (case, tags, phone format, typos).
- `erp.sqlite`: `products` and `orders` tables.
- `kb/`: help-center articles as Markdown, HTML and PDF; `kb/_acl.json` restricts two of them.
- `marketing/`: the brand voice guide and past campaign emails (marketing and exec only).
- `slack/`: a Slack workspace export (users, public channels, private groups, daily files).
- `truth/identity.json`: which records belong to the same person, for testing identity
  resolution. Every person is listed, including those with a single record.
"""
