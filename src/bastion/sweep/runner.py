"""Running candidates through the real pipeline, level by level of concurrency.

A candidate is a registered model (a tuned one, another quantization, anything the
registry serves) with decoding settings. Each (candidate, concurrency) pair runs every row
of the suite with that many requests in flight, and is written to its own JSON file as
soon as it is done, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bastion.access import Principal
from bastion.apps import app_specs, run_app
from bastion.errors import BadRequest, BastionError
from bastion.models import ChatMessage, GenerationParams
from bastion.observability import resident_memory_bytes
from bastion.pipeline import ChatRequest
from bastion.platform import Platform
from bastion.sweep.suites import AppSuite, TaskSuite

SETTINGS = {"temperature": float, "top_p": float, "max_tokens": int}


@dataclass(frozen=True)
class Candidate:
    model: str
    variant: str = "default"
    settings: dict[str, float] = field(default_factory=dict)  # temperature, top_p, max_tokens

    @property
    def name(self) -> str:
        return self.model if self.variant == "default" else f"{self.model}+{self.variant}"


def candidates(models: list[str], variants: list[str]) -> list[Candidate]:
    """Every model with every variant; a variant is NAME:key=value,key=value."""
    parsed = [("default", {})] if not variants else [_variant(v) for v in variants]
    return [Candidate(m, name, settings) for m in models for name, settings in parsed]


def _variant(spec: str) -> tuple[str, dict[str, float]]:
    name, _, body = spec.partition(":")
    settings: dict[str, float] = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        if key not in SETTINGS:
            raise BadRequest(f"variant {spec!r}: {key!r} is not one of {', '.join(SETTINGS)}")
        try:
            settings[key] = SETTINGS[key](value)
        except ValueError:
            raise BadRequest(f"variant {spec!r}: {key}={value!r} is not a number") from None
    if not name or not settings:
        raise BadRequest(
            f"variant {spec!r}: write NAME:key=value[,key=value], e.g. t0:temperature=0"
        )
    return name, settings


@dataclass
class Outcome:
    """One row's request."""

    latency_ms: float
    quality: float | None = None
    ttft_ms: float | None = None
    decode_s: float | None = None  # the model's, first token to last (streamed tasks)
    completion_tokens: int = 0
    prompt_tokens: int = 0
    flagged: bool = False  # a guard flagged, redacted or blocked something
    error: str | None = None


class _PeakMemory:
    """The process's resident memory, sampled every 50 ms while a level runs."""

    def __init__(self) -> None:
        self.peak = resident_memory_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, resident_memory_bytes())

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_memory_bytes())


