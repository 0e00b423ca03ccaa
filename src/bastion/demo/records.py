"""Acme Corp's fixed facts and the records the generator makes: people, accounts, orders, cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from bastion.demo.content import PHONE_STYLES

COMPANY_NAME = "Acme Corp"
EMAIL_DOMAIN = "acmecorp.com"
BASE_DATE = date(2026, 1, 5)  # the Slack export starts here; CRM, ERP and cases lie before it


@dataclass(frozen=True)
class Employee:
    username: str
    real_name: str
    title: str
    team: str  # exec, sales, support, engineering, marketing or bot
    slack_id: str
    phone: Phone | None


@dataclass(frozen=True)
class Phone:
    area: str
    line: str  # 0100-0199: 555-0100..555-0199 is reserved for fiction, so no real person is hit

    def format(self, style: int) -> str:
        return PHONE_STYLES[style].format(a=self.area, x="555", n=self.line)


@dataclass(frozen=True)
class Account:
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
class Contact:
    contact_id: str
    account: Account
    first: str
    last: str
    email: str
    phone: Phone
    phone_text: str
    phone_style: int
    job_title: str
    notes: str


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    email: str
    phone: str
    company: str
    account: Account | None
    person: str  # identity key of the person's first record (a CRM contact, a Slack user, itself)


@dataclass(frozen=True)
class Order:
    order_id: str
    account: Account
    contact: Contact
    sku: str
    quantity: int
    total_usd: float
    status: str
    ordered_at: date


@dataclass(frozen=True)
class Case:
    case_id: str
    customer: Customer
    subject: str
    body: str
    status: str
    priority: str
    created_at: datetime
    assignee: str
