"""`bastion models`: the model registry."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from bastion.cli.common import console, err, reports_errors
from bastion.config import bastion_home, load_config

models_app = typer.Typer(help="The model registry.", no_args_is_help=True)


@models_app.command("list")
@reports_errors
def models_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the registered models with size, context length and prices."""
    from bastion.models.registry import model_info

    cfg = load_config()
    infos = [model_info(m) for m in cfg.models]
    if as_json:
        rows = [
            {
                "name": i.name,
                "backend": i.backend,
                "parameters": i.parameters,
                "context_length": i.context_length,
                "price": vars(i.price),
            }
            for i in infos
        ]
        console.print_json(json.dumps(rows))
        return
    table = Table("name", "backend", "parameters", "context", "$/1M in", "$/1M out", "$/GPU-hour")
    for i in infos:
        params = f"{i.parameters / 1e6:,.1f}M" if i.parameters else "?"
        gpu = f"{i.price.gpu_hour:.2f}" if i.price.gpu_hour is not None else "-"
        table.add_row(
            i.name,
            i.backend,
            params,
            f"{i.context_length:,}",
            f"{i.price.input_per_1m:.2f}",
            f"{i.price.output_per_1m:.2f}",
            gpu,
        )
    console.print(table)


@models_app.command("prepare")
@reports_errors
def models_prepare() -> None:
    """Convert the embedded model once (about 20 s) so later starts load in about a second."""
    from bastion.models.embedded import (
        is_prepared,
        model_cache_root,
        prepare_embedded_model,
    )

    root = model_cache_root(bastion_home())
    if is_prepared(root):
        err.print(f"Embedded model ready in {root}")
        return
    with err.status("Converting the embedded model (one time, about 20 s) ..."):
        path = prepare_embedded_model(root)
    err.print(f"Embedded model converted to {path}")
