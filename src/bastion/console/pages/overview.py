"""The overview: requests, blocked and flagged answers, latency and tokens over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from bastion.audit import ActivityBucket, AuditLog
from bastion.console.web import AdminViewer, Console
from bastion.plots import concise_dates, inline_png, pyplot


def activity(audit: AuditLog, tenant: str, days: int) -> dict[str, Any]:
    """Per-bucket counts (hours for two days or less, else days) of the last `days`."""
    start = datetime.now(UTC) - timedelta(days=days)
    width = 13 if days <= 2 else 10  # ISO text cut to the hour or the day
    now = datetime.now(UTC)
    step = timedelta(hours=1) if width == 13 else timedelta(days=1)
    # Every hour or day of the period, so quiet ones show as zero rather than as gaps.
    moments = [start + n * step for n in range(int((now - start) / step) + 1)]
    buckets = {key: ActivityBucket(key) for key in (m.isoformat()[:width] for m in moments)}
    summed = audit.activity(tenant, start.isoformat(), width)
    buckets.update((b.key, b) for b in summed.buckets)
    keys = sorted(buckets)
    totals: dict[str, Any] = {
        k: sum(getattr(buckets[b], k) for b in keys)
        for k in ("requests", "blocked", "flagged", "errors", "tokens")
    }
    p50 = summed.latency_p50
    totals["latency_p50"] = round(p50) if p50 is not None else None
    return {
        "keys": keys,
        "buckets": buckets,
        "totals": totals,
        "hourly": width == 13,
        "start": start.replace(tzinfo=None),  # naive UTC, as the bucket keys are
        "end": now.replace(tzinfo=None),
    }


def _plots(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Three small plots over the whole period, each bucket a point (UTC)."""
    keys, buckets = data["keys"], data["buckets"]
    if not keys:
        return []
    plt = pyplot()
    hourly = data["hourly"]
    moments = [datetime.fromisoformat(k + (":00" if hourly else "")) for k in keys]
    series = {
        "Requests, blocked and flagged (UTC)": (
            "per hour" if hourly else "per day",
            [
                ("requests", "#1f5fbf", [buckets[k].requests for k in keys]),
                ("blocked", "#b3261e", [buckets[k].blocked for k in keys]),
                ("flagged or redacted", "#d08c00", [buckets[k].flagged for k in keys]),
            ],
        ),
        "Latency (UTC)": (
            "ms",
            [
                ("p50", "#1f5fbf", [buckets[k].latency_p50 for k in keys]),
                ("p95", "#6b3fa0", [buckets[k].latency_p95 for k in keys]),
            ],
        ),
        "Tokens, prompt and completion (UTC)": (
            "tokens",
            [("tokens", "#1e6b3a", [buckets[k].tokens for k in keys])],
        ),
    }
    figures = []
    for caption, (unit, lines) in series.items():
        fig, ax = plt.subplots(figsize=(6, 2.4))
        for label, color, values in lines:
            ax.plot(moments, values, label=label, color=color, marker="o", markersize=3)
        ax.set_xlim(data["start"], data["end"])  # the whole period, however few points
        ax.set_ylim(bottom=0)
        ax.set_ylabel(unit)
        concise_dates(ax)
        if len(lines) > 1:
            ax.legend(fontsize=8)
        figures.append((caption, inline_png(fig)))
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
