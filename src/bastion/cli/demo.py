"""`bastion demo`: the demo tenant and company."""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.cli.common import _platform, _progress, err, reports_errors
from bastion.config import bastion_home

demo_app = typer.Typer(help="The demo tenant.", no_args_is_help=True)


@demo_app.command("init")
@reports_errors
def demo_init(
    data: Annotated[
        bool, typer.Option(help="Also write, ingest and index the demo company's data.")
    ] = True,
    scale: Annotated[float, typer.Option(min=0.05, max=10, help="Size of the company.")] = 1.0,
) -> None:
    """Create the demo configuration (if missing), tenant, users, keys and company data."""
    from bastion.demo import DEMO_KEYS_FILE, init_demo, prepare_demo_data, write_default_config

    home = bastion_home()
    written = write_default_config(home)
    if written:
        err.print(f"Wrote {written}")
    platform = _platform()
    keys = init_demo(home, platform.access)
    if data and platform.config.sources:
        with _progress() as progress:
            task = progress.add_task("Embedding chunks", total=None)
            summary = prepare_demo_data(
                platform,
                scale=scale,
                on_stage=lambda stage: progress.update(task, description=stage),
                on_chunks=(
                    lambda n: progress.update(task, total=n, description="Embedding chunks"),
                    lambda n: progress.advance(task, n),
                ),
            )
        records = sum(s["added"] + s["updated"] + s["unchanged"] for s in summary["sources"])
        chunks = sum(i["chunks_written"] for i in summary["index"])
        err.print(
            f"Demo data: {records} records from {len(summary['sources'])} sources "
            f"in {home / 'data'}; {chunks} chunks (re)indexed"
        )
    path = home / DEMO_KEYS_FILE
    err.print(f"Demo users: {', '.join(keys)}; their keys are in {path}")
    err.print("Use the demo admin's key with `bastion chat` or any OpenAI client:")
    err.print(
        f'  export BASTION_API_KEY=$(python3 -c "import json; '
        f"print(json.load(open('{path}'))['acme/alice'])\")",
        highlight=False,
        soft_wrap=True,
    )
    err.print('Or ask the company data as someone: bastion ask "..." --as acme/carol')
