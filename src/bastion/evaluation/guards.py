"""Guard evaluations: run a guard over labelled data, time it, score it, keep predictions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.progress import track

from bastion.guards.base import Guard, GuardContext, Stage, Verdict
from bastion.guards.pii.detector import PiiDetector
from bastion.labelled.datasets import PiiExample
from bastion.labelled.metrics import binary_scores, latency_ms, span_scores


def evaluate_pii(
    detector: PiiDetector, examples: list[PiiExample], predictions: Path | None = None
) -> dict[str, Any]:
    """Span-level scores and latency; rows asking for types the detector lacks are skipped
    and counted. `predictions` gets one `{"spans": [...]}` line per row, in original offsets."""
    detector.load()
    supported = set(detector.entities)
    kept, predicted, seconds, skipped = [], [], [], 0
    lines = []
    for example in track(examples, description="PII", transient=True):
        wanted = example.entity_types
        if wanted is not None and not set(wanted) <= supported:
            skipped += 1
            lines.append({"spans": [], "skipped": True})
            continue
        start = time.perf_counter()
        spans = detector.detect(example.text, wanted)
        seconds.append(time.perf_counter() - start)
        kept.append(example.spans)
        predicted.append([(s.start, s.end) for s in spans])
        lines.append(
            {
                "spans": [
                    {"entity_type": s.entity_type, "start": s.start, "end": s.end} for s in spans
                ]
            }
        )
    if predictions is not None:
        predictions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = span_scores(kept, predicted)
    result.update(latency_ms(seconds) if seconds else {})
    result.update(rows=len(examples), evaluated=len(kept), skipped_unsupported_types=skipped)
    return result


def evaluate_binary(
    guard: Guard,
    rows: list[tuple[str, int]],
    predictions: Path | None = None,
    *,
    stage: Stage = "input",
    describe: Callable[[Verdict], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Precision, recall, F1, false-positive rate and latency of a guard on `(text, label)`
    rows (label 1: the guard should act); `predictions` gets `{"score", "flagged"}` lines,
    with what `describe` adds (the work a copy was found in, say)."""
    ctx = GuardContext("evaluation", "evaluation", stage)
    flagged, seconds, lines = [], [], []
    for text, _ in track(rows, description=guard.name, transient=True):
        start = time.perf_counter()
        verdict = guard.check(text, ctx)
        seconds.append(time.perf_counter() - start)
        hit = verdict.action in ("block", "flag", "redact")
        flagged.append(hit)
        line = {"score": round(verdict.score, 4), "flagged": hit}
        lines.append({**line, **describe(verdict)} if describe else line)
    if predictions is not None:
        predictions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = binary_scores([label for _, label in rows], flagged)
    result.update(latency_ms(seconds) if seconds else {})
    return result
