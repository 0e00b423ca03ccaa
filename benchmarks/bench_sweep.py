"""Candidate sweeps on the demo company: which model should do each job, and what the
sweep's harness costs.

Two app suites, written from the project's labelled cases: segments (every --every-th of
the 113 requests of src/bastion/apps/segment/eval/requests.jsonl, run as alice, quality =
exact member-set match) and service replies (the first --cases support cases with their
relevant articles, run as dave, quality = the reply's support by its sources). Candidates:
the default model and the installed larger ones (--models), at each --concurrency, this
machine priced at --price-per-hour (an on-demand 2-vCPU cloud VM by default). The report
and its Pareto plot are written under --out (docs/sweeps in the repository).

A tuned candidate (--tune-steps N): a LoRA of the default model trained on the first
--tune-rows DialogSum dialogues the way `bastion tune run` trains one (dataset build, the
forgetting guard, registration), swept beside the others, with a third suite: summaries
of the next --summaries DialogSum dialogues (ROUGE-L against the reference), the job the
LoRA was tuned for. Its fine-tuning time, at the machine's price, is spread over --volume
requests in its cost. (The segment app holds answers to a JSON schema while decoding,
which the transformers backend that serves tuned models does not do: it is not swept
there.)

Overhead: --overhead-prompts short prompts to the default model through the sweep's task
runner and straight through the pipeline (the same requests, greedy, alternated three
times): the harness's threads, memory sampler and bookkeeping as a share of the latency.
`--only overhead` measures that alone; `--only summaries` sweeps the summaries suite alone
(with --tune-steps: the tuned candidate against the others on its own job).

Usage: python benchmarks/bench_sweep.py [--models qwen2.5-coder-0.5b,qwen2.5-coder-1.5b]
    [--every 8] [--cases 12] [--concurrency 1,2] [--out docs/sweeps] [--quality-bar 0.5]
    [--tune-steps 60 --tune-rows 400 --summaries 10 --volume 100000]
    [--only overhead|summaries]
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
KEPT = (
    "candidate",
    "concurrency",
    "quality",
    "cost_per_1k_requests",
    "latency_ms",
    "requests_per_s",
    "errors",
    "peak_rss_gb",
    "serving_cost_per_1k_requests",
    "tuning_cost",
)  # fmt: skip (the last two: a tuned candidate's only)
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


DIALOGS = ROOT.parent / "shared" / "eval" / "summarization" / "dialogsum_dev.jsonl"
INSTRUCTION = "Summarize the dialogue in one or two sentences.\n\n"  # as bench_tuning_dialogsum
RECIPE: dict[str, Any] = {
    "method": "lora", "rank": 8, "alpha": 16, "dropout": 0.0,
    "target_modules": ("q_proj", "v_proj"), "learning_rate": 1e-3, "batch_size": 4,
    "max_length": 384, "warmup": 0.05, "eval_every": 20, "patience": 2, "seed": 0,
}  # fmt: skip


def tuned_candidate(platform: Platform, home: Path, steps: int, rows: int) -> dict[str, Any]:
    """A LoRA of the default model on DialogSum summaries, trained, checked by the
    forgetting guard and registered as `bastion tune run` does."""
    from dataclasses import replace

    from bastion.tuning.dataset import build_dataset, from_jsonl
    from bastion.tuning.job import TuningRequest, run
    from bastion.tuning.train import TrainConfig

    pool = home / "dialogsum-pool.jsonl"
    with DIALOGS.open(encoding="utf-8") as source, pool.open("w", encoding="utf-8") as out:
        for line in list(source)[:rows]:
            row = json.loads(line)
            completion = {"prompt": INSTRUCTION + row["dialogue"], "completion": row["summary"]}
            out.write(json.dumps(completion) + "\n")
    data = build_dataset([from_jsonl(pool, licence="CC-BY-NC-SA-4.0")], fractions=(0.8, 0.1, 0.1))
    folder = data.save(home / "dialogsum-dataset")
    ctx = platform.tuning()
    tuning = ctx.config.tuning
    forgetting = tuning.forgetting.model_copy(update={"task_examples": 20})
    update = {"tuning": tuning.model_copy(update={"forgetting": forgetting})}
    ctx = replace(ctx, config=ctx.config.model_copy(update=update))
    platform.access.create_key(tenant="acme", user="tuner", role="admin")
    request = TuningRequest(
        "smollm2-dialogsum-lora",
        platform.config.resolved_default_model,
        folder,
        TrainConfig(**RECIPE, max_steps=steps),
    )
    started = time.perf_counter()
    record, report = run(ctx, platform.access.principal("acme/tuner"), request, progress=False)
    return {
        "name": record.name,
        "status": record.status,
        "seconds": round(time.perf_counter() - started, 1),
        "training_seconds": record.metrics["training"]["seconds"],
        "forgetting": report.to_dict(),
    }


def summaries_suite(folder: Path, start: int, count: int) -> TaskSuite:
    with DIALOGS.open(encoding="utf-8") as source:
        rows = [json.loads(line) for line in list(source)[start : start + count]]
    (folder / "summaries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return TaskSuite.model_validate(
        {"name": "summaries", "kind": "task", "app": "summarize",
         "data": folder / "summaries.jsonl", "prompt": INSTRUCTION + "{dialogue}",
         "reference": "summary", "metric": "rouge_l", "max_tokens": 60}
    )  # fmt: skip


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
    parser.add_argument("--tune-steps", type=int, default=0, help="0: no tuned candidate")
    parser.add_argument("--tune-rows", type=int, default=400)
    parser.add_argument("--summaries", type=int, default=10)
    parser.add_argument("--volume", type=int, default=100_000)
    parser.add_argument("--only", choices=["overhead", "summaries"])
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
        }
        if args.only != "summaries":
            result["overhead"] = overhead(platform, default, home, args.overhead_prompts)
        if args.only == "overhead":
            platform.close()
            print(json.dumps(result, indent=2))
            return
        chosen = [Candidate(default), *(Candidate(m.name) for m in larger)]
        # --only summaries: the tuned candidate's own job alone
        apps = [] if args.only == "summaries" else suites(platform, home, args.every, args.cases)
        plans: list[tuple[AppSuite | TaskSuite, list[Candidate]]] = [(s, chosen) for s in apps]
        if args.tune_steps:
            result["tuned"] = tuned = tuned_candidate(
                platform, home, args.tune_steps, args.tune_rows
            )
            with_tuned = [*chosen, Candidate(tuned["name"])]
            plans = [(s, with_tuned if s.name != "segments" else chosen) for s, _ in plans]
            plans.append((summaries_suite(home, args.tune_rows, args.summaries), with_tuned))
        for suite, candidates in plans:
            out = home / "sweeps" / suite.name
            plan = SweepPlan(
                suite, candidates, levels, out, args.quality_bar,
                price_per_hour=args.price_per_hour, volume=args.volume,
            )  # fmt: skip
            who = suite.as_user if isinstance(suite, AppSuite) else None
            started = time.perf_counter()
            report = run_sweep(platform, plan, platform.access.principal(who or "acme/alice"))
            result[suite.name] = {
                "seconds": round(time.perf_counter() - started, 1),
                "recommendation": report["recommendation"],
                "pareto_front": report["pareto_front"],
                "levels": [{k: lv[k] for k in KEPT if k in lv} for lv in report["levels"]],
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
