"""Hybrid retrieval: dense (MiniLM) and BM25 results, each already filtered by the reader's
ACL, fused by reciprocal rank."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bastion.access import Principal
from bastion.config import GroundingConfig
from bastion.grounding.embedding import Embedder
from bastion.grounding.keyword import KeywordIndex
from bastion.grounding.records import EVERYONE
from bastion.grounding.stores import Chunk, VectorStore

Mode = Literal["hybrid", "dense", "bm25"]


def readable_by(principal: Principal) -> list[str]:
    """The ACL entries that let this person read a chunk: their groups, themselves, and
    '*' (everyone in the tenant). Roles grant no data: an admin sees what their groups see."""
    return sorted({EVERYONE, f"user:{principal.user}", *principal.groups})


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    dense_rank: int | None
    keyword_rank: int | None


def fuse(rankings: Sequence[Sequence[Chunk]], k: int, rrf_k: int) -> list[Hit]:
    """Reciprocal rank fusion: score = sum of 1 / (rrf_k + rank) over the rankings."""
    scores: dict[str, float] = {}
    ranks: dict[str, list[int | None]] = {}
    chunks: dict[str, Chunk] = {}
    for which, ranking in enumerate(rankings):
        for rank, chunk in enumerate(ranking, start=1):
            scores[chunk.id] = scores.get(chunk.id, 0.0) + 1.0 / (rrf_k + rank)
            ranks.setdefault(chunk.id, [None] * len(rankings))[which] = rank
            chunks[chunk.id] = chunk
    order = sorted(scores, key=lambda cid: (-scores[cid], cid))[:k]
    return [
        Hit(chunks[c], scores[c], ranks[c][0], ranks[c][1] if len(rankings) > 1 else None)
        for c in order
    ]


class Retriever:
    def __init__(
        self,
        store: VectorStore,
        config: GroundingConfig,
        embedder: Embedder | None = None,
        keyword: KeywordIndex | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.embedder = embedder or Embedder()
        self.keyword = keyword or KeywordIndex(store)
        self.last_timing: dict[str, float] = {}

    def search(
        self,
        tenant: str,
        query: str,
        allowed: Sequence[str],
        *,
        k: int | None = None,
        sources: Sequence[str] | None = None,
        mode: Mode | None = None,
    ) -> list[Hit]:
        """The best k chunks of `tenant` that `allowed` may read, best first."""
        k = k or self.config.top_k
        mode = mode or self.config.mode
        depth = max(k, self.config.candidates)
        timing: dict[str, float] = {}
        dense: list[Chunk] = []
        keyword: list[Chunk] = []
        if mode in ("dense", "hybrid"):
            started = time.perf_counter()
            vector = self.embedder.embed_one(query)
            timing["embed_ms"] = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            dense = [c for c, _ in self.store.search(tenant, vector, allowed, depth, sources)]
            timing["dense_ms"] = (time.perf_counter() - started) * 1000
        if mode in ("bm25", "hybrid"):
            started = time.perf_counter()
            keyword = [c for c, _ in self.keyword.search(tenant, query, allowed, depth, sources)]
            timing["bm25_ms"] = (time.perf_counter() - started) * 1000
        self.last_timing = timing
        if mode == "dense":
            return fuse([dense], k, self.config.rrf_k)
        if mode == "bm25":
            hits = fuse([keyword], k, self.config.rrf_k)
            return [Hit(h.chunk, h.score, None, h.dense_rank) for h in hits]
        return fuse([dense, keyword], k, self.config.rrf_k)
