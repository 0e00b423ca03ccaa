"""Candidate sweeps (`bastion sweep`): which model does this job well enough at the lowest
cost, measured on the company's own tasks through the real pipeline.

    suites.py   what is measured: an app's labelled cases, or a prompt template with a metric
    runner.py   candidates (models with decoding settings) at each concurrency, resumable
    report.py   cost per 1,000 requests, the Pareto front, the recommendation, the HTML page
    distributed.py  the same on a Ray cluster, each candidate a task with its resources
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.access import Principal
from bastion.platform import Platform
from bastion.sweep.report import add_tuning_cost, build_report, cost_per_1k, render_html
from bastion.sweep.runner import Candidate, sweep
from bastion.sweep.suites import AppSuite, TaskSuite

THIS_MACHINE = "this-machine"


@dataclass(frozen=True)
class SweepPlan:
    suite: AppSuite | TaskSuite
    candidates: list[Candidate]
    levels: list[int]  # requests in flight
    out: Path
    quality_bar: float | None = None
    p95_ms: float | None = None
    price_per_hour: float | None = None  # this machine's; default capacity.prices
    ray_address: str | None = None  # default sweep.ray_address; None: in-process
    # Requests each candidate is to serve: a tuned candidate's one-off fine-tuning cost is
    # spread over them in its cost per 1,000 requests (None: shown, not spread).
    volume: int | None = None


def run_sweep(
    platform: Platform,
    plan: SweepPlan,
    principal: Principal,
    on_row: Callable[[], None] = lambda: None,
    on_level: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run (or resume) the sweep; write report.json and report.html under `plan.out`."""
    for candidate in plan.candidates:
        platform.registry.config(candidate.model, principal.tenant)  # unknown: fail first
    settings = platform.config.sweep
    address = plan.ray_address or settings.ray_address
    if address:
        from bastion.sweep.distributed import sweep_on_ray

        levels = sweep_on_ray(
            address, platform.home, plan.suite, plan.candidates, principal, plan.levels,
            plan.out, settings.cpus_per_candidate, settings.gpus_per_candidate, on_level,
        )  # fmt: skip
    else:
        levels = sweep(
            platform, plan.suite, plan.candidates, principal, plan.levels, plan.out, on_row,
            on_level,
        )  # fmt: skip
    hourly = plan.price_per_hour
    if hourly is None:
        hourly = platform.config.capacity.prices.get(THIS_MACHINE)
    for level in levels:
        price = platform.registry.config(level["model"], principal.tenant).price
        level["cost_per_1k_requests"] = cost_per_1k(level, hourly, price)
        tuned = platform.tuned.find(level["model"])
        if tuned is not None:
            add_tuning_cost(level, tuned.metrics.get("training", {}), hourly, plan.volume)
    report = build_report(plan.suite.name, levels, plan.quality_bar, plan.p95_ms)
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "report.json").write_text(json.dumps(report, indent=2))
    (plan.out / "report.html").write_text(render_html(report))
    return report
