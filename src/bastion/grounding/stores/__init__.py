"""Vector stores for chunks: LanceDB files on one machine, pgvector for several replicas.

Both filter by tenant, source and ACL inside the search itself (the filter runs before
ranking), so a result list is never a trimmed top-k of things the reader may not see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from bastion.config import GroundingConfig
from bastion.storage import Database

DIMENSIONS = 384  # all-MiniLM-L6-v2


@dataclass(frozen=True)
class Chunk:
    id: str
    tenant: str
    source: str
    source_id: str
    record_hash: str
    entity: str
    title: str
    text: str
    acl: tuple[str, ...]

    @property
    def record_key(self) -> str:
        return f"{self.source}:{self.source_id}"


class VectorStore(Protocol):
    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None: ...

    def prune(self, tenant: str, keep: Mapping[str, str | None]) -> None:
        """For each record key, delete its chunks not built from hash `keep[key]` (None: all)."""
        ...

    def record_hashes(self, tenant: str) -> dict[str, str]:
        """record key -> the content hash its chunks were built from ('' when mixed)."""
        ...

    def search(
        self,
        tenant: str,
        vector: np.ndarray,
        allowed: Sequence[str],
        k: int,
        sources: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """Ids of the k nearest chunks the reader may see, best first, with cosine similarity
        (ids only: fetching every candidate's text would cost more than the search)."""
        ...

    def get(self, tenant: str, ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in that order (unknown ids left out)."""
        ...

    def chunks(self, tenant: str) -> list[Chunk]: ...

    def version(self, tenant: str) -> str:
        """Changes whenever the tenant's chunks change (the keyword index rebuilds then)."""
        ...

    def optimize(self, tenant: str) -> None:
        """Build or refresh the approximate-search index once the table is large."""
        ...


def open_store(config: GroundingConfig, home: Path, db: Database) -> VectorStore:
    if config.store == "pgvector":
        from bastion.grounding.stores.pgvector import PgVectorStore

        return PgVectorStore(db)
    from bastion.grounding.stores.lance import LanceStore

    path = Path(config.index_path)
    return LanceStore(path if path.is_absolute() else home / path)
