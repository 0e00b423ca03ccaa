"""API keys of the admin's tenant: list, create (the secret shown once), revoke."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Request
from fastapi.responses import Response

from bastion.access import ROLES, CreatedKey
from bastion.console.sessions import Viewer
from bastion.console.web import AdminViewer, Console, redirect
from bastion.errors import BadRequest


def register(web: FastAPI, console: Console) -> None:
    access = console.platform.access

    def listing(request: Request, viewer: Viewer, created: CreatedKey | None = None) -> Response:
        keys = access.list_keys(viewer.principal.tenant)[::-1]  # newest first
        return console.page(request, viewer, "keys.html", keys=keys, roles=ROLES, created=created)

    @web.get("/keys")
    def keys_page(request: Request, viewer: AdminViewer) -> Response:
        return listing(request, viewer)

    @web.post("/keys")
    async def keys_create(request: Request, viewer: AdminViewer) -> Response:
        form = await console.form(request, viewer)
        days = form.get("expires_in_days", "").strip()
        expires = None
        if days:
            if not days.isdigit() or not 1 <= int(days) <= 3650:
                raise BadRequest(
                    "expires in (days) must be a whole number from 1 to 3650, or empty"
                )
            expires = datetime.now(UTC) + timedelta(days=int(days))
        created = access.create_key(
            tenant=viewer.principal.tenant,  # an admin makes keys for their own tenant only
            user=form.get("user", "").strip(),
            role=form.get("role", ""),
            label=form.get("label", "").strip() or None,
            expires_at=expires,
        )
        # The secret is in this one answer and nowhere else: it is not stored, only its hash.
        return listing(request, viewer, created=created)

    @web.post("/keys/{key_id}/revoke")
    async def keys_revoke(request: Request, key_id: str, viewer: AdminViewer) -> Response:
        await console.form(request, viewer)
        access.revoke(key_id, tenant=viewer.principal.tenant)
        return redirect("/keys")
