"""The overview: requests, blocked and flagged answers, latency and tokens over time."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from bastion.audit import AuditLog
from bastion.console.web import AdminViewer, Console
from bastion.plots import inline_png, pyplot


def activity(audit: AuditLog, tenant: str, days: int) -> dict[str, Any]:
    """Per-bucket counts (hours for two days or less, else days) of the last `days`."""
    start = datetime.now(UTC) - timedelta(days=days)
    width = 13 if days <= 2 else 10  # ISO text cut to the hour or the day
    buckets: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "blocked": 0, "flagged": 0, "errors": 0, "tokens": 0,
                 "latencies": []}
    )  # fmt: skip
    for at, status, verdict, latency, tokens in audit.activity(tenant, start.isoformat()):
        b = buckets[at[:width]]
        b["requests"] += 1
        b["blocked"] += status in ("blocked", "rejected")
        b["flagged"] += verdict in ("flag", "redact") and status == "ok"
        b["errors"] += status == "error"
        b["tokens"] += tokens or 0
        if latency is not None:
            b["latencies"].append(latency)
    keys = sorted(buckets)
    totals = {
        k: sum(buckets[b][k] for b in keys)
        for k in ("requests", "blocked", "flagged", "errors", "tokens")
    }
    every = [x for b in keys for x in buckets[b]["latencies"]]
    totals["latency_p50"] = round(median(every)) if every else None
    return {"keys": keys, "buckets": buckets, "totals": totals, "hourly": width == 13}


def _plots(data: dict[str, Any]) -> list[tuple[str, str]]:
    keys, buckets = data["keys"], data["buckets"]
    if not keys:
        return []
    plt = pyplot()
    moments = [datetime.fromisoformat(k + (":00" if data["hourly"] else "")) for k in keys]
    figures = []
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.plot(moments, [buckets[k]["requests"] for k in keys], label="requests", color="#1f5fbf")
    ax.plot(moments, [buckets[k]["blocked"] for k in keys], label="blocked", color="#b3261e")
    ax.plot(
        moments, [buckets[k]["flagged"] for k in keys], label="flagged or redacted", color="#d08c00"
    )
    ax.set_ylabel("per hour" if data["hourly"] else "per day")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    figures.append(("Requests, blocked and flagged (UTC)", inline_png(fig)))
    fig, ax = plt.subplots(figsize=(6, 2.6))
    p50 = [median(buckets[k]["latencies"]) if buckets[k]["latencies"] else None for k in keys]
    p95 = [
        sorted(v)[int(0.95 * (len(v) - 1))] if (v := buckets[k]["latencies"]) else None
        for k in keys
    ]
    ax.plot(moments, p50, label="p50", color="#1f5fbf")
    ax.plot(moments, p95, label="p95", color="#6b3fa0")
    ax.set_ylabel("latency, ms")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    figures.append(("Latency (UTC)", inline_png(fig)))
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar(
        moments,
        [buckets[k]["tokens"] for k in keys],
        width=(1 / 24 if data["hourly"] else 0.8),
        color="#1e6b3a",
    )
    ax.set_ylabel("tokens")
    fig.autofmt_xdate()
    figures.append(("Tokens, prompt and completion (UTC)", inline_png(fig)))
    return figures


def register(web: FastAPI, console: Console) -> None:

    @web.get("/")
    def overview(
        request: Request,
        viewer: AdminViewer,
        days: int = Query(7, ge=1, le=90),
    ) -> Response:
        data = activity(console.platform.audit, viewer.principal.tenant, days)
        return console.page(
            request, viewer, "overview.html", days=days, totals=data["totals"], plots=_plots(data)
        )
