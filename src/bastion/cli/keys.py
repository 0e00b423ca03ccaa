"""`bastion keys`: API keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Column, Table

from bastion.cli.common import _platform, console, err, reports_errors
from bastion.errors import BadRequest

keys_app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)


@keys_app.command("create")
@reports_errors
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant (created if new).")],
    user: Annotated[str, typer.Option(help="User (created if new).")],
    role: Annotated[str, typer.Option(help="admin, developer, reviewer or user.")] = "user",
    group: Annotated[list[str] | None, typer.Option(help="Group membership (repeatable).")] = None,
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime such as 90d, 12h or 30m (default: none).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the key alone.")] = False,
) -> None:
    """Create an API key. It is shown once; only a salted hash is stored."""
    expires = datetime.now(UTC) + duration(expires_in) if expires_in else None
    created = _platform().access.create_key(
        tenant=tenant, user=user, role=role, groups=group, label=label, expires_at=expires
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
    table = Table(
        Column("id", no_wrap=True), "tenant", "user", "role", "label", "created", "revoked",
        "expires",
    )  # fmt: skip
    for k in _platform().access.list_keys(tenant):
        table.add_row(
            k.key_id,
            k.tenant,
            k.user,
            k.role,
            k.label or "",
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
            f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "",
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


@keys_app.command("rotate")
@reports_errors
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="The key to replace (from `keys list`).")],
    overlap: Annotated[
        str, typer.Option(help="How long the old key keeps working, e.g. 24h or 7d.")
    ] = "24h",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the new key alone.")] = False,
) -> None:
    """Issue a key's successor (same user, role and label); the old one expires after the
    overlap, so clients switch without an outage."""
    created = _platform().access.rotate(key_id, duration(overlap))
    if quiet:
        print(created.secret)
        return
    err.print(f"Key {created.key_id} replaces {key_id}, which works for {overlap} more:")
    print(created.secret)


_DURATION = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def duration(text: str) -> timedelta:
    """`90d`, `12h` or `30m` as a timedelta."""
    found = _DURATION.match(text.strip())
    if not found or int(found[1]) == 0:
        raise BadRequest(f"{text!r} is not a duration: write a whole number and d, h or m (90d)")
    return timedelta(**{_UNITS[found[2]]: int(found[1])})
