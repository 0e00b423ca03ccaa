"""A segment specification as parameterised SQL over the harmonized records (SQLAlchemy
Core: every value is a bound parameter, nothing is built from strings).

Members are people (identity-resolved contacts, `grounding_records.contact_id`). A person
is in the segment when some contact record of theirs, and the account, orders and cases
linked to it, match the filters; only records the asking person may read take part, on
every side of every relation, so a segment never reveals what the person could not read.
The canonical field names are the harmonized model's (DESIGN.md): the sources' `fields`
mapping in bastion.yaml puts each source's columns under them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    cast,
    column,
    exists,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.sql.selectable import NamedFromClause

from bastion.apps.segment.spec import CATEGORIES, Catalogue, SegmentSpec, Window, stem
from bastion.storage import Database
from bastion.storage.tables import GroundingRecord

RECORDS = GroundingRecord.__table__


class SegmentSources(BaseModel):
    """Which sources hold each canonical entity (`apps[].settings.sources`)."""

    accounts: str = Field("crm-accounts", description="Accounts (industry, region, tier, ...).")
    contacts: str = Field(
        "crm-contacts", description="Contacts, with the account they work at (`account`)."
    )
    orders: str = Field("erp-orders", description="Orders, naming the contact who placed them.")
    cases: str = Field("support-cases", description="Support cases (`customer_id`, status, ...).")
    case_contacts: str = Field(
        "support-customers", description="The contact records support cases point at."
    )


@dataclass(frozen=True)
class Member:
    contact_id: str
    name: str
    email: str | None


class SegmentQuery:
    """Segments over one tenant's records, as one person may see them."""

    def __init__(
        self, db: Database, sources: SegmentSources, tenant: str, readable: list[str]
    ) -> None:
        self.db = db
        self.sources = sources
        self.tenant = tenant
        self.readable = readable

    def _visible(self, r: NamedFromClause, *sources: str) -> ColumnElement[bool]:
        """Records of `sources` in the tenant that the person may read (any of their ACL
        entries in the record's ACL)."""
        if self.db.engine.dialect.name == "postgresql":
            entries = func.json_array_elements_text(r.c.acl).table_valued("value")
        else:
            entries = func.json_each(r.c.acl).table_valued("value")
        readable = exists(select(1).select_from(entries).where(column("value").in_(self.readable)))
        return and_(r.c.tenant_id == self.tenant, r.c.source.in_(sources), readable)

    @staticmethod
    def _text(r: NamedFromClause, field: str) -> ColumnElement[Any]:
        text: ColumnElement[Any] = r.c.fields[field].as_string()
        return text

    def _number(self, r: NamedFromClause, field: str) -> ColumnElement[Any]:
        # Numbers arrive as JSON numbers or as text (CSV): compare them as numbers.
        return cast(self._text(r, field), Float)

    def _day(self, r: NamedFromClause, field: str) -> ColumnElement[Any]:
        return func.substr(self._text(r, field), 1, 10)  # ISO dates and timestamps

    def _any_word(self, r: NamedFromClause, fields: list[str], words: list[str]) -> Any:
        text: ColumnElement[Any] = func.lower(func.coalesce(self._text(r, fields[0]), ""))
        for field in fields[1:]:
            text = text + " " + func.lower(func.coalesce(self._text(r, field), ""))
        return or_(*(text.contains(stem(w), autoescape=True) for w in words))

    def _window(
        self, r: NamedFromClause, field: str, window: Window, today: date
    ) -> list[ColumnElement[bool]]:
        since, until = window.bounds(today)
        conditions = []
        if since is not None:
            conditions.append(self._day(r, field) >= since.isoformat())
        if until is not None:
            conditions.append(self._day(r, field) <= until.isoformat())
        return conditions

    def _members(self, spec: SegmentSpec, today: date) -> Select[Any]:
        """The contact ids (people) in the segment."""
        s = self.sources
        person = RECORDS.alias("person")
        contact = RECORDS.alias("contact")
        own: list[ColumnElement[bool]] = [self._visible(contact, s.contacts)]
        if spec.contact.job_title:
            own.append(self._any_word(contact, ["job_title"], spec.contact.job_title))
        if spec.contact.has_email is not None:
            has = func.coalesce(self._text(contact, "email"), "") != ""
            own.append(has if spec.contact.has_email else not_(has))
        if not spec.account.empty():
            own.append(exists(self._account_matches(contact, spec)))
        if spec.orders is not None:
            placed = exists(self._orders_of(contact, spec, today))
            own.append(placed if spec.orders.has else not_(placed))
        person_conditions: list[ColumnElement[bool]] = [
            exists(
                select(1)
                .select_from(contact)
                .where(contact.c.contact_id == person.c.contact_id, *own)
            )
        ]
        if spec.cases is not None:
            opened = exists(self._cases_of(person, spec, today))
            person_conditions.append(opened if spec.cases.has else not_(opened))
        return (
            select(person.c.contact_id)
            .where(
                self._visible(person, s.contacts, s.case_contacts),
                person.c.contact_id.is_not(None),
                *person_conditions,
            )
            .distinct()
        )

    def _account_matches(self, contact: NamedFromClause, spec: SegmentSpec) -> Select[Any]:
        a = spec.account
        account = RECORDS.alias("account")
        conditions = [
            self._visible(account, self.sources.accounts),
            account.c.source_id == self._text(contact, "account"),
        ]
        for field in ("industry", "region", "tier"):
            if values := getattr(a, field):
                conditions.append(self._text(account, field).in_(values))
        if a.min_revenue_usd is not None:
            conditions.append(self._number(account, "annual_revenue_usd") >= a.min_revenue_usd)
        if a.max_revenue_usd is not None:
            conditions.append(self._number(account, "annual_revenue_usd") <= a.max_revenue_usd)
        return select(1).select_from(account).where(*conditions)

    def _orders_of(self, contact: NamedFromClause, spec: SegmentSpec, today: date) -> Select[Any]:
        o = spec.orders
        assert o is not None
        order = RECORDS.alias("ord")
        conditions = [
            self._visible(order, self.sources.orders),
            self._text(order, "contact_id") == contact.c.source_id,
            *self._window(order, "ordered_at", o, today),
        ]
        if o.product:
            conditions.append(self._text(order, "product").in_(o.product))
        if o.status:
            conditions.append(self._text(order, "status").in_(o.status))
        if o.min_total_usd is not None:
            conditions.append(self._number(order, "total_usd") >= o.min_total_usd)
        return select(1).select_from(order).where(*conditions)

    def _cases_of(self, person: NamedFromClause, spec: SegmentSpec, today: date) -> Select[Any]:
        k = spec.cases
        assert k is not None
        s = self.sources
        customer = RECORDS.alias("customer")
        case = RECORDS.alias("kase")
        conditions = [
            self._visible(case, s.cases),
            *self._window(case, "created_at", k, today),
        ]
        if k.status:
            conditions.append(self._text(case, "status").in_(k.status))
        if k.priority:
            conditions.append(self._text(case, "priority").in_(k.priority))
        if k.about:
            conditions.append(self._any_word(case, ["subject", "body"], k.about))
        return (
            select(1)
            .select_from(customer)
            .join(case, self._text(case, "customer_id") == customer.c.source_id)
            .where(
                self._visible(customer, s.case_contacts),
                customer.c.contact_id == person.c.contact_id,
                *conditions,
            )
        )

    def members(self, spec: SegmentSpec, today: date) -> list[Member]:
        """Everyone in the segment, with the name and email of a contact record of theirs
        the person may read (one with an email first, then by source and id)."""
        if spec.empty():
            return []
        ids = self._members(spec, today).subquery("members")
        contact = RECORDS.alias("shown")
        email = self._text(contact, "email")
        rows = (
            select(contact.c.contact_id, contact.c.title, email)
            .join(ids, ids.c.contact_id == contact.c.contact_id)
            .where(self._visible(contact, self.sources.contacts, self.sources.case_contacts))
            .order_by(
                contact.c.contact_id,
                func.coalesce(email, "") == "",
                contact.c.source,
                contact.c.source_id,
            )
        )
        with self.db.engine.connect() as connection:
            found = connection.execute(rows).all()
        members: dict[str, Member] = {}
        for contact_id, title, address in found:
            members.setdefault(contact_id, Member(contact_id, title, address or None))
        return list(members.values())

    def person_records(self, contact_id: str) -> dict[str, list[dict[str, Any]]]:
        """What the person may read about one person, by entity: their contact records,
        the accounts those name, the orders they placed and the support cases they opened
        (each as source, source_id, title and fields)."""
        s = self.sources
        contact = RECORDS.alias("contact")
        mine = select(contact).where(
            self._visible(contact, s.contacts, s.case_contacts), contact.c.contact_id == contact_id
        )
        found: dict[str, list[dict[str, Any]]] = {}
        with self.db.engine.connect() as connection:
            contacts = [dict(r._mapping) for r in connection.execute(mine)]
            crm = [c["source_id"] for c in contacts if c["source"] == s.contacts]
            customers = [c["source_id"] for c in contacts if c["source"] == s.case_contacts]
            accounts = [
                str(c["fields"].get("account")) for c in contacts if c["source"] == s.contacts
            ]
            r = RECORDS.alias("linked")
            linked = {
                "account": (s.accounts, r.c.source_id.in_(accounts)),
                "order": (s.orders, self._text(r, "contact_id").in_(crm)),
                "case": (s.cases, self._text(r, "customer_id").in_(customers)),
            }
            found["contact"] = contacts
            for entity, (source, link) in linked.items():
                query = select(r).where(self._visible(r, source), link)
                found[entity] = [dict(r._mapping) for r in connection.execute(query)]
        return found

    def contacts(self) -> list[dict[str, Any]]:
        """Every contact record the person may read (contact_id, title, fields)."""
        c = RECORDS.alias("c")
        query = select(c.c.contact_id, c.c.title, c.c.fields).where(
            self._visible(c, self.sources.contacts, self.sources.case_contacts)
        )
        with self.db.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(query)]

    def catalogue(self) -> Catalogue:
        """The values of each categorical field in the records the person may read."""
        s = self.sources
        where = {"account": s.accounts, "orders": s.orders, "cases": s.cases}
        values: dict[tuple[str, str], tuple[str, ...]] = {}
        with self.db.engine.connect() as connection:
            for filter_name, field in CATEGORIES:
                r = RECORDS.alias("r")
                value = self._text(r, field)
                query = (
                    select(value)
                    .where(self._visible(r, where[filter_name]), value.is_not(None))
                    .distinct()
                    .order_by(value)
                )
                values[(filter_name, field)] = tuple(connection.scalars(query))
        return Catalogue(values)

    def readable_sources(self) -> dict[str, bool]:
        """Whether the person may read any record of each source a segment draws on."""
        found = {}
        with self.db.engine.connect() as connection:
            for source in dict.fromkeys(self.sources.model_dump().values()):
                r = RECORDS.alias("r")
                query = select(1).select_from(r).where(self._visible(r, source)).limit(1)
                found[source] = connection.scalar(query) is not None
        return found


__all__ = ["Member", "SegmentQuery", "SegmentSources"]
