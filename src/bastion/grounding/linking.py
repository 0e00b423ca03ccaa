"""Identity resolution over stored records: every contact-like record of a tenant, from
any source, is linked to one Contact id (see identity.py for how people are matched)."""

from __future__ import annotations

from typing import Any

from bastion.grounding.identity import PersonRecord, resolve
from bastion.grounding.ingest import set_contact_ids, stored_records
from bastion.grounding.records import record_key
from bastion.storage import Database


def _text(fields: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = fields.get(name)
        if value not in (None, ""):
            return str(value)
    return None


def link_contacts(db: Database, tenant: str, threshold: float) -> dict[str, Any]:
    """Resolve the tenant's contacts, store each record's contact id, return the report."""
    rows = stored_records(db, tenant, entity="contact")
    people = [
        PersonRecord(
            key=record_key(r.source, r.source_id),
            source=r.source,
            first_name=_text(r.fields, "first_name"),
            last_name=_text(r.fields, "last_name"),
            full_name=_text(r.fields, "full_name", "name"),
            email=_text(r.fields, "email"),
            phone=_text(r.fields, "phone"),
        )
        for r in rows
    ]
    resolution = resolve(people, threshold=threshold)
    by_key = {record_key(r.source, r.source_id): (r.source, r.source_id) for r in rows}
    set_contact_ids(db, tenant, {by_key[k]: c for k, c in resolution.contact_of.items()})
    report: dict[str, Any] = {"tenant": tenant, **resolution.report()}
    return report
