"""The `bastion` command line: a thin layer over the library, one module per command group.

Commands that need no model never import torch; those that take long show progress.
"""

from __future__ import annotations

import typer

from bastion.cli.ab import ab_app
from bastion.cli.app import app_app
from bastion.cli.audit import audit_app
from bastion.cli.campaign import campaign_app
from bastion.cli.config import config_app
from bastion.cli.demo import demo_app
from bastion.cli.eval import eval_app
from bastion.cli.grounding import ask, index, ingest, search
from bastion.cli.guards import guards_app
from bastion.cli.keys import keys_app
from bastion.cli.models import models_app
from bastion.cli.plan import plan
from bastion.cli.protect import protect_app
from bastion.cli.segment import segment_app
from bastion.cli.server import chat, feedback, serve
from bastion.cli.sweep import sweep
from bastion.cli.tune import tune_app

app = typer.Typer(
    help="Bastion: an OpenAI-compatible gateway for open models, with guards and audit.",
    no_args_is_help=True,
)
# Registered here in the order `bastion --help` lists them.
for command in (serve, chat, ingest, index, search, ask, feedback, plan, sweep):
    app.command()(command)

app.add_typer(app_app, name="app")
app.add_typer(segment_app, name="segment")
app.add_typer(campaign_app, name="campaign")
app.add_typer(protect_app, name="protect")
app.add_typer(tune_app, name="tune")
app.add_typer(ab_app, name="ab")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(demo_app, name="demo")
app.add_typer(config_app, name="config")
app.add_typer(eval_app, name="eval")
app.add_typer(guards_app, name="guards")
