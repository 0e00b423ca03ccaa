"""Ingest: read a source, harmonize, and store its records incrementally by content hash.

A source is applied in one transaction: a crash or a source that cannot be read leaves
the previous state whole. Records missing from a complete read are deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from bastion.config import SourceConfig
from bastion.grounding.connectors import read_source
from bastion.grounding.records import Skipped, SourceRecord
from bastion.storage import Database
from bastion.storage.tables import GroundingRecord


@dataclass
class IngestReport:
    source: str
    tenant: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    no_acl: int = 0  # stored but readable by nobody until an ACL is given
    skipped: list[Skipped] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "tenant": self.tenant,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "no_acl": self.no_acl,
            "skipped": [{"where": s.where, "reason": s.reason} for s in self.skipped],
        }


def ingest_source(
    db: Database,
    cfg: SourceConfig,
    home: Path,
    *,
    on_record: Callable[[], None] | None = None,
) -> IngestReport:
    """Bring the stored records of `cfg` in line with the source; returns what changed."""
    report = IngestReport(cfg.name, cfg.tenant)
    fresh: dict[str, SourceRecord] = {}
    for item in read_source(cfg, home):
        if on_record is not None:
            on_record()
        if isinstance(item, Skipped):
            report.skipped.append(item)
        elif item.source_id in fresh:
            report.skipped.append(Skipped(item.source_id, "duplicate id; the first one is kept"))
        else:
            fresh[item.source_id] = item
    now = datetime.now(UTC)
    with db.session(write_lock=True) as session:
        stored = {
            row.source_id: row
            for row in session.scalars(
                select(GroundingRecord).where(
                    GroundingRecord.tenant_id == cfg.tenant, GroundingRecord.source == cfg.name
                )
            )
        }
        for source_id, record in fresh.items():
            report.no_acl += not record.acl
            row = stored.get(source_id)
            digest = record.content_hash
            if row is None:
                session.add(_row(record, digest, now))
                report.added += 1
            elif row.content_hash != digest:
                _fill(row, record, digest, now)
                report.updated += 1
            else:
                report.unchanged += 1
        gone = [sid for sid in stored if sid not in fresh]
        for part in _batches(gone, 500):
            session.execute(
                delete(GroundingRecord).where(
                    GroundingRecord.tenant_id == cfg.tenant,
                    GroundingRecord.source == cfg.name,
                    GroundingRecord.source_id.in_(part),
                )
            )
        report.removed = len(gone)
    return report


def _row(record: SourceRecord, digest: str, now: datetime) -> GroundingRecord:
    row = GroundingRecord(tenant_id=record.tenant, source=record.source, source_id=record.source_id)
    _fill(row, record, digest, now)
    return row


def _fill(row: GroundingRecord, record: SourceRecord, digest: str, now: datetime) -> None:
    row.entity = record.entity
    row.title = record.title
    row.text = record.text
    row.fields = _jsonable(record.fields)
    row.acl = list(record.acl)
    row.content_hash = digest
    row.updated_at = now


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    plain = (str, int, float, bool, list)
    return {k: v if isinstance(v, plain) else str(v) for k, v in fields.items()}


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def stored_records(db: Database, tenant: str, entity: str | None = None) -> list[GroundingRecord]:
    """The tenant's records (optionally of one entity), in a stable order."""
    query = select(GroundingRecord).where(GroundingRecord.tenant_id == tenant)
    if entity is not None:
        query = query.where(GroundingRecord.entity == entity)
    with db.session() as session:
        ordered = query.order_by(GroundingRecord.source, GroundingRecord.source_id)
        return list(session.scalars(ordered))


def set_contact_ids(db: Database, tenant: str, contact_of: dict[tuple[str, str], str]) -> None:
    """Write identity resolution's answer: (source, source_id) -> contact id."""
    with db.session(write_lock=True) as session:
        session.execute(
            update(GroundingRecord)
            .where(GroundingRecord.tenant_id == tenant)
            .values(contact_id=None)
        )
        for (source, source_id), contact in contact_of.items():
            session.execute(
                update(GroundingRecord)
                .where(
                    GroundingRecord.tenant_id == tenant,
                    GroundingRecord.source == source,
                    GroundingRecord.source_id == source_id,
                )
                .values(contact_id=contact)
            )
