"""`bastion protect`: the registry of protected works."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bastion.cli.common import _progress, _protected_registry, console, err, reports_errors

protect_app = typer.Typer(
    help="Protected works: texts and code answers must not reproduce.", no_args_is_help=True
)


@protect_app.command("add")
@reports_errors
def protect_add(
    path: Annotated[
        Path,
        typer.Argument(
            help="A text file, a folder or code repository (one work), or a JSONL file of "
            'works ({"id", "title", "text"} per line).'
        ),
    ],
    owner: Annotated[str, typer.Option(help="Who owns the work (named in findings).")],
    license_id: Annotated[
        str,
        typer.Option("--license", help="SPDX id or expression, or LicenseRef-<name>."),
    ],
    title: Annotated[str | None, typer.Option(help="Default: the file or folder name.")] = None,
    work_id: Annotated[
        str | None, typer.Option("--id", help="Work id; default: the file or folder name.")
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the files.")] = "utf-8",
    max_file_mb: Annotated[float, typer.Option(help="Larger files are skipped.")] = 1024,
    strict: Annotated[
        bool,
        typer.Option(help="JSONL: register no work if one row is bad (default: skip and report)."),
    ] = False,
) -> None:
    """Register a protected work; answers that copy it are then caught."""
    registry = _protected_registry()
    size = path.stat().st_size if path.is_file() else None
    with _progress() as progress:
        task = progress.add_task(f"Registering {path.name}", total=size)
        done = registry.add_path(
            path,
            owner=owner,
            license_id=license_id,
            title=title,
            key=work_id,
            encoding=encoding,
            max_file_mb=max_file_mb,
            progress=lambda n: progress.advance(task, n),
            strict=strict,
        )
    for skipped, why in done.skipped:
        err.print(f"[yellow]skipped[/yellow] {skipped}: {why}", highlight=False)
    for work in done.works[:20]:
        console.print(
            f"registered {work.key}: “{work.title}” ({work.files} files, {work.chars:,} "
            f"characters), owner {work.owner}, licence {work.license}",
            highlight=False,
        )
    if len(done.works) > 20:
        console.print(f"... and {len(done.works) - 20} more works")


@protect_app.command("list")
@reports_errors
def protect_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The registered works."""
    works = _protected_registry().works()
    if as_json:
        print(json.dumps([w.to_dict() for w in works], indent=2))
        return
    table = Table("id", "title", "owner", "licence", "files", "characters", "added")
    for w in works:
        table.add_row(w.key, w.title, w.owner, w.license, str(w.files), f"{w.chars:,}", w.added_at)
    console.print(table)


@protect_app.command("remove")
@reports_errors
def protect_remove(work_id: Annotated[str, typer.Argument(help="The work's id.")]) -> None:
    """Remove a work and its fingerprints from the registry."""
    work = _protected_registry().remove(work_id)
    console.print(f"removed {work.key}: “{work.title}”", highlight=False)
