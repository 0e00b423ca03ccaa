"""Metrics shared by the guards' training, the evaluations and the benchmarks."""

from __future__ import annotations

import functools
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bastion.labelled.datasets import GoldSpan


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def f_beta(precision: float, recall: float, beta: float) -> float:
    if precision + recall == 0:
        return 0.0
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)


def span_scores(
    gold: Sequence[Sequence[GoldSpan]], predicted: Sequence[Sequence[tuple[int, int]]]
) -> dict[str, Any]:
    """Type-agnostic span scores, as masking needs them: a gold span is found when predicted
    spans cover at least half of it; a predicted span is right when it overlaps a gold one."""
    found = total = right = guessed = 0
    seen: Counter[str] = Counter()
    hit: Counter[str] = Counter()
    for gold_spans, pred_spans in zip(gold, predicted, strict=True):
        for g in gold_spans:
            total += 1
            seen[g.entity_type] += 1
            if sum(_overlap((g.start, g.end), p) for p in pred_spans) >= 0.5 * (g.end - g.start):
                found += 1
                hit[g.entity_type] += 1
        for p in pred_spans:
            guessed += 1
            right += any(_overlap(p, (g.start, g.end)) > 0 for g in gold_spans)
    precision = right / guessed if guessed else 0.0
    recall = found / total if total else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f_beta(precision, recall, 1), 4),
        "f2": round(f_beta(precision, recall, 2), 4),
        "gold_spans": total,
        "predicted_spans": guessed,
        "recall_by_type": {t: round(hit[t] / seen[t], 3) for t in sorted(seen)},
    }


def latency_ms(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 3),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
    }


def binary_scores(labels: Sequence[int], flagged: Sequence[bool]) -> dict[str, Any]:
    tp = sum(1 for y, f in zip(labels, flagged, strict=True) if y and f)
    fp = sum(1 for y, f in zip(labels, flagged, strict=True) if not y and f)
    fn = sum(1 for y, f in zip(labels, flagged, strict=True) if y and not f)
    negatives = sum(1 for y in labels if not y)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "rows": len(labels),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f_beta(precision, recall, 1), 4),
        "false_positive_rate": round(fp / negatives, 4) if negatives else 0.0,
    }


ROUGE_KINDS = ("rouge1", "rouge2", "rougeL")


def rouge(summary: str, reference: str, kinds: tuple[str, ...] = ROUGE_KINDS) -> dict[str, float]:
    """ROUGE F1 (0-1) of a summary against its reference, with Porter stemming as the
    datasets' papers report (rouge-score)."""
    return {
        kind: found.fmeasure
        for kind, found in _rouge_scorer(kinds).score(reference, summary).items()
    }


@functools.cache
def _rouge_scorer(kinds: tuple[str, ...]) -> Any:
    from rouge_score import rouge_scorer  # 2 s to import (nltk): only when a text is scored

    return rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
