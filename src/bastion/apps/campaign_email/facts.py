"""The personal facts an email may use: a few lines drawn from the recipient's own
harmonized records that the author may read, each naming the record it comes from."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel


class Fact(BaseModel):
    text: str
    source: str
    record_id: str


class Recipient(BaseModel):
    contact_id: str
    name: str
    first_name: str
    email: str | None
    facts: list[Fact]


def _day(value: Any) -> str:
    """'2025-10-14' as 'October 14, 2025' (the brand's dates); other text unchanged."""
    try:
        day = date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    return f"{day:%B} {day.day}, {day.year}"


def recipient(contact_id: str, records: dict[str, list[dict[str, Any]]]) -> Recipient:
    """Who the email goes to and what may be said about them (from `person_records`)."""
    contacts = sorted(records.get("contact", []), key=lambda r: (r["source"], r["source_id"]))
    with_email = [c for c in contacts if c["fields"].get("email")]
    main = (with_email or contacts or [{"title": "", "fields": {}, "source": "", "source_id": ""}])[
        0
    ]
    fields = main["fields"]
    name = str(main["title"] or fields.get("full_name") or "")
    first = str(fields.get("first_name") or name.split(" ")[0] if name else "")
    facts: list[Fact] = []
    for c in contacts:
        if title := c["fields"].get("job_title"):
            facts.append(
                Fact(text=f"Job title: {title}", source=c["source"], record_id=c["source_id"])
            )
            break
    for a in records.get("account", [])[:1]:
        f = a["fields"]
        where = ", ".join(str(f[k]) for k in ("industry", "region") if f.get(k))
        facts.append(
            Fact(
                text=f"Works at {a['title']}" + (f" ({where})" if where else ""),
                source=a["source"],
                record_id=a["source_id"],
            )
        )
    orders = sorted(
        (o for o in records.get("order", []) if o["fields"].get("status") != "cancelled"),
        key=lambda o: str(o["fields"].get("ordered_at", "")),
        reverse=True,
    )
    for o in orders[:2]:
        f = o["fields"]
        facts.append(
            Fact(
                text=f"Ordered {f.get('quantity', '')} x {f.get('product', '')} on "
                f"{_day(f.get('ordered_at', ''))}".replace("  ", " "),
                source=o["source"],
                record_id=o["source_id"],
            )
        )
    cases = sorted(
        records.get("case", []), key=lambda k: str(k["fields"].get("created_at", "")), reverse=True
    )
    for k in cases[:1]:
        f = k["fields"]
        facts.append(
            Fact(
                text=f"Opened a support case on {_day(f.get('created_at', ''))}: "
                f"{f.get('subject', '')} ({f.get('status', '')})",
                source=k["source"],
                record_id=k["source_id"],
            )
        )
    return Recipient(
        contact_id=contact_id,
        name=name,
        first_name=first,
        email=str(fields["email"]) if fields.get("email") else None,
        facts=facts,
    )
