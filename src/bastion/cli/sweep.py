"""`bastion sweep`: candidates through a suite, at each concurrency, with a recommendation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bastion.cli.common import _platform, _progress, console, reports_errors
from bastion.errors import BadRequest


@reports_errors
def sweep(
    suite: Annotated[Path, typer.Option(help="A suite file (YAML: an app's cases or a task).")],
    models: Annotated[str, typer.Option(help="Comma-separated registered models.")],
    out: Annotated[Path, typer.Option(help="Folder for the levels, report.json and .html.")],
    as_user: Annotated[
        str | None, typer.Option("--as", help="TENANT/USER (default: the suite's `as`).")
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(help="NAME:key=value,... decoding settings (temperature, top_p, max_tokens)."),
    ] = None,
    concurrency: Annotated[str, typer.Option(help="Requests in flight, e.g. 1,4,8.")] = "1",
    quality_bar: Annotated[
        float | None, typer.Option(help="The quality a candidate must reach to be chosen.")
    ] = None,
    p95_ms: Annotated[
        float | None, typer.Option("--p95-ms", help="The p95 latency it must keep.")
    ] = None,
    price_per_hour: Annotated[
        float | None,
        typer.Option(help="This machine's USD per hour (default: capacity.prices.this-machine)."),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(help="Run on Ray: an address, auto or local (default: sweep.ray_address)."),
    ] = None,
    volume: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Requests each candidate is to serve: a tuned model's fine-tuning cost (its "
            "training time at this machine's price) is spread over them in its cost.",
        ),
    ] = None,
) -> None:
    """Run every model (with every variant) through the suite at each concurrency, through
    the real pipeline; resume a folder's finished levels; print the recommendation."""
    from bastion.sweep import SweepPlan, run_sweep
    from bastion.sweep.runner import candidates
    from bastion.sweep.suites import AppSuite, load_suite

    chosen_suite = load_suite(suite)
    try:
        levels = sorted({int(n) for n in concurrency.split(",")})
    except ValueError:
        raise BadRequest(f"--concurrency {concurrency!r}: write counts such as 1,4,8") from None
    if not levels or levels[0] < 1:
        raise BadRequest("--concurrency counts must be 1 or more")
    who = as_user or (chosen_suite.as_user if isinstance(chosen_suite, AppSuite) else None)
    if who is None:
        raise BadRequest("give --as TENANT/USER (or `as:` in the suite): the sweep runs as someone")
    plan = SweepPlan(
        chosen_suite,
        candidates([m.strip() for m in models.split(",") if m.strip()], variant or []),
        levels,
        out,
        quality_bar,
        p95_ms,
        price_per_hour,
        ray,
        volume,
    )
    rows = len(chosen_suite.rows())
    platform = _platform()
    try:
        principal = platform.access.principal(who)
        with _progress() as progress:
            task = progress.add_task("sweep", total=rows * len(plan.candidates) * len(levels))
            report = run_sweep(
                platform,
                plan,
                principal,
                on_row=lambda: progress.advance(task),
                on_level=lambda note: progress.update(task, description=note),
            )
    finally:
        platform.close()
    pick = report["recommendation"]
    console.print_json(json.dumps({"recommendation": pick, "why_none": report["why_none"]}))
    console.print(f"Report: {out / 'report.html'} and {out / 'report.json'}", highlight=False)
