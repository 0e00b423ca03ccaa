"""`bastion guards train`: train the injection, toxicity and bias classifiers."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.common import err, reports_errors

guards_app = typer.Typer(help="The trust guards.", no_args_is_help=True)
guards_train_app = typer.Typer(help="Train a guard's classifier.", no_args_is_help=True)
guards_app.add_typer(guards_train_app, name="train")


@guards_app.command("rotate-vault-key")
@reports_errors
def rotate_vault_key(
    drop_previous: Annotated[
        bool,
        typer.Option(
            "--drop-previous",
            help="Keep only the new key (once every replica runs with it and no request "
            "sealed before the rotation is in flight).",
        ),
    ] = False,
) -> None:
    """Give the PII vault a new key in BASTION_HOME/vault.key; the previous key is kept to
    open what it sealed. Restart the server (every replica) to seal with the new key."""
    import os

    from bastion.config import bastion_home, load_config
    from bastion.errors import ConfigError
    from bastion.guards.pii.plugin import PiiSettings
    from bastion.guards.pii.vault import rotate_vault_key as rotate

    env_var = load_config().guards.settings("pii", PiiSettings).vault_key_env
    if os.environ.get(env_var):
        raise ConfigError(
            f"the vault keys come from {env_var}: rotate there (the new key first, a comma, "
            "then the old one)"
        )
    home = bastion_home()
    kept = rotate(home, keep_previous=not drop_previous)
    typer.echo(
        f"{home / 'vault.key'} now holds {kept} key{'s' if kept != 1 else ''}, the new one "
        "first; restart the server to seal with it"
    )


@guards_train_app.command("injection")
@reports_errors
def train_injection(
    out: Annotated[Path, typer.Option(help="Folder for injection.joblib and its card.")],
    data: Annotated[
        list[Path] | None, typer.Option(help='{"text", "label"} JSONL (repeatable).')
    ] = None,
    attacks: Annotated[
        list[Path] | None, typer.Option(help="Attack prompts: text, JSON or a folder (repeatable).")
    ] = None,
    benign: Annotated[
        list[Path] | None, typer.Option(help="More benign prompts (the shipped ones always join).")
    ] = None,
    cv: Annotated[
        int,
        typer.Option(
            help="Also report k-fold cross-validation, by origin and by random rows (0: skip)."
        ),
    ] = 5,
) -> None:
    """Train the prompt-injection classifier; prints its card (and cross-validation) as JSON."""
    from bastion.guards.injection.train import build_training_set, cross_validate, train

    examples = build_training_set(data or [], attacks or [], benign or [])
    command = "bastion guards train injection " + shlex.join(sys.argv[4:])
    result: dict[str, Any] = {}
    if cv:
        with err.status(f"{cv}-fold cross-validation ..."):
            result["cross_validation"] = {
                "by_origin": cross_validate(examples, folds=cv),
                "random_rows": cross_validate(examples, folds=cv, by_origin=False),
            }
    with err.status(f"Training on {len(examples)} examples ..."):
        result["card"] = train(examples, out, command)
    print(json.dumps(result, indent=2))


@guards_train_app.command("toxicity")
@reports_errors
def train_toxicity(
    out: Annotated[Path, typer.Option(help="Folder for toxicity.joblib and its card.")],
    data: Annotated[
        list[Path],
        typer.Option(help="Davidson, HatemojiBuild, Stormfront, Jigsaw CSV or JSONL (repeatable)."),
    ],
    licence: Annotated[
        list[str] | None, typer.Option(help="Licence of the data, recorded in the card.")
    ] = None,
) -> None:
    """Train the toxicity and hate classifier; prints its card as JSON."""
    from bastion.guards.toxicity.train import read_examples, train

    examples = [e for path in data for e in read_examples(path)]
    command = "bastion guards train toxicity " + shlex.join(sys.argv[4:])
    with err.status(f"Training on {len(examples)} examples ..."):
        card = train(examples, out, command, licence or [])
    print(json.dumps({"card": card}, indent=2))


@guards_train_app.command("bias")
@reports_errors
def train_bias(
    out: Annotated[Path, typer.Option(help="Folder for bias.joblib and its card.")],
    data: Annotated[
        Path | None,
        typer.Option(help='{"text", "label"} JSONL; default: the shipped sentences.'),
    ] = None,
    lexicon: Annotated[
        Path | None, typer.Option(help="Lexicon YAML; default: the shipped one.")
    ] = None,
    eval_data: Annotated[
        Path | None, typer.Option("--eval", help="Held-out JSONL measured into the card.")
    ] = None,
) -> None:
    """Train the bias-generalisation classifier; prints its card as JSON."""
    from bastion.guards.bias.detector import LEXICON_FILE
    from bastion.guards.bias.train import SHIPPED_TRAIN, train

    command = "bastion guards train bias " + shlex.join(sys.argv[4:])
    with err.status("Training (with 5-fold cross-validation) ..."):
        card = train(out, data or SHIPPED_TRAIN, command, lexicon or LEXICON_FILE, eval_data)
    print(json.dumps({"card": card}, indent=2))
