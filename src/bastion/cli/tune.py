"""`bastion tune`: datasets from feedback, fine-tuning runs checked by the forgetting guard,
the registry of tuned models, and promotion into an A/B experiment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bastion.cli.common import _as, _platform, console, err, reports_errors
from bastion.config import read_yaml
from bastion.errors import BadRequest, BastionError

tune_app = typer.Typer(help="Fine-tuning from feedback.", no_args_is_help=True)

AsOption = Annotated[
    str, typer.Option("--as", help="Act as TENANT/USER: their role and tenant apply.")
]


@tune_app.command("dataset")
@reports_errors
def tune_dataset(
    out: Annotated[Path, typer.Option(help="New folder for the splits and card.json.")],
    tenant: Annotated[
        str | None, typer.Option(help="Use this tenant's feedback on audited answers.")
    ] = None,
    app_name: Annotated[str | None, typer.Option("--app", help="Only this app's traces.")] = None,
    jsonl: Annotated[
        list[Path] | None,
        typer.Option(help="Your own examples (prompt/completion, messages or preference rows)."),
    ] = None,
    licence: Annotated[
        str, typer.Option("--license", help="Licence of the examples (SPDX or LicenseRef-).")
    ] = "LicenseRef-Internal",
    min_rating: Annotated[int, typer.Option(help="Lowest rating that accepts an answer.")] = 4,
    skip_malformed: Annotated[
        bool, typer.Option(help="Skip and count bad JSONL rows instead of refusing the file.")
    ] = False,
) -> None:
    """Build a fine-tuning dataset: PII masked, duplicates removed, split by prompt."""
    from bastion.tuning.dataset import build_dataset, from_feedback, from_jsonl

    if tenant is None and not jsonl:
        raise BastionError("give --tenant (feedback) and/or --jsonl FILE")
    sources = []
    if tenant is not None:
        platform = _platform()
        feedback = platform.experiments.feedback
        sources.append(
            from_feedback(
                platform.audit, feedback, tenant, app_name, min_rating=min_rating, licence=licence
            )
        )
    for path in jsonl or []:
        sources.append(from_jsonl(path, licence=licence, skip_malformed=skip_malformed))
    with err.status("Masking PII and removing duplicates ..."):
        dataset = build_dataset(sources)
    folder = dataset.save(out)
    print(json.dumps({"folder": str(folder), "card": dataset.card.to_dict()}, indent=2))


def _train_config(file: Path | None, overrides: dict[str, Any]) -> Any:
    from bastion.tuning.train import TrainConfig

    data: dict[str, Any] = {}
    if file is not None:
        data = read_yaml(file, "the training config", BadRequest) or {}
        if not isinstance(data, dict):
            raise BadRequest(f"{file} must hold a mapping of TrainConfig fields")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.parse(data)


@tune_app.command("run")
@reports_errors
def tune_run(
    name: Annotated[str, typer.Argument(help="Name of the tuned model to register.")],
    base: Annotated[str, typer.Option(help="Registered model to tune (local weights).")],
    data: Annotated[Path, typer.Option(help="Dataset folder from `bastion tune dataset`.")],
    as_user: AsOption,
    method: Annotated[str | None, typer.Option(help="lora, ia3, prompt or full.")] = None,
    rank: Annotated[int | None, typer.Option(help="LoRA rank.")] = None,
    alpha: Annotated[int | None, typer.Option(help="LoRA alpha (default 2 x rank).")] = None,
    target: Annotated[
        list[str] | None, typer.Option(help="Module to adapt (repeat); LoRA and IA3.")
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
    epochs: Annotated[float | None, typer.Option()] = None,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (over epochs).")] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per example.")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Steps between validations.")] = None,
    patience: Annotated[int | None, typer.Option(help="Early stopping patience.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Steps between checkpoints.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    trials: Annotated[int, typer.Option(help="Optuna trials (0: train once).")] = 0,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="YAML of training settings.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue a killed run of this name.")] = False,
) -> None:
    """Fine-tune a model, compare it with its base (general knowledge, the task, safety,
    bias) and register it with its lineage. Exits 1 when the forgetting guard rejects it
    (it is then registered as rejected and never served)."""
    from bastion.tuning.job import TuningRequest, run

    config = _train_config(
        config_file,
        {
            "method": method,
            "rank": rank,
            "alpha": alpha,
            "target_modules": tuple(target) if target else None,
            "learning_rate": lr,
            "epochs": epochs,
            "max_steps": max_steps,
            "batch_size": batch_size,
            "max_length": max_length,
            "eval_every": eval_every,
            "patience": patience,
            "checkpoint_every": checkpoint_every,
            "seed": seed,
        },
    )
    platform = _platform()
    principal = _as(platform, as_user)
    request = TuningRequest(name, base, data, config, trials)
    record, report = run(platform.tuning(), principal, request, resume=resume)
    err.print(report.render_text(), highlight=False)
    print(json.dumps({"name": record.name, "status": record.status, "reasons": report.reasons}))
    if not report.accepted:
        raise typer.Exit(1)


def _base_to_candidate(forgetting: dict[str, Any], key: str, fmt: str) -> str:
    """ "base -> candidate" for one figure of a guard report, "-" where it is missing."""
    before = forgetting.get("base", {}).get(key)
    after = forgetting.get("candidate", {}).get(key)
    return "-" if before is None or after is None else f"{before:{fmt}} -> {after:{fmt}}"


@tune_app.command("list")
@reports_errors
def tune_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's models.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The tuned models: base, method, status and the guard's headline figures."""
    records = _platform().tuned.all(tenant)
    if as_json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return
    table = Table("name", "tenant", "base", "method", "status", "task ROUGE-L", "general acc")
    for r in records:
        forgetting = r.metrics.get("forgetting", {})
        table.add_row(
            r.name,
            r.tenant,
            r.base_model,
            r.method,
            r.status,
            _base_to_candidate(forgetting, "task_rouge_l", ".1f"),
            _base_to_candidate(forgetting, "general_accuracy", ".3f"),
        )
    console.print(table)


@tune_app.command("show")
@reports_errors
def tune_show(name: Annotated[str, typer.Argument(help="The tuned model.")]) -> None:
    """A tuned model's lineage (base, dataset, method, settings) and its reports."""
    from bastion.tuning.forgetting import ForgettingReport

    record = _platform().tuned.get(name)
    report = record.metrics.get("forgetting")
    if report:
        err.print(ForgettingReport.from_dict(report).render_text(), highlight=False)
    print(json.dumps(record.to_dict(), indent=2))


@tune_app.command("promote")
@reports_errors
def tune_promote(
    name: Annotated[str, typer.Argument(help="The tuned model.")],
    app_name: Annotated[str, typer.Option("--app", help="App whose traffic is split.")],
    as_user: AsOption,
    experiment: Annotated[str | None, typer.Option(help="Experiment name.")] = None,
    weight: Annotated[float, typer.Option(help="Percent of units on the tuned model.")] = 50.0,
    traffic: Annotated[float, typer.Option(help="Percent of units enrolled.")] = 100.0,
) -> None:
    """Start an A/B experiment of the tuned model against the app's current model (nothing
    is replaced: `bastion ab report` and `bastion ab promote` decide)."""
    from bastion.tuning.job import promote

    platform = _platform()
    created = promote(
        platform.tuning(),
        _as(platform, as_user),
        name,
        app_name,
        experiment=experiment,
        weight=weight,
        traffic=traffic,
    )
    print(json.dumps(created, indent=2))
