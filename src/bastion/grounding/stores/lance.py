"""LanceDB on disk: one table per tenant; ACL filtering with prefilter=True."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bastion.grounding.stores import DIMENSIONS, Chunk

_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("tenant", pa.string()),
        pa.field("source", pa.string()),
        pa.field("source_id", pa.string()),
        pa.field("record_key", pa.string()),
        pa.field("record_hash", pa.string()),
        pa.field("entity", pa.string()),
        pa.field("title", pa.string()),
        pa.field("text", pa.string()),
        pa.field("acl", pa.list_(pa.string())),
        pa.field("vector", pa.list_(pa.float32(), DIMENSIONS)),
    ]
)
_FIELDS = [f.name for f in _SCHEMA if f.name not in ("vector", "record_key")]
# Below this many rows an exact scan is fast enough; above it an IVF index pays off.
INDEX_MIN_ROWS = 20_000


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(values: Iterable[str]) -> str:
    return ", ".join(_literal(v) for v in values)


class LanceStore:
    def __init__(self, path: Path) -> None:
        import lancedb

        path.mkdir(parents=True, exist_ok=True)
        # Another process (`bastion index`) may write: look for new versions every 5 s.
        self._db = lancedb.connect(str(path), read_consistency_interval=timedelta(seconds=5))
        self._tables: dict[str, Any] = {}

    def _table(self, tenant: str, create: bool = False) -> Any:
        if tenant in self._tables:
            return self._tables[tenant]
        name = "chunks_" + re.sub(r"[^A-Za-z0-9_]", "_", tenant)
        if name in self._db.list_tables().tables:
            table = self._db.open_table(name)
        elif create:
            table = self._db.create_table(name, schema=_SCHEMA)
        else:
            return None
        self._tables[tenant] = table
        return table

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if not chunks:
            return
        tenant = chunks[0].tenant
        data = pa.table(
            {
                **{f: [getattr(c, f) for c in chunks] for f in _FIELDS if f != "acl"},
                "record_key": [c.record_key for c in chunks],
                "acl": [list(c.acl) for c in chunks],
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel()), DIMENSIONS
                ),
            },
            schema=_SCHEMA,
        )
        table = self._table(tenant, create=True)
        table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(
            data
        )

    def prune(self, tenant: str, keep: Mapping[str, str | None]) -> None:
        table = self._table(tenant)
        if table is None or not keep:
            return
        conditions = [
            f"record_key = {_literal(key)}"
            + ("" if digest is None else f" AND record_hash != {_literal(digest)}")
            for key, digest in sorted(keep.items())
        ]
        for i in range(0, len(conditions), 200):
            table.delete(" OR ".join(f"({c})" for c in conditions[i : i + 200]))

    def record_hashes(self, tenant: str) -> dict[str, str]:
        table = self._table(tenant)
        if table is None:
            return {}
        hashes: dict[str, str] = {}
        for row in table.to_arrow().select(["record_key", "record_hash"]).to_pylist():
            seen = hashes.setdefault(row["record_key"], row["record_hash"])
            if seen != row["record_hash"]:
                hashes[row["record_key"]] = ""  # an interrupted update: redo it
        return hashes

    def search(
        self,
        tenant: str,
        vector: np.ndarray,
        allowed: Sequence[str],
        k: int,
        sources: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        table = self._table(tenant)
        if table is None or not allowed or sources == []:
            return []
        where = f"array_has_any(acl, make_array({_in_list(allowed)}))"
        if sources is not None:
            where += f" AND source IN ({_in_list(sources)})"
        query = (
            table.search(np.asarray(vector, dtype=np.float32))
            .distance_type("cosine")
            .where(where, prefilter=True)
            .limit(k)
        )
        if table.list_indices():
            query = query.nprobes(20).refine_factor(2)  # 0.97 recall@10 of exact at 100k
        rows = query.select(["id", "_distance"]).to_arrow().to_pylist()
        return [(r["id"], 1.0 - float(r["_distance"])) for r in rows]

    def get(self, tenant: str, ids: Sequence[str]) -> list[Chunk]:
        table = self._table(tenant)
        if table is None or not ids:
            return []
        rows = (
            table.search()
            .where(f"id IN ({_in_list(ids)})")
            .select(_FIELDS)
            .limit(len(ids))
            .to_arrow()
            .to_pylist()
        )
        found = {r["id"]: _chunk(r) for r in rows}
        return [found[i] for i in ids if i in found]

    def chunks(self, tenant: str) -> list[Chunk]:
        table = self._table(tenant)
        if table is None:
            return []
        return [_chunk(r) for r in table.to_arrow().select(_FIELDS).to_pylist()]

    def version(self, tenant: str) -> str:
        table = self._table(tenant)
        if table is None:
            return "empty"
        return str(table.version)

    def optimize(self, tenant: str) -> None:
        from lancedb.index import BTree, IvfPq, LabelList

        table = self._table(tenant)
        if table is None:
            return
        rows = table.count_rows()
        if rows < INDEX_MIN_ROWS:
            return
        table.create_index(
            "vector",
            config=IvfPq(
                distance_type="cosine",
                num_partitions=max(16, int(rows**0.5 / 4)),
                num_sub_vectors=DIMENSIONS // 8,
            ),
            replace=True,
        )
        table.create_index("acl", config=LabelList(), replace=True)
        table.create_index("id", config=BTree(), replace=True)


def _chunk(row: dict[str, Any]) -> Chunk:
    return Chunk(
        row["id"],
        row["tenant"],
        row["source"],
        row["source_id"],
        row["record_hash"],
        row["entity"],
        row["title"],
        row["text"],
        tuple(row["acl"] or ()),
    )
