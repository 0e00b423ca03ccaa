"""Data sources of the tenant: stored records per source, the last ingest and what it
skipped, and the contacts identity resolution merged across sources."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from bastion.console.web import AdminViewer, Console, Numbered

MERGES_PER_PAGE = 20
SKIPS_SHOWN = 100  # per source; the report file keeps up to a thousand


def sources_of(console: Console, tenant: str) -> list[dict[str, Any]]:
    """Each configured source of the tenant, and each source that still has stored records
    though it is no longer configured, with its counts and its last ingest report."""
    grounding = console.platform.grounding
    configured = {s.name: s for s in console.platform.config.sources if s.tenant == tenant}
    stored: dict[str, list[dict[str, Any]]] = {}
    for row in grounding.inventory(tenant):
        stored.setdefault(row["source"], []).append(row)
    listing = []
    for name in sorted(set(configured) | set(stored)):
        entities = stored.get(name, [])
        cfg = configured.get(name)
        listing.append(
            {
                "name": name,
                "kind": cfg.kind if cfg else None,
                "configured": cfg is not None,
                "entities": entities,
                "records": sum(e["records"] for e in entities),
                "updated_at": max((e["updated_at"] for e in entities), default=None),
                "last_ingest": grounding.last_ingest(tenant, name),
            }
        )
    return listing


def register(web: FastAPI, console: Console) -> None:

    @web.get("/sources")
    def sources_page(
        request: Request,
        viewer: AdminViewer,
        page: int = Query(1, ge=1, le=100_000),
    ) -> Response:
        tenant = viewer.principal.tenant
        merges, total = console.platform.grounding.merged_contacts(
            tenant, MERGES_PER_PAGE, (page - 1) * MERGES_PER_PAGE
        )
        return console.page(
            request, viewer, "sources.html", sources=sources_of(console, tenant),
            merges=merges, at=Numbered(page, total, MERGES_PER_PAGE), skips_shown=SKIPS_SHOWN,
        )  # fmt: skip
