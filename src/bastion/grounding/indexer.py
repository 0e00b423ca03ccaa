"""Index: bring a tenant's chunks in line with its stored records.

Only records whose content hash changed are re-chunked and re-embedded. New chunks are
written before the old ones are removed, so a crash never leaves a record unsearchable;
a leftover is cleaned by the next run, which compares hashes again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bastion.config import GroundingConfig
from bastion.grounding.chunking import chunk_text
from bastion.grounding.embedding import Embedder
from bastion.grounding.ingest import stored_records
from bastion.grounding.stores import Chunk, VectorStore
from bastion.storage import Database
from bastion.storage.tables import GroundingRecord

BATCH_CHUNKS = 256


@dataclass
class IndexReport:
    tenant: str
    records: int = 0
    reindexed: int = 0
    removed: int = 0
    chunks_written: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "records": self.records,
            "reindexed": self.reindexed,
            "removed": self.removed,
            "chunks_written": self.chunks_written,
            "chunks_per_second": round(self.chunks_written / self.seconds, 1)
            if self.seconds
            else None,
        }


def record_chunks(row: GroundingRecord, config: GroundingConfig) -> list[Chunk]:
    return chunks_for(
        Chunk(
            "",
            row.tenant_id,
            row.source,
            row.source_id,
            row.content_hash,
            row.entity,
            row.title,
            row.text,
            tuple(row.acl),
        ),
        config,
    )


def chunks_for(record: Chunk, config: GroundingConfig) -> list[Chunk]:
    """Split a whole record (given as one chunk-shaped value) into its indexed chunks."""
    passages = chunk_text(record.text, config.chunk_words, config.chunk_overlap_words)
    return [
        replace(
            record,
            id=f"{record.record_key}#{record.record_hash[:8]}-{n}",
            text=p.indexed_text(record.title),
        )
        for n, p in enumerate(passages)
    ]


def sync_index(
    db: Database,
    store: VectorStore,
    embedder: Embedder,
    config: GroundingConfig,
    tenant: str,
    *,
    on_plan: Callable[[int], None] | None = None,
    on_chunks: Callable[[int], None] | None = None,
) -> IndexReport:
    """Re-chunk and re-embed changed records, drop chunks of deleted ones."""
    started = time.perf_counter()
    report = IndexReport(tenant)
    records = stored_records(db, tenant)
    report.records = len(records)
    indexed = store.record_hashes(tenant)
    current = {f"{r.source}:{r.source_id}": r.content_hash for r in records}
    todo = [r for r in records if indexed.get(f"{r.source}:{r.source_id}") != r.content_hash]
    stale = [key for key, digest in indexed.items() if current.get(key) != digest]
    plan = [record_chunks(r, config) for r in todo]
    if on_plan is not None:
        on_plan(sum(len(chunks) for chunks in plan))
    batch: list[Chunk] = []
    for position, chunks in enumerate(plan):
        batch += chunks
        if len(batch) >= BATCH_CHUNKS or position == len(plan) - 1:
            # Whole records per upsert: an interrupted run never leaves part of a record.
            store.upsert(batch, embedder.embed([c.text for c in batch], on_batch=on_chunks))
            report.chunks_written += len(batch)
            batch = []
    # Stale: chunks of deleted records, and of older versions of the records redone above.
    store.prune(tenant, {key: current.get(key) for key in stale})
    report.reindexed = len(todo)
    report.removed = len([k for k in stale if k not in current])
    store.optimize(tenant)
    report.seconds = time.perf_counter() - started
    return report
