"""`bastion ab`: A/B experiments, their reports and sample sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bastion.cli.common import _platform, console, err, reports_errors
from bastion.errors import BastionError

ab_app = typer.Typer(help="A/B experiments between models or prompts.", no_args_is_help=True)


def _experiment(platform: Any, name: str, tenant: str | None) -> tuple[str, str]:
    """(tenant, name): the tenant may be left out when one tenant has that experiment."""
    if tenant:
        return tenant, name
    owners = [e["tenant"] for e in platform.experiments.store.list() if e["name"] == name]
    if len(owners) != 1:
        found = "no tenant" if not owners else f"tenants {', '.join(owners)}"
        raise BastionError(f"experiment '{name}' is in {found}; pass --tenant")
    return owners[0], name


TenantOption = Annotated[str | None, typer.Option(help="Tenant; default: the one that has it.")]


@ab_app.command("create")
@reports_errors
def ab_create(
    spec_file: Annotated[Path, typer.Argument(help="The experiment as YAML or JSON.")],
) -> None:
    """Start an experiment (fields: see `experiments` in the configuration reference)."""
    import yaml
    from pydantic import ValidationError

    from bastion.config import ExperimentConfig

    if not spec_file.is_file():
        raise BastionError(f"{spec_file} does not exist")
    try:
        spec = ExperimentConfig.model_validate(yaml.safe_load(spec_file.read_text()))
    except (yaml.YAMLError, ValidationError) as exc:
        raise BastionError(f"{spec_file} is not a valid experiment: {exc}") from exc
    console.print_json(data=_platform().experiments.store.create(spec))


@ab_app.command("list")
@reports_errors
def ab_list(tenant: TenantOption = None) -> None:
    """Experiments and their state."""
    table = Table("tenant", "name", "app", "status", "unit", "traffic", "arms", "stopped arms")
    for e in _platform().experiments.store.list(tenant):
        table.add_row(
            e["tenant"],
            e["name"],
            e["app"],
            e["status"],
            e["unit"],
            f"{e['traffic']:g}%",
            ", ".join(e["variants"]),
            ", ".join(e["stopped_arms"]) or "-",
        )
    console.print(table)


@ab_app.command("status")
@reports_errors
def ab_status(name: str, tenant: TenantOption = None) -> None:
    """Requests per arm and the current decision."""
    platform = _platform()
    report, _ = platform.experiments.report(*_experiment(platform, name, tenant))
    console.print(f"{name} ({report['status']}): {report['decision']}")
    for arm, n in report["requests"].items():
        stopped = report["stopped_arms"].get(arm)
        console.print(f"  {arm}: {n} requests" + (f" (stopped: {stopped})" if stopped else ""))


@ab_app.command("report")
@reports_errors
def ab_report(
    name: str,
    tenant: TenantOption = None,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML page with plots.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Metrics per arm with always-valid confidence intervals, guardrails and a decision."""
    from bastion.experiments.report import render_html, render_table

    platform = _platform()
    report, arms = platform.experiments.report(*_experiment(platform, name, tenant))
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        console.print(render_table(report))
        for arm, decision in report["decisions"].items():
            console.print(f"{arm}: {decision['verdict']}: {decision['reason']}", highlight=False)
    if html is not None:
        html.write_text(render_html(report, arms), encoding="utf-8")
        err.print(f"Wrote {html}")


@ab_app.command("stop")
@reports_errors
def ab_stop(name: str, tenant: TenantOption = None) -> None:
    """Stop an experiment: every request goes back to the app's own settings."""
    platform = _platform()
    platform.experiments.stop(*_experiment(platform, name, tenant))
    err.print(f"stopped {name}")


@ab_app.command("promote")
@reports_errors
def ab_promote(
    name: str,
    arm: str,
    tenant: TenantOption = None,
    force: Annotated[
        bool, typer.Option(help="Promote even though the arm's model fails the bias gate.")
    ] = False,
) -> None:
    """End an experiment naming the winning arm; prints the settings to make the default.
    Refused when the arm's model fails the bias gate on its `bastion eval bias` report."""
    platform = _platform()
    outcome = platform.experiments.promote(*_experiment(platform, name, tenant), arm, force)
    console.print_json(data=outcome)
    err.print("Make these the app's settings in bastion.yaml (model, system_prompt).")


@ab_app.command("simulate")
@reports_errors
def ab_simulate(
    effect: Annotated[float, typer.Option(help="True difference in rate (B - A); 0: A/A.")],
    experiments: Annotated[int, typer.Option(min=1, help="Simulated experiments.")] = 1000,
    peek_every: Annotated[int, typer.Option(min=1, help="Look after every K per arm.")] = 10,
    base_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.3,
    max_samples: Annotated[int, typer.Option(min=10, help="Per arm.")] = 2000,
    seed: int = 0,
) -> None:
    """Simulate experiments with peeking: rejection rate, samples to decision, power."""
    from bastion.experiments.stats import simulate

    try:
        result = simulate(
            effect,
            experiments,
            peek_every,
            base_rate=base_rate,
            max_samples_per_arm=max_samples,
            seed=seed,
        )
    except ValueError as exc:
        raise BastionError(str(exc)) from exc
    print(json.dumps(result, indent=2))


@ab_app.command("size")
@reports_errors
def ab_size(
    base_rate: Annotated[
        float | None, typer.Option(help="Control's rate, for a rate metric (0-1).")
    ] = None,
    sd: Annotated[float | None, typer.Option(help="Metric's SD, for a mean metric.")] = None,
    effect: Annotated[float, typer.Option(help="Smallest difference worth detecting.")] = 0.05,
    power: Annotated[float, typer.Option(min=0.01, max=0.99)] = 0.8,
    alpha: Annotated[float, typer.Option(min=0.001, max=0.5)] = 0.05,
) -> None:
    """Samples per arm to detect an effect (fixed horizon; plan about 2x for peeking)."""
    from bastion.experiments import stats

    if (base_rate is None) == (sd is None):
        raise BastionError("give --base-rate (a rate metric) or --sd (a mean metric), not both")
    try:
        n = (
            stats.sample_size_proportions(base_rate, effect, alpha, power)
            if base_rate is not None
            else stats.sample_size_means(sd or 0.0, effect, alpha, power)
        )
    except ValueError as exc:
        raise BastionError(str(exc)) from exc
    print(
        json.dumps(
            {
                "per_arm_fixed_horizon": n,
                "per_arm_sequential_horizon": int(n * stats.HORIZON_INFLATION),
                "effect": effect,
                "power": power,
                "alpha": alpha,
            },
            indent=2,
        )
    )
