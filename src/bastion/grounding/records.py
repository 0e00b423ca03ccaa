"""The harmonized record every connector produces, and what a connector reports it skipped."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

EVERYONE = "*"


@dataclass(frozen=True)
class SourceRecord:
    """One record in the canonical model (DESIGN.md: Account, Contact, Interaction, ...).

    `text` is what gets chunked and indexed; `fields` keeps the canonical fields for
    identity resolution and structured use; `acl` lists who may read it (empty: nobody).
    """

    tenant: str
    source: str
    source_id: str
    entity: str
    title: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    acl: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return record_key(self.source, self.source_id)

    @property
    def content_hash(self) -> str:
        body = json.dumps(
            [self.entity, self.title, self.text, self.fields, sorted(self.acl)],
            sort_keys=True,
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Skipped:
    """A record or file a connector could not read, and why (the ingest report lists them)."""

    where: str
    reason: str


def record_key(source: str, source_id: str) -> str:
    return f"{source}:{source_id}"


def parse_acl(value: Any) -> tuple[str, ...]:
    """Groups from a list or a comma/semicolon separated string; blanks dropped."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else str(value).replace(";", ",").split(",")
    return tuple(sorted({str(v).strip() for v in items if str(v).strip()}))
