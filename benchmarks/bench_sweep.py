"""Candidate sweeps on the demo company: which model should do each job, and what the
sweep's harness costs.

Two app suites, written from the project's labelled cases: segments (every --every-th of
the 113 requests of src/bastion/apps/segment/eval/requests.jsonl, run as alice, quality =
exact member-set match) and service replies (the first --cases support cases with their
relevant articles, run as dave, quality = the reply's support by its sources). Candidates:
the default model and the installed larger ones (--models), at each --concurrency, this
machine priced at --price-per-hour (an on-demand 2-vCPU cloud VM by default). The report
and its Pareto plot are written under --out (docs/sweeps in the repository).

Overhead: --overhead-prompts short prompts to the default model through the sweep's task
runner and straight through the pipeline (the same requests, alternated twice): the
harness's threads, memory sampler and bookkeeping as a share of the latency.

Usage: python benchmarks/bench_sweep.py [--models qwen2.5-coder-0.5b,qwen2.5-coder-1.5b]
    [--every 8] [--cases 12] [--concurrency 1,2] [--out docs/sweeps] [--quality-bar 0.5]
"""

from __future__ import annotations

import argparse
import json
import platform as machine
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_apps import open_demo

from bastion.apps.segment import EVAL_REQUESTS
from bastion.apps.service_reply import demo_cases
from bastion.grounding.ingest import stored_records
from bastion.models import ChatMessage, GenerationParams
from bastion.models.install import CATALOGUE
from bastion.pipeline import ChatRequest
from bastion.platform import Platform
from bastion.sweep import SweepPlan, run_sweep
from bastion.sweep.report import pareto_figure
from bastion.sweep.runner import Candidate, run_level
from bastion.sweep.suites import AppSuite, TaskSuite

ROOT = Path(__file__).resolve().parents[1]
KEPT = ("candidate", "concurrency", "quality", "cost_per_1k_requests", "latency_ms",
        "requests_per_s", "errors", "peak_rss_gb")  # fmt: skip
PROMPTS = [f"In one sentence, what does a warehouse do with order {n}?" for n in range(40)]


def suites(platform: Platform, folder: Path, every: int, cases: int) -> list[AppSuite]:
    requests = EVAL_REQUESTS.read_text().splitlines()[::every]
    (folder / "segments.jsonl").write_text("\n".join(requests) + "\n")
    records = stored_records(platform.db, "acme", "interaction")
    rows = demo_cases(
        [(r.source_id, str(r.fields["subject"])) for r in records if r.source == "support-cases"]
    )[:cases]
    (folder / "replies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [
        AppSuite.model_validate(
            {"name": "segments", "kind": "app", "app": "segment", "data": folder / "segments.jsonl",
             "quality": "exact_match", "as": "acme/alice"}
        ),
        AppSuite.model_validate(
            {"name": "service-replies", "kind": "app", "app": "service-reply",
             "data": folder / "replies.jsonl", "quality": "support", "as": "acme/dave"}
        ),
    ]  # fmt: skip


def overhead(platform: Platform, model: str, folder: Path, prompts: int) -> dict[str, Any]:
    """The same requests through the sweep's runner and straight through the pipeline."""
    rows = [{"text": p} for p in PROMPTS[:prompts]]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = TaskSuite.model_validate(
        {"name": "overhead", "kind": "task", "data": folder / "prompts.jsonl", "prompt": "{text}",
         "metric": "json_valid", "max_tokens": 24}
    )  # fmt: skip
    alice = platform.access.principal("acme/alice")
    params = GenerationParams(temperature=0.0, max_tokens=24)  # greedy: the same answers

    def direct() -> float:
        latencies = []
        for row in rows:
            request = ChatRequest(
                [ChatMessage("user", row["text"])], params, model, "chat", stream=True
            )
            started = time.perf_counter()
            for _ in platform.pipeline.open_stream(platform.pipeline.prepare(request, None, alice)):
                pass
            latencies.append((time.perf_counter() - started) * 1000)
        return statistics.median(latencies)

    direct_p50, harness_p50 = [], []
    greedy = Candidate(model, "greedy", {"temperature": 0.0})
    for _ in range(3):
        direct_p50.append(direct())
        harness_p50.append(run_level(platform, suite, greedy, alice, 1)["latency_ms"]["p50"])
    return {
        "prompts": prompts,
        "pipeline_p50_ms": [round(x, 1) for x in direct_p50],
        "sweep_p50_ms": harness_p50,
        "overhead": round(statistics.median(harness_p50) / statistics.median(direct_p50) - 1, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    parser.add_argument("--every", type=int, default=8)
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--concurrency", default="1,2")
    parser.add_argument("--price-per-hour", type=float, default=0.085)
    parser.add_argument("--quality-bar", type=float, default=0.5)
    parser.add_argument("--overhead-prompts", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "sweeps")
    args = parser.parse_args()
    larger = [m for m in CATALOGUE if m.name in args.models.split(",")]
    levels = [int(n) for n in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        platform, setup_s = open_demo(home, larger, 1.0)
        default = platform.config.resolved_default_model
        result: dict[str, Any] = {
            "benchmark": "sweep",
            "machine": f"{machine.machine()}, {machine.python_version()}",
            "demo_setup_s": round(setup_s, 1),
            "overhead": overhead(platform, default, home, args.overhead_prompts),
        }
        chosen = [Candidate(default), *(Candidate(m.name) for m in larger)]
        for suite in suites(platform, home, args.every, args.cases):
            assert suite.as_user is not None
            out = home / "sweeps" / suite.name
            plan = SweepPlan(
                suite, chosen, levels, out, args.quality_bar, price_per_hour=args.price_per_hour
            )
            started = time.perf_counter()
            report = run_sweep(platform, plan, platform.access.principal(suite.as_user))
            result[suite.name] = {
                "seconds": round(time.perf_counter() - started, 1),
                "recommendation": report["recommendation"],
                "pareto_front": report["pareto_front"],
                "levels": [{k: lv[k] for k in KEPT} for lv in report["levels"]],
            }
            args.out.mkdir(parents=True, exist_ok=True)
            for name in ("report.html", "report.json"):
                shutil.copy(out / name, args.out / f"{suite.name}-{name}")
            figure = pareto_figure(report)
            if figure is not None:
                figure.savefig(args.out / f"{suite.name}-pareto.png", dpi=90)
        platform.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