def run_level(
    platform: Platform,
    suite: AppSuite | TaskSuite,
    candidate: Candidate,
    principal: Principal,
    concurrency: int,
    on_row: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Every row of the suite with `concurrency` requests in flight; the figures."""
    rows = suite.rows()
    if isinstance(suite, AppSuite):
        if candidate.settings:
            raise BadRequest(
                f"suite {suite.name} runs the app {suite.app}, which sets its own decoding; "
                "sweep its models without variants"
            )
        spec = app_specs().get(suite.app)
        if spec is None or spec.score is None:
            raise BadRequest(
                f"suite {suite.name}: no app '{suite.app}' with a scorer is registered"
            )

    def one(row: dict[str, Any]) -> Outcome:
        try:
            if isinstance(suite, AppSuite):
                return _app_row(platform, suite, candidate, principal, row)
            return _task_row(platform, suite, candidate, principal, row)
        finally:
            on_row()

    started = time.perf_counter()
    with _PeakMemory() as memory, ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(one, rows))
    wall = time.perf_counter() - started
    return summarize(outcomes, wall, memory.peak, candidate, concurrency)


def _app_row(
    platform: Platform,
    suite: AppSuite,
    candidate: Candidate,
    principal: Principal,
    row: dict[str, Any],
) -> Outcome:
    spec = app_specs()[suite.app]
    assert spec.score is not None
    started = time.perf_counter()
    try:
        result = run_app(
            platform, suite.app, row.get("input", {}), principal, model=candidate.model
        )
    except BastionError as exc:
        return Outcome((time.perf_counter() - started) * 1000, error=exc.message)
    latency = (time.perf_counter() - started) * 1000
    scores = spec.score(result.output, row.get("expected") or {})
    if suite.quality not in scores:
        raise BadRequest(
            f"suite {suite.name}: the app's scores are {', '.join(scores)}, not {suite.quality!r}"
        )
    calls = [platform.audit.get(t) for t in result.calls]
    return Outcome(
        latency,
        quality=scores[suite.quality],
        prompt_tokens=sum(c.get("prompt_tokens") or 0 for c in calls),
        completion_tokens=sum(c.get("completion_tokens") or 0 for c in calls),
        flagged=any(_flagged(c.get("verdicts") or []) for c in calls),
    )


def _task_row(
    platform: Platform,
    suite: TaskSuite,
    candidate: Candidate,
    principal: Principal,
    row: dict[str, Any],
) -> Outcome:
    params = GenerationParams(
        temperature=candidate.settings.get("temperature"),
        top_p=candidate.settings.get("top_p"),
        max_tokens=int(candidate.settings.get("max_tokens", suite.max_tokens)),
    )
    request = ChatRequest(
        [ChatMessage("user", suite.request_text(row))],
        params,
        candidate.model,
        suite.app,
        stream=True,
    )
    started = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    try:
        pipeline = platform.pipeline
        for event in pipeline.open_stream(pipeline.prepare(request, None, principal)):
            if event.text and first is None:
                first = time.perf_counter()
            pieces.append(event.text)
            last = event
    except BastionError as exc:
        return Outcome((time.perf_counter() - started) * 1000, error=exc.message)
    latency = (time.perf_counter() - started) * 1000
    trust = (last.bastion or {}).get("trust", {})
    return Outcome(
        latency,
        quality=suite.score("".join(pieces), row),
        ttft_ms=None if first is None else (first - started) * 1000,
        decode_s=last.decode_s,
        prompt_tokens=last.prompt_tokens,
        completion_tokens=last.completion_tokens,
        flagged=trust.get("action", "allow") != "allow",
    )


def _flagged(verdicts: list[dict[str, Any]]) -> bool:
    return any(v.get("action", "allow") != "allow" for v in verdicts)


def summarize(
    outcomes: list[Outcome], wall_s: float, peak_rss: int, candidate: Candidate, concurrency: int
) -> dict[str, Any]:
    done = [o for o in outcomes if o.error is None]
    latencies = sorted(o.latency_ms for o in done)
    ttfts = sorted(o.ttft_ms for o in done if o.ttft_ms is not None)
    tokens = sum(o.completion_tokens for o in done)
    return {
        "candidate": candidate.name,
        "model": candidate.model,
        "variant": candidate.variant,
        "settings": candidate.settings,
        "concurrency": concurrency,
        "requests": len(outcomes),
        "errors": len(outcomes) - len(done),
        "error_examples": sorted({o.error for o in outcomes if o.error})[:3],
        "quality": round(statistics.fmean(o.quality for o in done if o.quality is not None), 4)
        if any(o.quality is not None for o in done)
        else None,
        "latency_ms": _percentiles(latencies),
        "ttft_ms": _percentiles(ttfts),
        **_token_rate(done),
        "requests_per_s": round(len(outcomes) / wall_s, 4),
        "prompt_tokens": sum(o.prompt_tokens for o in done),
        "completion_tokens": tokens,
        "guard_flag_rate": round(sum(o.flagged for o in done) / len(done), 4) if done else None,
        "peak_rss_gb": round(peak_rss / 1e9, 3),
        "wall_s": round(wall_s, 2),
    }


def _token_rate(done: list[Outcome]) -> dict[str, Any]:
    """Tokens a second: the model's decoding where its time is known (streamed tasks: the
    tokens after the first over first-to-last-token time; the client's first token may
    come much later, when the output guards hold the answer back), else answer tokens per
    second of request time (apps, run whole and over several calls)."""
    timed = [o for o in done if o.decode_s]
    if timed:
        tokens = sum(max(o.completion_tokens - 1, 0) for o in timed)
        return {"tokens_per_s": round(tokens / sum(o.decode_s or 0 for o in timed), 2),
                "tokens_per_s_basis": "decode"}  # fmt: skip
    seconds = sum(o.latency_ms for o in done) / 1000
    return {
        "tokens_per_s": round(sum(o.completion_tokens for o in done) / seconds, 2)
        if seconds > 0
        else None,
        "tokens_per_s_basis": "request",
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    return {
        "p50": round(statistics.median(values), 1),
        "p95": round(values[min(len(values) - 1, int(0.95 * len(values)))], 1),
    }


def result_path(out: Path, candidate: Candidate, concurrency: int) -> Path:
    slug = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in candidate.name)
    return out / "levels" / f"{slug}@{concurrency}.json"


def sweep(
    platform: Platform,
    suite: AppSuite | TaskSuite,
    chosen: list[Candidate],
    principal: Principal,
    levels: list[int],
    out: Path,
    on_row: Callable[[], None] = lambda: None,
    on_level: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Every candidate at every concurrency level; a level already written under `out`
    (same suite) is read back, not run again."""
    results = []
    for candidate in chosen:
        for level in levels:
            path = result_path(out, candidate, level)
            if path.is_file():
                kept = json.loads(path.read_text())
                if kept.get("suite") == suite.name:
                    results.append(kept)
                    on_level(f"{candidate.name} at {level}: kept from an earlier run")
                    continue
            on_level(f"{candidate.name} at {level} in flight")
            found = {
                "suite": suite.name,
                **run_level(platform, suite, candidate, principal, level, on_row),
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_text(json.dumps(found, indent=2))
            partial.replace(path)
            results.append(found)
    return results


__all__ = ["Candidate", "Outcome", "asdict", "candidates", "run_level", "summarize", "sweep"]
