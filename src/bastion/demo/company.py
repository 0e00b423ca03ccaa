"""Acme Corp, the demo company: CRM, support desk, ERP, knowledge base, marketing and Slack.

Connectors, grounded answers and identity resolution only show something on believable data, and
tests need the same data on every run, so everything comes from one seed and a fixed date.

The written content (names, catalogue, templates, articles, Slack scripts) lives in data/ and is
read by content.py. This module draws the people, accounts, orders and cases and writes the CRM,
ERP and support desk; slack.py and documents.py write the rest.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import sqlite3
import tempfile
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from faker import Faker

from bastion.demo.content import (
    ACCOUNT_NOTES,
    ACCOUNT_PREFIXES,
    ALL_AREA_CODES,
    ARTICLES,
    CAMPAIGNS,
    CASE_CLOSERS,
    CASE_EMAIL_LINES,
    CASE_PHONE_LINES,
    CASE_PROBLEMS,
    CONTACT_NOTES,
    EMPLOYEES,
    ERP_SCHEMA,
    FREEMAIL,
    INDUSTRIES,
    JOB_TITLES,
    LEGAL_SUFFIXES,
    MONTHS,
    ORDER_MIX,
    PHONE_STYLES,
    PRODUCTS,
    QUANTITIES,
    README,
    REGION_WEIGHTS,
    REGIONS,
    SERIAL_PREFIX,
)
from bastion.demo.documents import write_kb, write_marketing
from bastion.demo.files import write_csv, write_json, write_jsonl, write_text
from bastion.demo.records import (
    BASE_DATE,
    COMPANY_NAME,
    EMAIL_DOMAIN,
    Account,
    Case,
    Contact,
    Customer,
    Employee,
    Order,
    Phone,
)
from bastion.demo.slack import SlackExport, slack_id
from bastion.demo.templates import case_context, fill, serial_tail

MAX_SCALE = 10.0  # beyond this the fictional 555-01xx phone numbers run out
_SKU_SENSOR = {p.sku: p.name for p in PRODUCTS if p.category == "sensor"}


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


class _Company:
    def __init__(self, seed: int, scale: float) -> None:
        self.seed = seed
        self.scale = scale
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.phones: set[Phone] = set()
        self.emails: set[str] = set()
        self.names: set[str] = set()
        rng = self._rng("employees")
        self.employees = [
            Employee(
                username=username,
                real_name=real_name,
                title=title,
                team=team,
                slack_id=slack_id(rng, "U"),
                phone=None if team == "bot" else self._new_phone(rng, ("510",)),
            )
            for username, real_name, title, team in EMPLOYEES
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
        self.orders = self._orders()
        self.customers = self._customers()
        self.cases = self._cases()
        slack = SlackExport(
            self._rng("slack"),
            self._count,
            employees=self.employees,
            accounts=self.accounts,
            contacts=self.contacts,
            orders=self.orders,
            cases=self.cases,
        )
        channels, messages = slack.write(root / "slack")
        self._write_crm(root / "crm")
        self._write_support(root / "support")
        self._write_erp(root / "erp.sqlite")
        self._write_truth(root / "truth" / "identity.json")
        write_kb(root / "kb")
        write_marketing(root / "marketing")
        write_text(root / "README.md", README)
        return CompanySummary(
            accounts=len(self.accounts),
            contacts=len(self.contacts),
            support_customers=len(self.customers),
            cases=len(self.cases),
            products=len(PRODUCTS),
            orders=len(self.orders),
            articles=len(ARTICLES),
            campaigns=len(CAMPAIGNS),
            slack_messages=messages,
            slack_channels=channels,
        )

    def _new_phone(self, rng: random.Random, area_codes: Sequence[str]) -> Phone:
        for attempt in range(200):
            codes = area_codes if attempt < 30 else ALL_AREA_CODES  # the region is full
            phone = Phone(rng.choice(codes), f"01{rng.randrange(100):02d}")
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

    def _accounts(self) -> list[Account]:
        rng = self._rng("accounts")
        prefixes = list(ACCOUNT_PREFIXES)
        rng.shuffle(prefixes)
        accounts: list[Account] = []
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
            industry = rng.choice(sorted(INDUSTRIES))
            noun = rng.choice(INDUSTRIES[industry])
            short = f"{prefix} {noun}"
            domain = f"{_slug(prefix)}{_slug(noun.split()[0])}.com"
            if short in taken or domain in taken:
                continue
            taken.update((short, domain))
            public_body = noun.endswith(("District", "Cooperative", "Authority"))
            suffix = "" if public_body else rng.choice(LEGAL_SUFFIXES)
            tier = rng.choices(("strategic", "growth", "smb"), (2, 4, 4))[0]
            low, high = revenue[tier]
            notes_t = rng.choice(
                [t for scope, t in ACCOUNT_NOTES if not scope or industry in scope]
            )
            notes = fill(rng, notes_t, _crm_context(rng))
            account = Account(
                account_id=f"A{len(accounts) + 1:03d}",
                name=short + suffix,
                short_name=short,
                domain=domain,
                industry=industry,
                region=rng.choices(list(REGION_WEIGHTS), list(REGION_WEIGHTS.values()))[0],
                tier=tier,
                owner=rng.choice(owners[tier]),
                revenue=rng.randrange(low * 10, high * 10) * 100_000,
                notes=notes,
            )
            accounts.append(account)
        return accounts

    def _contacts(self) -> list[Contact]:
        rng = self._rng("contacts")
        n = self._count(200)
        weight = {"strategic": 3, "growth": 2, "smb": 1}
        per_account = dict.fromkeys((a.account_id for a in self.accounts), 0)
        for account in self.accounts[:n]:  # everyone gets one before anyone gets a second
            per_account[account.account_id] = 1
        for _ in range(n - sum(per_account.values())):
            pick = rng.choices(self.accounts, [weight[a.tier] for a in self.accounts])[0]
            per_account[pick.account_id] += 1
        contacts: list[Contact] = []
        for account in self.accounts:
            for _ in range(per_account[account.account_id]):
                first, last = self._new_name()
                f, la = _ascii(first), _ascii(last)
                local = rng.choice(
                    (f"{f}.{la}", f"{f}.{la}", f"{f[0]}{la}", f"{f}{la[0]}", f"{f}_{la}")
                )
                phone = self._new_phone(rng, REGIONS[account.region])
                style = rng.randrange(len(PHONE_STYLES))
                phone_text = phone.format(style)
                if rng.random() < 0.06:
                    phone_text += f" ext. {rng.randrange(200, 480)}"
                contacts.append(
                    Contact(
                        contact_id=f"C{len(contacts) + 1:04d}",
                        account=account,
                        first=first,
                        last=last,
                        email=self._new_email(local, account.domain),
                        phone=phone,
                        phone_text=phone_text,
                        phone_style=style,
                        job_title=rng.choice(JOB_TITLES),
                        notes=rng.choice(CONTACT_NOTES),
                    )
                )
        return contacts

    def _write_crm(self, folder: Path) -> None:
        write_csv(
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
        write_csv(
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

    def _orders(self) -> list[Order]:
        rng = self._rng("orders")
        weight = {"strategic": 4, "growth": 2, "smb": 1}
        contact_weights = [weight[c.account.tier] for c in self.contacts]
        drafts: list[tuple[date, Contact, str, int, float, str]] = []
        for _ in range(self._count(400)):
            contact = rng.choices(self.contacts, contact_weights)[0]
            sku, _name, category, price, _description = rng.choices(
                PRODUCTS, [ORDER_MIX[p.category] for p in PRODUCTS]
            )[0]
            low, high = QUANTITIES[sku]
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
            Order(f"SO-{100_001 + i}", c.account, c, sku, qty, total, status, day)
            for i, (day, c, sku, qty, total, status) in enumerate(drafts)
        ]

    def _write_erp(self, path: Path) -> None:
        con = sqlite3.connect(path)
        try:
            with con:
                con.executescript(ERP_SCHEMA)
                con.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?)", PRODUCTS)
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

    def _customers(self) -> list[Customer]:
        rng = self._rng("customers")
        n = self._count(150)
        n_known = min(round(n * 0.7), len(self.contacts))
        n_twice = n_known // 20  # a few people opened a second profile with a personal address
        known = rng.sample(self.contacts, n_known - n_twice)
        twice = rng.sample(known, n_twice)
        rows: list[tuple[str, str, str, str, Account | None, str]] = []
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
                    phone.format(rng.randrange(len(PHONE_STYLES))),
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
                Customer(
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
        self, rng: random.Random, contact: Contact, *, personal: bool
    ) -> tuple[str, str, str, str, Account | None, str]:
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
        styles = [s for s in range(len(PHONE_STYLES)) if s != contact.phone_style]
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
    ) -> tuple[str, str, str, str, Account | None, str]:
        """Someone the CRM does not know: a new user at a customer, or at another company."""
        first, last = name
        f, la = _ascii(first), _ascii(last)
        account: Account | None = None
        if rng.random() < 0.6:
            account = rng.choice(self.accounts)
            company, domain, region = account.name, account.domain, account.region
        else:
            company = self.fake.company()
            domain = f"{_slug(company.split()[0].rstrip(','))}{rng.choice(('', 'corp', 'inc'))}.com"
            region = rng.choice(sorted(REGIONS))
        email = (
            self._personal_email(rng, first, last)
            if rng.random() < 0.2
            else self._new_email(rng.choice((f"{f}.{la}", f"{f[0]}{la}")), domain)
        )
        phone = self._new_phone(rng, REGIONS[region]).format(rng.randrange(len(PHONE_STYLES)))
        return f"{first} {last}", email, phone, company, account, ""

    def _personal_email(self, rng: random.Random, first: str, last: str) -> str:
        f, la = _ascii(first), _ascii(last)
        local = rng.choice((f"{f}{la}", f"{f}.{la}", f"{f[0]}{la}")) + str(rng.randrange(1, 99))
        return self._new_email(local, rng.choice(FREEMAIL))

    def _cases(self) -> list[Case]:
        rng = self._rng("cases")
        orders_by_account: dict[str, list[Order]] = {}
        for order in self.orders:
            orders_by_account.setdefault(order.account.account_id, []).append(order)
        customers = [c for c in self.customers if not c.person.startswith("slack:")]
        drafts: list[tuple[datetime, Customer, str, str, str, str, str]] = []
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
            problems = [p for p in CASE_PROBLEMS if orders or "{order}" not in "".join(p)]
            subject_t, *lines = rng.choice(problems)
            context = case_context(rng)
            if orders:
                # Prefer a sensor order, so "the sensors from order X" names what X delivered.
                order = rng.choice([o for o in orders if o.sku in _SKU_SENSOR] or orders)
                context.update(order=order.order_id, order_qty=str(order.quantity))
                if order.sku in _SKU_SENSOR:
                    sensor = _SKU_SENSOR[order.sku]
                    context.update(
                        sensor=sensor, serial=f"{SERIAL_PREFIX[sensor]}-{serial_tail(rng)}"
                    )
            if rng.random() < 0.35 and (customer.phone or customer.email):
                with_phone = customer.phone and (not customer.email or rng.random() < 0.6)
                context.update(phone=customer.phone, email=customer.email)
                lines.append(rng.choice(CASE_PHONE_LINES if with_phone else CASE_EMAIL_LINES))
            if rng.random() < 0.6:
                lines.append(rng.choice(CASE_CLOSERS))
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
                    fill(rng, subject_t, context),
                    " ".join(fill(rng, line, context) for line in lines),
                    status,
                    rng.choices(("low", "normal", "high", "urgent"), (25, 45, 22, 8))[0],
                    rng.choices(("dave", "judy", "priya", "bob"), (35, 25, 25, 15))[0],
                )
            )
        drafts.sort(key=lambda d: (d[0], d[1].customer_id))
        return [
            Case(f"CS-{5001 + i}", customer, subject, body, status, priority, created, assignee)
            for i, (created, customer, subject, body, status, priority, assignee) in enumerate(
                drafts
            )
        ]

    def _write_support(self, folder: Path) -> None:
        write_jsonl(
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
        write_jsonl(
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
        write_json(path, {"people": list(people.values())})

    # --------------------------------------------------------------------------------- Slack


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


def _company_variants(account: Account) -> tuple[str, ...]:
    return (account.short_name.upper(), f"{account.short_name}, Inc.", account.short_name + " Co")


def _crm_context(rng: random.Random) -> dict[str, str]:
    context = case_context(rng)
    context.update(
        month=rng.choice(MONTHS),
        year=str(rng.choice((2022, 2023, 2024))),
        plan=rng.choice(("Starter", "Professional", "Enterprise")),
        n_sites=str(rng.randrange(2, 14)),
        n_users=str(rng.choice((8, 15, 22, 40, 65, 120))),
    )
    return context
