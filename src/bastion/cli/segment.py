"""`bastion segment`: the saved segments (the `segment` app makes them)."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Literal

import typer
from rich.table import Table

from bastion.cli.common import _as, _platform, console, reports_errors

segment_app = typer.Typer(
    help="Saved segments: list them, show one with its members today.", no_args_is_help=True
)


@segment_app.command("list")
@reports_errors
def segment_list(
    as_user: Annotated[str, typer.Option("--as", help="As TENANT/USER.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every saved segment of the tenant (its latest version)."""
    from bastion.apps.segment import saved

    platform = _platform()
    rows = saved(platform, _as(platform, as_user)).latest()
    if as_json:
        print(json.dumps([_summary(r) for r in rows], indent=2))
        return
    if not rows:
        console.print(
            "No saved segments yet: `bastion app run segment --query TEXT --as T/U` makes one."
        )
        return
    table = Table("name", "version", "members then", "as of", "by", "request")
    for r in rows:
        table.add_row(r.name, str(r.version), str(r.count), r.as_of, r.created_by, r.query)
    console.print(table)


@segment_app.command("show")
@reports_errors
def segment_show(
    name: Annotated[str, typer.Argument(help="The segment's name (see `bastion segment list`).")],
    as_user: Annotated[str, typer.Option("--as", help="As TENANT/USER (their access).")],
    version: Annotated[int | None, typer.Option(help="A version (default: the latest).")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Count time windows back from this date.")
    ] = None,
    output_format: Annotated[Literal["json", "markdown"], typer.Option("--format")] = "markdown",
) -> None:
    """A saved segment: its request, specification, explanation, its versions, and its
    members in today's data as far as you may see them."""
    from bastion.apps.segment import members_now, saved
    from bastion.errors import BadRequest

    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise BadRequest(f"--as-of '{as_of}' is not a date; give YYYY-MM-DD") from None
    platform = _platform()
    principal = _as(platform, as_user)
    segments = saved(platform, principal)
    row = segments.get(name, version)
    today, members = members_now(platform, principal, row, day)
    versions = [v.version for v in segments.versions(name)]
    if output_format == "json":
        body = {
            **_summary(row),
            "spec": row.spec,
            "explanation": row.explanation,
            "versions": versions,
            "members_as_of": today.isoformat(),
            "count_now": len(members),
            "members": [m.model_dump() for m in members],
        }
        print(json.dumps(body, indent=2))
        return
    console.print(
        f"[bold]{row.name}[/bold] version {row.version} of {len(versions)} "
        f"(by {row.created_by}, as of {row.as_of}): {row.query}",
        highlight=False,
    )
    console.print(row.explanation, highlight=False)
    console.print(
        f"{len(members)} members as of {today.isoformat()} ({row.count} when saved)",
        highlight=False,
    )
    table = Table("contact", "name", "email")
    for m in members[:50]:
        table.add_row(m.contact_id, m.name, m.email or "")
    if members:
        console.print(table)
    if len(members) > 50:
        console.print(f"... and {len(members) - 50} more (--format json lists them all)")


def _summary(row: object) -> dict[str, object]:
    return {
        key: getattr(row, key)
        for key in ("name", "version", "query", "as_of", "count", "created_by", "run_id")
    }
