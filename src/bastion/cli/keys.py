"""`bastion keys`: API keys."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from bastion.cli.common import _platform, console, err, reports_errors

keys_app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)


@keys_app.command("create")
@reports_errors
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant (created if new).")],
    user: Annotated[str, typer.Option(help="User (created if new).")],
    role: Annotated[str, typer.Option(help="admin, developer or user.")] = "user",
    group: Annotated[list[str] | None, typer.Option(help="Group membership (repeatable).")] = None,
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the key alone.")] = False,
) -> None:
    """Create an API key. It is shown once; only a salted hash is stored."""
    created = _platform().access.create_key(
        tenant=tenant, user=user, role=role, groups=group, label=label
    )
    if quiet:
        print(created.secret)
        return
    console.print(
        f"Key [bold]{created.key_id}[/bold] for {tenant}/{user} ({role}); "
        "store it now, it is not shown again:"
    )
    print(created.secret)


@keys_app.command("list")
@reports_errors
def keys_list(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    """List keys (ids only; secrets are never stored)."""
    table = Table("id", "tenant", "user", "role", "label", "created", "revoked")
    for k in _platform().access.list_keys(tenant):
        table.add_row(
            k.key_id,
            k.tenant,
            k.user,
            k.role,
            k.label or "",
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
@reports_errors
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")],
) -> None:
    """Revoke a key; requests with it get 401 from now on."""
    _platform().access.revoke(key_id)
    err.print(f"Revoked {key_id}")
