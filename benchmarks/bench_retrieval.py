"""Retrieval: quality on SciFact, query latency at 100k chunks with the ACL filter, and
ingest/embedding throughput on the demo company.

1. SciFact (../shared/eval/retrieval/scifact, train queries, cited and evidence qrels):
   nDCG@10, recall@10 and recall@100 of BM25, dense and hybrid over one index built by the
   product's own chunker, embedder, LanceDB store and bm25s index. The hybrid run is also
   scored by ../shared/scorers/score_trec.py. Published BM25 on SciFact: nDCG@10 ~0.665.
2. Latency at 100k chunks: chunk texts are SciFact passages repeated under new ids, their
   vectors real MiniLM embeddings with a little noise (embedding 100k passages would take
   most of an hour here); random ACLs over 8 groups; the reader holds 2 of them. Each query
   is embedded live. Peers in the same run: the same search with no ACL restriction, and
   the exact scan before the IVF index is built.
3. Throughput: `bastion demo init`'s ingest and index on a fresh home (records/s, chunks/s).

Prints one JSON object. Usage:
  python benchmarks/bench_retrieval.py [--eval-dir ../shared/eval] [--chunks 100000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bastion.config import GroundingConfig
from bastion.evaluation.retrieval import evaluate_retrieval
from bastion.grounding.embedding import Embedder
from bastion.grounding.indexer import chunks_for
from bastion.grounding.retriever import Retriever
from bastion.grounding.stores import Chunk
from bastion.grounding.stores.lance import LanceStore
from bastion.labelled.datasets import read_json_lines
from bastion.labelled.metrics import latency_ms

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ["sales", "support", "marketing", "exec", "engineering", "finance", "legal", "hr"]


def scifact(data: Path, out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for qrels in ("cited", "evidence"):
        qrels_path = data / f"qrels_train_{qrels}.tsv"
        run = out / f"scifact-{qrels}.txt"
        modes = evaluate_retrieval(
            data / "corpus.jsonl",
            data / "queries_train.jsonl",
            qrels_path,
            modes=("bm25", "dense", "hybrid"),
            run_path=run,
        )
        scorer = subprocess.run(
            [
                sys.executable,
                str(ROOT.parent / "shared/scorers/score_trec.py"),
                str(qrels_path),
                str(run.with_suffix(".hybrid.txt")),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        result[qrels] = {**modes, "hybrid_by_shared_scorer": json.loads(scorer.stdout)}
    return result


def _corpus_chunks(data: Path, limit: int) -> list[Chunk]:
    config = GroundingConfig()
    chunks: list[Chunk] = []
    for row in read_json_lines(data / "corpus.jsonl"):
        whole = Chunk(
            "",
            "bench",
            "corpus",
            str(row["_id"]),
            "h",
            "document",
            str(row.get("title", "")),
            str(row.get("text", "")),
            ("*",),
        )
        chunks += chunks_for(whole, config)
        if len(chunks) >= limit:
            break
    return chunks[:limit]


def latency_at_scale(data: Path, total: int, queries: int, folder: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    embedder = Embedder()
    base = _corpus_chunks(data, 4000)
    started = time.perf_counter()
    base_vectors = embedder.embed([c.text for c in base])
    embed_rate = len(base) / (time.perf_counter() - started)
    store = LanceStore(folder)
    for start in range(0, total, 10_000):
        n = min(10_000, total - start)
        picks = rng.integers(0, len(base), size=n)
        vectors = base_vectors[picks] + rng.normal(0, 0.02, (n, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks = [
            Chunk(
                f"c{start + i}",
                "bench",
                "corpus",
                f"r{start + i}",
                "h",
                "document",
                base[p].title,
                base[p].text,
                tuple(sorted(set(rng.choice(GROUPS, size=int(rng.integers(1, 3))).tolist()))),
            )
            for i, p in enumerate(picks)
        ]
        store.upsert(chunks, vectors)
    texts = [str(q["text"]) for q in read_json_lines(data / "queries_train.jsonl")][:queries]
    retriever = Retriever(store, GroundingConfig(), embedder)
    reader = ["sales", "support"]

    def run(allowed: list[str]) -> dict[str, Any]:
        retriever.search("bench", "warm up", allowed, k=5)
        seconds, parts = [], []
        for text in texts:
            began = time.perf_counter()
            retriever.search("bench", text, allowed, k=5)
            seconds.append(time.perf_counter() - began)
            parts.append(retriever.last_timing)
        return {
            **latency_ms(seconds),
            **{
                f"{key}_p50": round(statistics.median(p[key] for p in parts), 2)
                for key in ("embed_ms", "dense_ms", "bm25_ms")
            },
        }

    exact = run(reader)
    began = time.perf_counter()
    store.optimize("bench")
    index_seconds = time.perf_counter() - began
    return {
        "chunks": total,
        "queries": len(texts),
        "reader_groups": reader,
        "hybrid_acl_indexed": run(reader),
        "hybrid_no_acl_indexed": run(GROUPS),
        "hybrid_acl_exact_scan_before_index": exact,
        "ivf_index_build_s": round(index_seconds, 1),
        "embed_passages_per_s": round(embed_rate, 1),
    }


def demo_throughput(folder: Path) -> dict[str, Any]:
    from bastion.demo import TEMPLATE
    from bastion.demo.company import generate_company
    from bastion.platform import Platform

    (folder / "bastion.yaml").write_text(TEMPLATE.read_text())
    generate_company(folder / "data")
    platform = Platform.open(folder)
    platform.grounding.embedder.load()
    began = time.perf_counter()
    reports = platform.grounding.ingest()
    ingest_s = time.perf_counter() - began
    records = sum(r.added for r in reports)
    began = time.perf_counter()
    identity = platform.grounding.link_contacts("acme")
    link_s = time.perf_counter() - began
    index = platform.grounding.index("acme").to_dict()
    return {
        "records": records,
        "ingest_records_per_s": round(records / ingest_s, 1),
        "identity_resolution_s": round(link_s, 2),
        "contacts": identity["contacts"],
        "chunks": index["chunks_written"],
        "index_chunks_per_s": index["chunks_per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--skip-scifact", action="store_true")
    args = parser.parse_args()
    data = args.eval_dir / "retrieval" / "scifact"
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_scifact:
            result["scifact"] = scifact(data, folder)
        result["latency"] = latency_at_scale(data, args.chunks, args.queries, folder / "lance")
        (folder / "demo").mkdir()
        result["demo_throughput"] = demo_throughput(folder / "demo")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
