"""Groundedness: how well GroundednessScorer's support separates claims from passages that
back them, contradict them, or are about something else, on SciFact (train claims).

Each SciFact claim is scored (GroundednessScorer.support) against one whole abstract:
- SUPPORT: an abstract annotated as supporting the claim;
- CONTRADICT: an abstract annotated as contradicting it;
- UNRELATED_random: a seeded random abstract not cited for the claim;
- UNRELATED_hard: the top BM25 abstract (claim as query, title + text) not cited for it,
  the related-but-wrong passage retrieval returns in practice (SciFact's annotation is not
  exhaustive, so a few of these may in fact support the claim);
- CITED_NO_EVIDENCE: claims without evidence against the abstract they cite (on topic,
  annotated as neither supporting nor contradicting);
- SUPPORT_rationale / CONTRADICT_rationale: the claim against the annotated evidence
  sentences alone (a passage that is exactly the right sentences). The evidence indexes
  refer to the abstract's sentences; the BEIR corpus joins them with spaces, and a split
  after . ! ? lines up with them (checked: evidence_index_check).
Reports per condition n, mean/median support and the share flagged supported at the
default threshold; ROC AUCs; the threshold with the best balanced accuracy for SUPPORT
against UNRELATED_random (and its stability across two halves of the claims); a sweep of
round thresholds; and the p50 time of one claim-passage call with an uncached embedder.
The project's own minimal pairs (benchmarks/data/claim_pairs.jsonl: 270 passages from
company documents, general reports and research findings, each with a claim it supports and
one it contradicts, written for the project) measure the same separation on other text.
With --nli-model FOLDER, SUPPORT against CONTRADICT is also scored with the NLI model's
contradiction check (the score `bastion eval groundedness` writes), on both data sets.
Embeddings are computed once per distinct text for the scores (the scorer itself re-embeds
on every call; the timing uses it as shipped). Prints one JSON object.

Usage: python benchmarks/bench_groundedness.py [--scifact ../shared/eval/retrieval/scifact]
       [--seed 0] [--timing-pairs 100] [--nli-model FOLDER] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from sklearn.metrics import roc_auc_score

from bastion.grounding.embedding import Embedder
from bastion.grounding.groundedness import GroundednessScorer, sentences
from bastion.grounding.keyword import english_stemmer, tokenize
from bastion.grounding.nli import load_nli

ROOT = Path(__file__).resolve().parents[1]
SWEEP = [0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70]
_SPLIT = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+")


class CachedEmbedder(Embedder):
    """Embeds each distinct text once; the scorer's results are unchanged."""

    def __init__(self) -> None:
        self._cache: dict[str, np.ndarray] = {}

    def warm(self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> None:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for text, vector in zip(todo, super().embed(todo, on_batch=on_batch), strict=True):
            self._cache[text] = vector

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        self.warm(texts)
        return np.stack([self._cache[t] for t in texts])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def evidence_index_check(
    claims: list[dict[str, Any]], corpus: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Do the evidence indexes address a split after . ! ? of the abstract?

    Every index must fall inside the split, and the sentence sharing most words with the
    claim should be an evidence sentence far more often than its neighbours are."""
    pairs = out_of_range = 0
    offsets = dict.fromkeys((-1, 0, 1), 0)
    for claim in claims:
        words = set(_WORD.findall(claim["text"].lower()))
        for doc, ev in claim["evidence"].items():
            split = _SPLIT.split(corpus[doc]["text"])
            pairs += 1
            out_of_range += max(ev["sentences"]) >= len(split)
            overlap = [len(words & set(_WORD.findall(s.lower()))) for s in split]
            best = int(np.argmax(overlap))
            for o in offsets:
                offsets[o] += best + o in ev["sentences"]
    return {
        "pairs": pairs,
        "indexes_beyond_split": out_of_range,
        "best_overlap_sentence_is_evidence_at_offset": {str(k): v for k, v in offsets.items()},
    }


def hard_negatives(
    claims: list[dict[str, Any]], corpus: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """The top BM25 abstract for each claim among those it does not cite."""
    import bm25s

    stemmer = english_stemmer()
    ids = list(corpus)
    bm25 = bm25s.BM25()
    bm25.index(
        tokenize([f"{corpus[i]['title']}\n{corpus[i]['text']}" for i in ids], stemmer),
        show_progress=False,
    )
    out = {}
    for claim, tokens in zip(claims, tokenize([c["text"] for c in claims], stemmer), strict=True):
        cited = set(claim["cited_doc_ids"]) | set(claim["evidence"])
        order = np.argsort(-bm25.get_scores(tokens), kind="stable")
        out[claim["_id"]] = next(ids[i] for i in order if ids[i] not in cited)
    return out


def pair(claim: dict[str, Any], condition: str, passage: str) -> dict[str, Any]:
    return {
        "claim_id": claim["_id"],
        "claim": claim["text"],
        "condition": condition,
        "passage": passage,
    }


def build_pairs(
    claims: list[dict[str, Any]], corpus: dict[str, dict[str, Any]], seed: int
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    ids = sorted(corpus)
    with_evidence = [c for c in claims if c["evidence"]]
    hard = hard_negatives(with_evidence, corpus)
    pairs: list[dict[str, Any]] = []
    for claim in claims:
        if not claim["evidence"]:
            for doc in claim["cited_doc_ids"]:
                if doc in corpus:
                    pairs.append(pair(claim, "CITED_NO_EVIDENCE", corpus[doc]["text"]))
            continue
        for doc, ev in claim["evidence"].items():
            split = _SPLIT.split(corpus[doc]["text"])
            pairs.append(pair(claim, ev["label"], corpus[doc]["text"]))
            rationale = " ".join(split[i] for i in sorted(ev["sentences"]))
            pairs.append(pair(claim, f"{ev['label']}_rationale", rationale))
        cited = set(claim["cited_doc_ids"]) | set(claim["evidence"])
        unrelated = rng.choice(ids)
        while unrelated in cited:
            unrelated = rng.choice(ids)
        pairs.append(pair(claim, "UNRELATED_random", corpus[unrelated]["text"]))
        pairs.append(pair(claim, "UNRELATED_hard", corpus[hard[claim["_id"]]]["text"]))
    return pairs


def best_threshold(positive: np.ndarray, negative: np.ndarray) -> dict[str, float]:
    """The threshold (support >= t counts as supported) with the best balanced accuracy."""
    best = {"balanced_accuracy": -1.0}
    for t in np.unique(np.concatenate([positive, negative])):
        row = at_threshold(positive, negative, float(t))
        if row["balanced_accuracy"] > best["balanced_accuracy"]:
            best = row
    return best


def at_threshold(positive: np.ndarray, negative: np.ndarray, t: float) -> dict[str, float]:
    tpr = float(np.mean(positive >= t))
    fpr = float(np.mean(negative >= t))
    return {
        "threshold": round(t, 4),
        "balanced_accuracy": round((tpr + 1 - fpr) / 2, 4),
        "true_positive_rate": round(tpr, 4),
        "false_positive_rate": round(fpr, 4),
    }


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    labels = [1] * len(positive) + [0] * len(negative)
    return round(float(roc_auc_score(labels, np.concatenate([positive, negative]))), 4)


def project_pairs(scorer: GroundednessScorer) -> dict[str, Any]:
    """Supported against contradicted claims of the project's minimal pairs, by domain."""
    rows = read_jsonl(ROOT / "benchmarks" / "data" / "claim_pairs.jsonl")
    judged = [scorer.judge([r["claim"]], [r["passage"]])[0] for r in rows]
    out: dict[str, Any] = {}
    for domain in ["all", *sorted({r["domain"] for r in rows})]:
        mine = [(r, j) for r, j in zip(rows, judged, strict=True) if domain in ("all", r["domain"])]
        sup = np.array([j.score for r, j in mine if r["label"] == "supported"])
        con = np.array([j.score for r, j in mine if r["label"] == "contradicted"])
        out[domain] = {
            "pairs": len(mine),
            "auc_supported_vs_contradicted": auc(sup, con),
            "contradicted_passed_as_supported": round(
                float(np.mean([j.supported for r, j in mine if r["label"] == "contradicted"])), 4
            ),
            "supported_passed": round(
                float(np.mean([j.supported for r, j in mine if r["label"] == "supported"])), 4
            ),
        }
    return out


def with_nli(embedder: Embedder, folder: Path, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """SUPPORT against CONTRADICT (whole abstract and evidence sentences) by the score the
    contradiction check gives, and the project's pairs, with the NLI model in `folder`."""
    scorer = GroundednessScorer(embedder, nli=load_nli(folder))
    scores: dict[str, list[float]] = {}
    for p in pairs:
        if p["condition"].split("_")[0] in ("SUPPORT", "CONTRADICT"):
            (judged,) = scorer.judge([p["claim"]], [p["passage"]])
            scores.setdefault(p["condition"], []).append(judged.score)
    s = {k: np.array(v) for k, v in scores.items()}
    start = time.perf_counter()
    for p in pairs[:50]:
        scorer.judge([p["claim"]], [p["passage"]])
    return {
        "folder": str(folder),
        "auc_support_vs_contradict": auc(s["SUPPORT"], s["CONTRADICT"]),
        "auc_support_vs_contradict_rationale": auc(
            s["SUPPORT_rationale"], s["CONTRADICT_rationale"]
        ),
        "project_claim_pairs": project_pairs(scorer),
        "mean_ms_per_pair_cached_embeddings": round(20 * (time.perf_counter() - start), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--scifact", type=Path, default=ROOT.parent / "shared" / "eval" / "retrieval" / "scifact"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-pairs", type=int, default=100)
    parser.add_argument("--nli-model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    claims = read_jsonl(args.scifact / "queries_train.jsonl")
    corpus = {row["_id"]: row for row in read_jsonl(args.scifact / "corpus.jsonl")}
    claims = [
        c
        for c in claims
        if all(d in corpus for d in c["evidence"]) and any(d in corpus for d in c["cited_doc_ids"])
    ]
    pairs = build_pairs(claims, corpus, args.seed)

    embedder = CachedEmbedder()
    scorer = GroundednessScorer(embedder)
    default = scorer.threshold
    texts = [p["claim"] for p in pairs]
    for p in pairs:
        texts += sentences(p["passage"]) or [p["passage"]]
    distinct = list(dict.fromkeys(texts))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("embedding sentences", total=len(distinct))
        embedder.warm(distinct, on_batch=lambda n: progress.advance(task, n))
        task = progress.add_task("scoring pairs", total=len(pairs))
        for p in pairs:
            p["support"] = float(scorer.support([p["claim"]], [p["passage"]])[0])
            progress.advance(task)

    by_condition: dict[str, list[float]] = {}
    for p in pairs:
        by_condition.setdefault(p["condition"], []).append(p["support"])
    support = {k: np.array(v) for k, v in by_condition.items()}
    order = [
        "SUPPORT",
        "CONTRADICT",
        "UNRELATED_random",
        "UNRELATED_hard",
        "CITED_NO_EVIDENCE",
        "SUPPORT_rationale",
        "CONTRADICT_rationale",
    ]
    result: dict[str, Any] = {
        "benchmark": "groundedness",
        "data": {
            "claims": len(claims),
            "claims_with_evidence": sum(bool(c["evidence"]) for c in claims),
            "corpus_abstracts": len(corpus),
            "evidence_index_check": evidence_index_check(claims, corpus),
        },
        "default_threshold": default,
        "conditions": {
            name: {
                "n": len(support[name]),
                "mean_support": round(float(support[name].mean()), 4),
                "median_support": round(float(np.median(support[name])), 4),
                "flagged_supported_at_default": round(float(np.mean(support[name] >= default)), 4),
            }
            for name in order
        },
    }
    s = support["SUPPORT"]
    result["auc"] = {
        "support_vs_unrelated_random": auc(s, support["UNRELATED_random"]),
        "support_vs_unrelated_hard": auc(s, support["UNRELATED_hard"]),
        "support_vs_cited_no_evidence": auc(s, support["CITED_NO_EVIDENCE"]),
        "support_vs_contradict": auc(s, support["CONTRADICT"]),
        "support_or_contradict_vs_unrelated_hard": auc(
            np.concatenate([s, support["CONTRADICT"]]), support["UNRELATED_hard"]
        ),
    }
    result["support_vs_unrelated_random"] = {
        "best": best_threshold(s, support["UNRELATED_random"]),
        "at_default": at_threshold(s, support["UNRELATED_random"], default),
    }
    result["support_vs_unrelated_hard"] = {
        "best": best_threshold(s, support["UNRELATED_hard"]),
        "at_default": at_threshold(s, support["UNRELATED_hard"], default),
    }

    # Stability: pick the threshold on one half of the claims, apply it to the other.
    ids = sorted({p["claim_id"] for p in pairs})
    random.Random(args.seed).shuffle(ids)
    halves = [set(ids[: len(ids) // 2]), set(ids[len(ids) // 2 :])]

    def half(condition: str, members: set[str]) -> np.ndarray:
        rows = [p for p in pairs if p["condition"] == condition and p["claim_id"] in members]
        return np.array([p["support"] for p in rows])

    stability = []
    for fit, test in (halves, halves[::-1]):
        chosen = best_threshold(half("SUPPORT", fit), half("UNRELATED_random", fit))["threshold"]
        held = at_threshold(half("SUPPORT", test), half("UNRELATED_random", test), chosen)
        stability.append({"chosen_on_one_half": chosen, "other_half": held})
    result["support_vs_unrelated_random"]["split_half_stability"] = stability
    result["flagged_supported_by_threshold"] = [
        {"threshold": t}
        | {name: round(float(np.mean(support[name] >= t)), 4) for name in order[:5]}
        for t in SWEEP
    ]

    result["project_claim_pairs"] = project_pairs(scorer)
    if args.nli_model is not None:
        result["nli"] = with_nli(embedder, args.nli_model, pairs)

    # Timing: the scorer as shipped, embedding claim and passage sentences on every call.
    live = GroundednessScorer()
    live.support([pairs[0]["claim"]], [pairs[0]["passage"]])
    sample = random.Random(args.seed).sample(pairs, min(args.timing_pairs, len(pairs)))
    times = []
    for p in sample:
        start = time.perf_counter()
        live.support([p["claim"]], [p["passage"]])
        times.append(time.perf_counter() - start)
    result["timing"] = {
        "pairs": len(times),
        "p50_ms_per_claim_passage_pair": round(1000 * statistics.median(times), 2),
        "mean_passage_sentences": round(
            statistics.mean(len(sentences(p["passage"]) or [1]) for p in sample), 2
        ),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
