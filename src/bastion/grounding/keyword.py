"""BM25 keyword search over a tenant's chunks (bm25s), with the ACL applied before ranking.

Every chunk is scored, the chunks the reader may not see are zeroed by a mask, and only
then is the top-k taken. The index is rebuilt in memory when the store's version moves.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.grounding.stores import Chunk, VectorStore


def english_stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: list[str], stemmer: Any) -> list[list[str]]:
    import bm25s

    tokens = bm25s.tokenize(
        texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
    )
    return [list(t) for t in tokens]


@dataclass
class _Index:
    version: str
    chunks: list[Chunk]
    bm25: Any
    acl_of: np.ndarray  # chunk -> index into acls
    acls: list[frozenset[str]]
    source_of: np.ndarray
    sources: list[str]
    by_id: dict[str, Chunk] | None = None


class KeywordIndex:
    """Per-tenant BM25 indexes, built lazily from the vector store's chunks."""

    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self._stemmer = english_stemmer()
        self._indexes: dict[str, _Index] = {}
        self._lock = threading.Lock()

    def _index(self, tenant: str) -> _Index | None:
        version = self._store.version(tenant)
        with self._lock:
            index = self._indexes.get(tenant)
            if index is None or index.version != version:
                index = self._build(tenant, version)
                self._indexes[tenant] = index
        return index if index.chunks else None

    def chunks_by_id(self, tenant: str) -> dict[str, Chunk]:
        """Every chunk of the tenant, from memory (the index holds them all anyway)."""
        index = self._index(tenant)
        if index is None:
            return {}
        if index.by_id is None:
            index.by_id = {c.id: c for c in index.chunks}
        return index.by_id

    def warm(self, tenant: str) -> None:
        """Build the tenant's index now rather than on its first query."""
        self._index(tenant)

    def _build(self, tenant: str, version: str) -> _Index:
        import bm25s

        chunks = self._store.chunks(tenant)
        bm25 = bm25s.BM25()
        if chunks:
            bm25.index(
                tokenize([f"{c.title}\n{c.text}" for c in chunks], self._stemmer),
                show_progress=False,
            )
        acls = sorted({frozenset(c.acl) for c in chunks}, key=sorted)
        acl_pos = {a: i for i, a in enumerate(acls)}
        sources = sorted({c.source for c in chunks})
        source_pos = {s: i for i, s in enumerate(sources)}
        return _Index(
            version,
            chunks,
            bm25,
            np.array([acl_pos[frozenset(c.acl)] for c in chunks], dtype=np.int32),
            acls,
            np.array([source_pos[c.source] for c in chunks], dtype=np.int32),
            sources,
        )

    def search(
        self,
        tenant: str,
        query: str,
        allowed: Sequence[str],
        k: int,
        sources: Sequence[str] | None = None,
    ) -> list[tuple[Chunk, float]]:
        index = self._index(tenant)
        tokens = tokenize([query], self._stemmer)[0]
        if index is None or not tokens or not allowed:
            return []
        allowed_set = set(allowed)
        readable = [i for i, acl in enumerate(index.acls) if acl & allowed_set]
        mask = np.isin(index.acl_of, readable)
        if sources is not None:
            wanted = [i for i, s in enumerate(index.sources) if s in set(sources)]
            mask &= np.isin(index.source_of, wanted)
        scores = np.where(mask, index.bm25.get_scores(tokens), 0.0)
        k = min(k, int(np.count_nonzero(scores > 0)))
        if k == 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(index.chunks[i], float(scores[i])) for i in top]
