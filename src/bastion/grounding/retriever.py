"""Hybrid retrieval: dense (MiniLM) and BM25 results, each already filtered by the reader's
ACL, fused by per-query z-scores (or reciprocal rank)."""

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


Scored = Sequence[tuple[Chunk, float]]


def _hits(scores: dict[str, float], lists: Sequence[Scored], k: int) -> list[Hit]:
    ranks: dict[str, list[int | None]] = {}
    chunks: dict[str, Chunk] = {}
    for which, ranking in enumerate(lists):
        for rank, (chunk, _) in enumerate(ranking, start=1):
            ranks.setdefault(chunk.id, [None] * len(lists))[which] = rank
            chunks[chunk.id] = chunk
    order = sorted(scores, key=lambda cid: (-scores[cid], cid))[:k]
    return [
        Hit(chunks[c], scores[c], ranks[c][0], ranks[c][1] if len(lists) > 1 else None)
        for c in order
    ]


def fuse_rrf(lists: Sequence[Scored], k: int, rrf_k: int) -> list[Hit]:
    """Reciprocal rank fusion: score = sum of 1 / (rrf_k + rank) over the rankings."""
    scores: dict[str, float] = {}
    for ranking in lists:
        for rank, (chunk, _) in enumerate(ranking, start=1):
            scores[chunk.id] = scores.get(chunk.id, 0.0) + 1.0 / (rrf_k + rank)
    return _hits(scores, lists, k)


def fuse_zscore(lists: Sequence[Scored], k: int, weights: Sequence[float]) -> list[Hit]:
    """Weighted sum of per-query z-scores; a chunk missing from a list counts as that
    list's lowest candidate. Unlike ranks, z-scores keep how far ahead a clear winner is."""
    normalised: list[dict[str, float]] = []
    for ranking in lists:
        values = [score for _, score in ranking]
        mean = sum(values) / len(values) if values else 0.0
        spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 if values else 0.0
        normalised.append(
            {c.id: (score - mean) / spread if spread else 0.0 for c, score in ranking}
        )
    ids = {cid for z in normalised for cid in z}
    scores = {
        cid: sum(
            w * z.get(cid, min(z.values(), default=0.0))
            for w, z in zip(weights, normalised, strict=True)
        )
        for cid in ids
    }
    return _hits(scores, lists, k)


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
        dense: Scored = []
        keyword: Scored = []
        if mode in ("dense", "hybrid"):
            started = time.perf_counter()
            vector = self.embedder.embed_one(query)
            timing["embed_ms"] = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            dense_ids = self.store.search(tenant, vector, allowed, depth, sources)
            dense = self._hydrate(tenant, dense_ids, mode)
            timing["dense_ms"] = (time.perf_counter() - started) * 1000
        if mode in ("bm25", "hybrid"):
            started = time.perf_counter()
            keyword = self.keyword.search(tenant, query, allowed, depth, sources)
            timing["bm25_ms"] = (time.perf_counter() - started) * 1000
        self.last_timing = timing
        if mode != "hybrid":
            only = dense if mode == "dense" else keyword
            return [
                Hit(c, score, rank if mode == "dense" else None, rank if mode == "bm25" else None)
                for rank, (c, score) in enumerate(only[:k], start=1)
            ]
        if self.config.fusion == "rrf":
            return fuse_rrf([dense, keyword], k, self.config.rrf_k)
        alpha = self.config.dense_weight
        return fuse_zscore([dense, keyword], k, [alpha, 1.0 - alpha])

    def _hydrate(self, tenant: str, scored: list[tuple[str, float]], mode: Mode) -> Scored:
        """Chunks for dense results: from the keyword index's memory in hybrid mode (no
        second read), from the store otherwise."""
        if mode == "hybrid":
            known = self.keyword.chunks_by_id(tenant)
            if all(cid in known for cid, _ in scored):
                return [(known[cid], score) for cid, score in scored]
        chunks = {c.id: c for c in self.store.get(tenant, [cid for cid, _ in scored])}
        return [(chunks[cid], score) for cid, score in scored if cid in chunks]
