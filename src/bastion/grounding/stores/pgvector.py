"""pgvector in the platform's PostgreSQL: the vector store for several replicas.

Search is an exact scan after the tenant, source and ACL conditions (`acl && allowed`),
so filtering always happens before ranking; an HNSW index would filter afterwards and
could return fewer results than asked for.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import text

from bastion.grounding.stores import Chunk
from bastion.storage import Database

VERSION_CHECK_SECONDS = 5.0
_COLUMNS = "id, tenant_id, source, source_id, record_hash, entity, title, text, acl"


def _vector(values: np.ndarray) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in values) + "]"


class PgVectorStore:
    def __init__(self, db: Database) -> None:
        if db.is_sqlite:
            raise ValueError(
                "grounding.store 'pgvector' needs storage.url to be a PostgreSQL URL; "
                "use 'lancedb' with SQLite"
            )
        self._db = db
        self._versions: dict[str, tuple[float, str]] = {}

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if not chunks:
            return
        self._versions.pop(chunks[0].tenant, None)
        rows = [
            {
                "id": c.id,
                "tenant": c.tenant,
                "source": c.source,
                "source_id": c.source_id,
                "record_hash": c.record_hash,
                "entity": c.entity,
                "title": c.title,
                "text": c.text,
                "acl": list(c.acl),
                "embedding": _vector(v),
            }
            for c, v in zip(chunks, vectors, strict=True)
        ]
        with self._db.transaction() as conn:
            conn.execute(
                text(
                    f"INSERT INTO grounding_chunks ({_COLUMNS}, embedding) VALUES (:id, :tenant, "
                    ":source, :source_id, :record_hash, :entity, :title, :text, :acl, "
                    "CAST(:embedding AS vector)) ON CONFLICT (id) DO UPDATE SET "
                    "record_hash = EXCLUDED.record_hash, entity = EXCLUDED.entity, "
                    "title = EXCLUDED.title, text = EXCLUDED.text, acl = EXCLUDED.acl, "
                    "embedding = EXCLUDED.embedding"
                ),
                rows,
            )

    def prune(self, tenant: str, keep: Mapping[str, str | None]) -> None:
        if not keep:
            return
        self._versions.pop(tenant, None)
        keys = sorted(keep)
        with self._db.transaction() as conn:
            conn.execute(
                text(
                    "DELETE FROM grounding_chunks c USING unnest(CAST(:keys AS text[]), "
                    "CAST(:hashes AS text[])) AS k(key, keep) WHERE c.tenant_id = :tenant "
                    "AND c.source || ':' || c.source_id = k.key "
                    "AND (k.keep IS NULL OR c.record_hash <> k.keep)"
                ),
                {"tenant": tenant, "keys": keys, "hashes": [keep[k] for k in keys]},
            )

    def record_hashes(self, tenant: str) -> dict[str, str]:
        with self._db.read() as conn:
            rows = conn.execute(
                text(
                    "SELECT DISTINCT source || ':' || source_id, record_hash "
                    "FROM grounding_chunks WHERE tenant_id = :tenant"
                ),
                {"tenant": tenant},
            )
            hashes: dict[str, str] = {}
            for key, digest in rows:
                hashes[key] = digest if key not in hashes else ""  # mixed: redo it
            return hashes

    def search(
        self,
        tenant: str,
        vector: np.ndarray,
        allowed: Sequence[str],
        k: int,
        sources: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        if not allowed or sources == []:
            return []
        where = "tenant_id = :tenant AND acl && CAST(:allowed AS text[])"
        params: dict[str, Any] = {
            "tenant": tenant,
            "allowed": list(allowed),
            "q": _vector(vector),
            "k": k,
        }
        if sources is not None:
            where += " AND source = ANY(:sources)"
            params["sources"] = list(sources)
        with self._db.read() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, 1 - (embedding <=> CAST(:q AS vector)) AS similarity "
                    f"FROM grounding_chunks WHERE {where} "
                    "ORDER BY embedding <=> CAST(:q AS vector) LIMIT :k"
                ),
                params,
            )
            return [(r[0], float(r[1])) for r in rows]

    def get(self, tenant: str, ids: Sequence[str]) -> list[Chunk]:
        if not ids:
            return []
        with self._db.read() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM grounding_chunks "
                    "WHERE tenant_id = :t AND id = ANY(:ids)"
                ),
                {"t": tenant, "ids": list(ids)},
            )
            found = {r[0]: _chunk(r) for r in rows}
        return [found[i] for i in ids if i in found]

    def chunks(self, tenant: str) -> list[Chunk]:
        with self._db.read() as conn:
            rows = conn.execute(
                text(f"SELECT {_COLUMNS} FROM grounding_chunks WHERE tenant_id = :t ORDER BY id"),
                {"t": tenant},
            )
            return [_chunk(r) for r in rows]

    def version(self, tenant: str) -> str:
        # The check scans the tenant's chunks: other replicas' writes are looked for every
        # few seconds; this replica's own writes are seen at once.
        cached = self._versions.get(tenant)
        if cached is not None and time.monotonic() - cached[0] < VERSION_CHECK_SECONDS:
            return cached[1]
        version = self._read_version(tenant)
        self._versions[tenant] = (time.monotonic(), version)
        return version

    def _read_version(self, tenant: str) -> str:
        # Inserts and updates raise max(xmin); deletes change the count.
        with self._db.read() as conn:
            count, newest = conn.execute(
                text(
                    "SELECT count(*), coalesce(max(xmin::text::bigint), 0) "
                    "FROM grounding_chunks WHERE tenant_id = :t"
                ),
                {"t": tenant},
            ).one()
            return f"{count}:{newest}"

    def optimize(self, tenant: str) -> None:
        """Nothing to build: exact search keeps the ACL filter ahead of ranking."""


def _chunk(row: Any) -> Chunk:
    return Chunk(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], tuple(row[8] or ())
    )
