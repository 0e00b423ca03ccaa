"""Retrieval evaluation on BEIR-style data: the product's own chunker, embedder, LanceDB
store, BM25 index and fusion, over a throwaway index of the corpus.

A document's rank is that of its best chunk. Metrics follow BEIR: nDCG@10 with graded
relevance, recall@10 and recall@100.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bastion.config import GroundingConfig
from bastion.errors import BadRequest
from bastion.grounding.embedding import Embedder
from bastion.grounding.indexer import chunks_for
from bastion.grounding.records import EVERYONE
from bastion.grounding.retriever import Mode, Retriever
from bastion.grounding.stores import Chunk
from bastion.grounding.stores.lance import LanceStore
from bastion.labelled.datasets import read_json_lines
from bastion.labelled.metrics import latency_ms

TENANT = "eval"
DEPTH = 100


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """`query-id corpus-id score` rows (tab or space separated, header optional)."""
    if not path.is_file():
        raise BadRequest(f"{path} does not exist")
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts or (number == 1 and not parts[-1].lstrip("-").isdigit()):
            continue
        if len(parts) < 3 or not parts[-1].lstrip("-").isdigit():
            raise BadRequest(f"{path}:{number}: expected 'query-id corpus-id score'")
        if int(parts[-1]) > 0:
            qrels[parts[0]][parts[-2]] = int(parts[-1])
    return dict(qrels)


def _rows(path: Path, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    if not path.is_file():
        raise BadRequest(f"{path} does not exist")
    rows = read_json_lines(path)
    for n, row in enumerate(rows, 1):
        missing = [f for f in fields if f not in row]
        if missing:
            raise BadRequest(f"{path}: row {n} lacks {', '.join(missing)}")
    return rows


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(v / math.log2(i + 2) for i, v in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def build_index(
    corpus: list[dict[str, Any]],
    folder: Path,
    config: GroundingConfig,
    embedder: Embedder,
    on_chunks: Callable[[int], None] | None = None,
) -> LanceStore:
    store = LanceStore(folder)
    chunks: list[Chunk] = []
    for row in corpus:
        text = str(row.get("text") or "")
        title = str(row.get("title") or "")
        digest = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()
        whole = Chunk(
            "", TENANT, "corpus", str(row["_id"]), digest, "document", title, text, (EVERYONE,)
        )
        chunks += chunks_for(whole, config)
    for start in range(0, len(chunks), 512):
        batch = chunks[start : start + 512]
        store.upsert(batch, embedder.embed([c.text for c in batch], on_batch=on_chunks))
    store.optimize(TENANT)
    return store


def evaluate_retrieval(
    corpus_path: Path,
    queries_path: Path,
    qrels_path: Path,
    *,
    modes: Sequence[Mode] = ("hybrid",),
    config: GroundingConfig | None = None,
    run_path: Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """nDCG@10, recall@10, recall@100 and query latency of each mode (one index for all).

    With `run_path`, each mode's ranking is written in TREC run format (one file per mode
    when there are several: run.<mode>.txt)."""
    config = config or GroundingConfig()
    corpus = _rows(corpus_path, ("_id",))
    queries = [q for q in _rows(queries_path, ("_id", "text")) if str(q["_id"])]
    qrels = read_qrels(qrels_path)
    judged = [q for q in queries if str(q["_id"]) in qrels]
    if not judged:
        raise BadRequest("no query in the queries file has a judgement in the qrels file")
    embedder = Embedder()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bastion-eval-") as folder:
        started = time.perf_counter()
        done = 0

        def chunk_progress(n: int) -> None:
            nonlocal done
            done += n
            if on_progress:
                on_progress("index", done, 0)

        store = build_index(corpus, Path(folder), config, embedder, chunk_progress)
        index_seconds = time.perf_counter() - started
        retriever = Retriever(store, config, embedder)
        for mode in modes:
            retriever.search(TENANT, "warm up", [EVERYONE], k=1, mode=mode)
            rankings, seconds = _rank(retriever, judged, mode, on_progress)
            if run_path is not None:
                path = run_path if len(modes) == 1 else run_path.with_suffix(f".{mode}.txt")
                _write_run(path, rankings, mode)
            ids = {qid: [d for d, _ in ranked] for qid, ranked in rankings.items()}
            n = len(ids)
            results[mode] = {
                "mode": mode,
                "queries": n,
                "documents": len(corpus),
                "ndcg@10": round(sum(ndcg_at(ids[q], qrels[q]) for q in ids) / n, 4),
                "recall@10": round(sum(recall_at(ids[q], qrels[q], 10) for q in ids) / n, 4),
                "recall@100": round(sum(recall_at(ids[q], qrels[q], 100) for q in ids) / n, 4),
                "query_latency": latency_ms(seconds),
                "index_seconds": round(index_seconds, 1),
            }
    return results


def _rank(
    retriever: Retriever,
    queries: list[dict[str, Any]],
    mode: Mode,
    on_progress: Callable[[str, int, int], None] | None,
) -> tuple[dict[str, list[tuple[str, float]]], list[float]]:
    rankings: dict[str, list[tuple[str, float]]] = {}
    seconds: list[float] = []
    for n, query in enumerate(queries, 1):
        started = time.perf_counter()
        hits = retriever.search(TENANT, str(query["text"]), [EVERYONE], k=DEPTH * 2, mode=mode)
        seconds.append(time.perf_counter() - started)
        ranked: list[tuple[str, float]] = []
        seen: set[str] = set()
        for hit in hits:  # a document ranks where its best chunk does
            if hit.chunk.source_id not in seen:
                seen.add(hit.chunk.source_id)
                ranked.append((hit.chunk.source_id, hit.score))
        rankings[str(query["_id"])] = ranked[:DEPTH]
        if on_progress:
            on_progress(f"query {mode}", n, len(queries))
    return rankings, seconds


def _write_run(path: Path, rankings: dict[str, list[tuple[str, float]]], mode: str) -> None:
    with path.open("w", encoding="utf-8") as out:
        for qid, ranked in rankings.items():
            for rank, (doc, score) in enumerate(ranked, 1):
                out.write(f"{qid} Q0 {doc} {rank} {score:.6f} bastion-{mode}\n")
