"""`bastion eval app`: run an app over labelled cases through the real pipeline and score
each output with the app's own scorer; the harness the cost-to-serve sweeps reuse.

A case file is JSON Lines: `{"id": ..., "input": {...}, "expected": {...}}` per line.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.access import Principal
from bastion.apps import app_specs, run_app
from bastion.errors import BadRequest, BastionError, NotFound
from bastion.labelled.datasets import json_lines, write_jsonl
from bastion.platform import Platform


@dataclass(frozen=True)
class AppCase:
    id: str
    input: dict[str, Any]
    expected: dict[str, Any]


def read_cases(path: Path) -> list[AppCase]:
    """The cases of a JSONL file; a malformed line is an error naming it."""
    cases = []
    for n, row in json_lines(path):
        if not isinstance(row.get("input"), dict):
            raise BadRequest(f'{path}:{n} needs {{"input": {{...}}, "expected": {{...}}}}')
        cases.append(AppCase(str(row.get("id", n)), row["input"], row.get("expected") or {}))
    if not cases:
        raise BadRequest(f"{path} holds no cases")
    return cases


def evaluate_app(
    platform: Platform,
    name: str,
    cases: list[AppCase],
    principal: Principal,
    *,
    model: str | None = None,
    predictions: Path | None = None,
    on_case: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run every case as `principal`; mean of each score the app gives, errors counted (a
    case that fails scores nothing), latency per case. `predictions` gets one JSON line a
    case: its input, output or error, scores, run id and latency."""
    spec = app_specs().get(name)
    if spec is None:
        raise NotFound(f"no app named '{name}' is registered")
    scores: dict[str, list[float]] = defaultdict(list)
    latencies, errors, rows = [], 0, []
    for case in cases:
        started = time.perf_counter()
        row: dict[str, Any] = {"id": case.id, "input": case.input}
        try:
            result = run_app(platform, name, case.input, principal, model=model)
        except BastionError as exc:
            errors += 1
            row["error"] = exc.message
        else:
            row["run_id"], row["output"] = result.run_id, result.output.model_dump(mode="json")
            found = spec.score(result.output, case.expected) if spec.score else {}
            row["scores"] = found
            for key, value in found.items():
                if value is not None:
                    scores[key].append(value)
        row["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        latencies.append(row["latency_ms"])
        rows.append(row)
        if on_case is not None:
            on_case()
    if predictions is not None:
        write_jsonl(predictions, rows)
    ordered = sorted(latencies)
    return {
        "app": name,
        "model": model or "(the app's)",
        "cases": len(cases),
        "errors": errors,
        "scores": {k: round(statistics.fmean(v), 4) for k, v in sorted(scores.items())},
        "scored": {k: len(v) for k, v in sorted(scores.items())},
        "latency_ms": {
            "p50": round(statistics.median(ordered), 1),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        },
    }
