"""The audit trail: search and filter, one record's detail, verify the chain, export."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from bastion.audit import AuditQuery
from bastion.audit.log import canonical_json
from bastion.console.web import AdminViewer, Console, parse_moment
from bastion.errors import BadRequest

STATUSES = ("ok", "blocked", "rejected", "error", "cancelled")
VERDICTS = ("allow", "flag", "redact", "block")
PAGE_SIZE = 50


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise BadRequest(f"{name} '{value}' is unknown; use one of {', '.join(allowed)}")
    return value


def audit_query(
    tenant: str,
    user: str = "",
    app: str = "",
    model: str = "",
    status: str = "",
    verdict: str = "",
    since: str = "",
    until: str = "",
    before: int | None = None,
    after: int | None = None,
    limit: int = PAGE_SIZE,
) -> AuditQuery:
    """The search that a filter form's fields (as typed) ask for; bad values are refused."""
    since_at, until_at = parse_moment(since, "since"), parse_moment(until, "until")
    # A plain date includes that whole day (9999-12-31 has no next day to stop at).
    if until_at and len(until.strip()) == 10 and until_at.date() < date.max:
        until_at += timedelta(days=1)
    return AuditQuery(
        tenant=tenant,
        user=user.strip() or None,
        app=app.strip() or None,
        model=model.strip() or None,
        status=_choice(status, STATUSES, "status"),
        verdict=_choice(verdict, VERDICTS, "verdict"),
        since=since_at.isoformat() if since_at else None,  # the UTC text records are filed under
        until=until_at.isoformat() if until_at else None,
        before=before,
        after=after,
        limit=limit,
    )


@dataclass
class AuditFilters:
    """The audit page's filter fields, read from the query string."""

    user: str = ""
    app: str = ""
    model: str = ""
    status: str = ""
    verdict: str = ""
    since: str = ""
    until: str = ""

    def query(self, tenant: str, **paging: Any) -> AuditQuery:
        return audit_query(tenant, **asdict(self), **paging)


Filters = Annotated[AuditFilters, Depends()]


def register(web: FastAPI, console: Console) -> None:
    audit = console.platform.audit

    @web.get("/audit")
    def audit_page(
        request: Request,
        viewer: AdminViewer,
        filters: Filters,
        before: int | None = Query(None, ge=0),
        after: int | None = Query(None, ge=0),
    ) -> Response:
        query = filters.query(viewer.principal.tenant, before=before, after=after)
        return console.page(
            request, viewer, "audit.html", page=audit.search(query), filters=asdict(filters),
            statuses=STATUSES, verdicts=VERDICTS,
        )  # fmt: skip

    @web.get("/audit/export")
    def audit_export(viewer: AdminViewer, filters: Filters) -> Response:
        """The matching records as JSON Lines, oldest first as the chain runs."""
        matching = audit.matching(filters.query(viewer.principal.tenant))
        lines = ((canonical_json(record) + "\n").encode() for record in matching)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"audit-{viewer.principal.tenant}-{stamp}.jsonl"
        return StreamingResponse(
            lines,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @web.post("/audit/verify")
    async def audit_verify(request: Request, viewer: AdminViewer) -> Response:
        await console.form(request, viewer)
        report = await run_in_threadpool(audit.verify)
        return console.page(request, viewer, "audit_verify.html", report=report)

    @web.get("/audit/{trace_id}")
    def audit_record(request: Request, trace_id: str, viewer: AdminViewer) -> Response:
        record: dict[str, Any] = audit.get(trace_id, viewer.principal.tenant)
        return console.page(request, viewer, "audit_record.html", record=record)
