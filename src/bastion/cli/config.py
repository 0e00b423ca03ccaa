"""`bastion config`: check the configuration file and print its reference."""

from __future__ import annotations

import typer

from bastion.cli.common import console, err, reports_errors
from bastion.config import CONFIG_FILE_NAME, bastion_home, load_config

config_app = typer.Typer(help="The configuration file.", no_args_is_help=True)


@config_app.command("check")
@reports_errors
def config_check() -> None:
    """Validate bastion.yaml with the environment overrides and print the result."""
    cfg = load_config()
    err.print(f"[green]valid[/green]: {bastion_home() / CONFIG_FILE_NAME}")
    console.print_json(cfg.model_dump_json())


@config_app.command("reference")
def config_reference() -> None:
    """Print every setting with its type, default and meaning (Markdown)."""
    from bastion.config import reference_markdown

    print(reference_markdown(), end="")
