"""Trust events: what each guard flagged, redacted or blocked, one row per verdict."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from bastion.audit import AuditLog, AuditQuery
from bastion.console.pages.audit import audit_query
from bastion.console.web import AdminViewer, Console
from bastion.errors import BadRequest

ACTIONS = ("flag", "redact", "block")
PAGE_SIZE = 50
SCAN_LIMIT = 5000  # records read per view: the counts cover at most the newest this many
_BATCH = 1000
_SHOWN_CHARS = 300


@dataclass(frozen=True)
class Event:
    """One guard verdict that was not allow, with the request it was given on."""

    seq: int
    trace_id: str
    created_at: str
    user: str | None
    app: str
    guard: str
    stage: str
    action: str
    score: float
    findings: list[dict[str, Any]]
    text: str | None  # the masked text the verdict concerned; None: not kept


def _concerned(record: dict[str, Any], stage: str) -> str | None:
    """The prompt's last user message for an input verdict, the answer for an output one."""
    if stage == "output":
        found = record.get("response")
    elif stage == "input":
        said = [m["content"] for m in record.get("prompt") or [] if m.get("role") == "user"]
        found = said[-1] if said else None
    else:
        return None  # a retrieved source: its ids are on the record's page
    if found is None:
        return None  # not kept (audit.retain_text is off)
    text = str(found)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


def _events(record: dict[str, Any]) -> list[Event]:
    found = []
    for v in record.get("verdicts") or []:
        if v.get("action", "allow") == "allow":
            continue
        stage = str(v.get("stage", ""))
        found.append(
            Event(
                seq=record["seq"],
                trace_id=record["trace_id"],
                created_at=record["created_at"],
                user=record.get("user"),
                app=record["app"],
                guard=str(v.get("guard")),
                stage=stage,
                action=v["action"],
                score=v.get("score") or 0.0,
                findings=v.get("findings") or [],
                text=_concerned(record, stage),
            )
        )
    return found


@dataclass(frozen=True)
class EventPage:
    """A page of events, with the cursors the pager macro reads (record sequence numbers)."""

    events: list[Event]
    total: int
    older: int | None = None
    newer: int | None = None


def scan(audit: AuditLog, query: AuditQuery) -> tuple[list[Event], bool]:
    """The events of the records matching `query`, newest first, and whether the scan
    stopped at SCAN_LIMIT records with older ones left."""
    events: list[Event] = []
    read, page = 0, audit.search(query)
    while page.records:
        for record in page.records:
            events += _events(record)
        read += len(page.records)
        if page.older is None:
            return events, False
        if read >= SCAN_LIMIT:
            return events, True
        page = audit.search(replace(query, before=page.older))
    return events, False


def _take(events: list[Event]) -> list[Event]:
    """About a page of events, ending where a record's events end (the cursor is a record)."""
    taken: list[Event] = []
    for event in events:
        if len(taken) >= PAGE_SIZE and event.seq != taken[-1].seq:
            break
        taken.append(event)
    return taken


def page_of(events: list[Event], before: int | None, after: int | None) -> EventPage:
    """The page of `events` (newest first) older than `before` or newer than `after`."""
    if after is not None:
        chosen = _take([e for e in reversed(events) if e.seq > after])[::-1]
    else:
        chosen = _take([e for e in events if before is None or e.seq < before])
    if not chosen:
        return EventPage([], len(events))
    last, first = chosen[-1].seq, chosen[0].seq
    return EventPage(
        chosen,
        len(events),
        older=last if any(e.seq < last for e in events) else None,
        newer=first if any(e.seq > first for e in events) else None,
    )


def summary(events: list[Event]) -> list[dict[str, Any]]:
    """Counts by guard and action, the guards in name order."""
    counts = Counter((e.guard, e.action) for e in events)
    guards = sorted({e.guard for e in events})
    return [
        {
            "guard": g,
            **{a: counts[g, a] for a in ACTIONS},
            "total": sum(counts[g, a] for a in ACTIONS),
        }
        for g in guards
    ]


def register(web: FastAPI, console: Console) -> None:
    platform = console.platform
    chain = platform.pipeline.guards
    configured = list(dict.fromkeys(g.name for g in [*chain.input, *chain.output]))

    @web.get("/trust")
    def trust_page(
        request: Request,
        viewer: AdminViewer,
        guard: str = "",
        action: str = "",
        since: str = "",
        until: str = "",
        before: int | None = Query(None, ge=0),
        after: int | None = Query(None, ge=0),
    ) -> Response:
        if action and action not in ACTIONS:
            raise BadRequest(f"action '{action}' is unknown; use one of {', '.join(ACTIONS)}")
        query = audit_query(viewer.principal.tenant, since=since, until=until, limit=_BATCH)
        # Only a record whose strictest action is block can hold a block verdict.
        query = replace(query, guarded=True, verdict="block" if action == "block" else None)
        events, truncated = scan(platform.audit, query)
        events = [e for e in events if not action or e.action == action]
        guards = configured + sorted({e.guard for e in events} - set(configured))
        if guard and guard not in guards:
            raise BadRequest(f"guard '{guard}' is unknown; use one of {', '.join(guards)}")
        events = [e for e in events if not guard or e.guard == guard]
        filters = {"guard": guard, "action": action, "since": since, "until": until}
        return console.page(
            request, viewer, "trust.html", page=page_of(events, before, after),
            counts=summary(events), filters=filters, guards=guards, actions=ACTIONS,
            truncated=truncated, scan_limit=SCAN_LIMIT,
        )  # fmt: skip
