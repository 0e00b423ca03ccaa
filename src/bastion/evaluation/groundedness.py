"""Groundedness on labelled claims: each claim judged against its passage as the pipeline's
groundedness check judges an answer sentence against the sources it was shown."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bastion.errors import BadRequest
from bastion.grounding.groundedness import GroundednessScorer
from bastion.labelled.datasets import json_lines, write_jsonl
from bastion.labelled.metrics import binary_scores, latency_ms

LABELS = {"supported": 1, "contradicted": 0}


def read_claims(path: Path) -> list[dict[str, Any]]:
    """JSON lines with "claim" and "passage" strings; any other keys are kept."""
    if not path.is_file():
        raise BadRequest(f"{path} does not exist or is not a file")
    rows = []
    for number, row in json_lines(path):
        if not all(isinstance(row.get(k), str) and row[k].strip() for k in ("claim", "passage")):
            raise BadRequest(f'{path}:{number}: expected {{"claim": str, "passage": str, ...}}')
        rows.append(row)
    if not rows:
        raise BadRequest(f"{path} has no rows")
    return rows


def evaluate_groundedness(
    rows: Sequence[dict[str, Any]],
    predictions: Path,
    scorer: GroundednessScorer,
    on_row: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Write one `{"score", "supported"}` line per row to `predictions` (all or nothing) and
    return latency and, when every row has a label ("supported" or "contradicted"), the ROC
    AUC of the score and the precision and recall of the "supported" verdict."""
    lines, scores, verdicts, seconds = [], [], [], []
    for row in rows:
        started = time.perf_counter()
        (judged,) = scorer.judge([row["claim"]], [row["passage"]])
        seconds.append(time.perf_counter() - started)
        scores.append(judged.score)
        verdicts.append(judged.supported)
        lines.append({"score": round(judged.score, 4), "supported": judged.supported})
        if on_row is not None:
            on_row()
    write_jsonl(predictions, lines)
    result: dict[str, Any] = {"rows": len(rows), **latency_ms(seconds)}
    named = [r.get("label") for r in rows]
    if all(isinstance(n, str) and n in LABELS for n in named) and len(set(named)) == 2:
        from sklearn.metrics import roc_auc_score

        labels = [LABELS[str(n)] for n in named]
        result["roc_auc"] = round(float(roc_auc_score(labels, scores)), 4)
        result["supported"] = binary_scores(labels, verdicts)
    return result
