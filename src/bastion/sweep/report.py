"""A sweep's report: cost per 1,000 requests for each measured level, the Pareto front of
quality against cost, and the recommendation: the cheapest level whose quality meets the
bar the admin set (and its p95 latency the target, when one is given)."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion.config import PriceConfig
from bastion.errors import NotFound
from bastion.plots import inline_png, pyplot


def cost_per_1k(
    level: dict[str, Any], machine_hour: float | None, price: PriceConfig
) -> float | None:
    """A model priced per token costs its tokens; one served here costs this machine's
    hours for the time the level took (None when no price is known)."""
    requests = int(level["requests"])
    if price.input_per_1m or price.output_per_1m:
        spent = (
            level["prompt_tokens"] * price.input_per_1m
            + level["completion_tokens"] * price.output_per_1m
        )
        return 1000 * float(spent) / 1e6 / requests
    hourly = price.gpu_hour if price.gpu_hour is not None else machine_hour
    if hourly is None:
        return None
    return 1000 * hourly * float(level["wall_s"]) / 3600 / requests


def add_tuning_cost(
    level: dict[str, Any],
    training: dict[str, Any],
    machine_hour: float | None,
    volume: int | None,
) -> None:
    """A tuned candidate's one-off cost: its training time at this machine's
    price; spread over `volume` requests, it joins the cost per 1,000 requests (the
    serving part stays apart, in `serving_cost_per_1k_requests`)."""
    seconds = training.get("seconds")
    if machine_hour is None or not isinstance(seconds, int | float):
        level["tuning_cost"] = None  # no price, or a record from before jobs were timed
        return
    one_off = machine_hour * float(seconds) / 3600
    level["tuning_cost"] = {"seconds": float(seconds), "usd": one_off, "volume": volume}
    level["serving_cost_per_1k_requests"] = serving = level["cost_per_1k_requests"]
    if volume and serving is not None:
        level["cost_per_1k_requests"] = serving + 1000 * one_off / volume


def build_report(
    suite: str,
    levels: list[dict[str, Any]],
    quality_bar: float | None,
    p95_ms: float | None,
) -> dict[str, Any]:
    """`levels` carry their `cost_per_1k_requests`; the front and the pick among them."""
    front = pareto_front(levels)
    eligible = [
        level
        for level in levels
        if level["quality"] is not None
        and level["errors"] == 0
        and (quality_bar is None or level["quality"] >= quality_bar)
        and (p95_ms is None or (level["latency_ms"]["p95"] or 0) <= p95_ms)
    ]
    priced = all(level["cost_per_1k_requests"] is not None for level in eligible)
    if not eligible:
        pick, why = None, "no candidate meets the bar without errors; lower it or add candidates"
    elif priced:
        pick = min(eligible, key=lambda level: (level["cost_per_1k_requests"], -level["quality"]))
        why = "the cheapest per 1,000 requests of those that meet the bar"
    else:
        pick = max(eligible, key=lambda level: (level["requests_per_s"], level["quality"]))
        why = (
            "the highest throughput of those that meet the bar (no price for this machine: set "
            "capacity.prices.this-machine or --price-per-hour to rank by cost)"
        )
    return {
        "suite": suite,
        "quality_bar": quality_bar,
        "p95_ms_target": p95_ms,
        "levels": levels,
        "pareto_front": [_label(level) for level in front],
        "recommendation": None if pick is None else {**_brief(pick), "why": why},
        "why_none": None if pick is not None else why,
    }


def pareto_front(levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The levels no other is both cheaper (or as cheap) and better than."""
    scored = [
        level
        for level in levels
        if level["quality"] is not None and level["cost_per_1k_requests"] is not None
    ]
    front = []
    for level in scored:
        dominated = any(
            other is not level
            and other["cost_per_1k_requests"] <= level["cost_per_1k_requests"]
            and other["quality"] >= level["quality"]
            and (
                other["cost_per_1k_requests"] < level["cost_per_1k_requests"]
                or other["quality"] > level["quality"]
            )
            for other in scored
        )
        if not dominated:
            front.append(level)
    return sorted(front, key=lambda level: level["cost_per_1k_requests"])


def _label(level: dict[str, Any]) -> str:
    return f"{level['candidate']} at {level['concurrency']}"


def _brief(level: dict[str, Any]) -> dict[str, Any]:
    return {
        "candidate": level["candidate"],
        "concurrency": level["concurrency"],
        "quality": level["quality"],
        "cost_per_1k_requests": level["cost_per_1k_requests"],
        "latency_p95_ms": level["latency_ms"]["p95"],
    }


COLUMNS = [
    ("candidate", ("candidate",)),
    ("in flight", ("concurrency",)),
    ("quality", ("quality",)),
    ("$ / 1k req", ("cost_per_1k_requests",)),
    ("tuning $ (one-off)", ("tuning_cost", "usd")),
    ("p50 ms", ("latency_ms", "p50")),
    ("p95 ms", ("latency_ms", "p95")),
    ("TTFT p50 ms", ("ttft_ms", "p50")),
    ("tokens/s", ("tokens_per_s",)),
    ("req/s", ("requests_per_s",)),
    ("guard flags", ("guard_flag_rate",)),
    ("errors", ("errors",)),
    ("peak GB", ("peak_rss_gb",)),
]


def pareto_figure(report: dict[str, Any]) -> Any:
    """Quality against cost per 1,000 requests, each level a point (a colour a candidate,
    labelled with the requests in flight), the front dashed and the bar red; None when no
    level has a price."""
    priced = [
        lv
        for lv in report["levels"]
        if lv["cost_per_1k_requests"] is not None and lv["quality"] is not None
    ]
    if not priced:
        return None
    fig, ax = pyplot().subplots(figsize=(7, 4))
    for name in dict.fromkeys(lv["candidate"] for lv in priced):
        mine = [lv for lv in priced if lv["candidate"] == name]
        ax.scatter([lv["cost_per_1k_requests"] for lv in mine], [lv["quality"] for lv in mine],
                   s=40, label=name)  # fmt: skip
        for level in mine:  # how many requests were in flight
            point = (level["cost_per_1k_requests"], level["quality"])
            ax.annotate(f" {level['concurrency']}", point, fontsize=8)
    front = pareto_front(priced)
    ax.plot(
        [lv["cost_per_1k_requests"] for lv in front],
        [lv["quality"] for lv in front],
        linestyle="--",
        color="grey",
        label="Pareto front",
    )
    if report["quality_bar"] is not None:
        ax.axhline(report["quality_bar"], color="red", linewidth=0.8, label="quality bar")
    ax.set_xlabel("cost per 1,000 requests (USD); beside each point: requests in flight")
    ax.set_ylabel("quality")
    ax.set_title(f"{report['suite']}: quality against cost")
    ax.legend(loc="best")
    return fig


def render_html(report: dict[str, Any]) -> str:
    """A self-contained page: the pick, the Pareto plot, latency by concurrency, the table."""
    plt = pyplot()
    levels = report["levels"]
    pareto = pareto_figure(report)
    figures = [] if pareto is None else [inline_png(pareto)]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name in dict.fromkeys(lv["candidate"] for lv in levels):
        mine = sorted(
            (lv for lv in levels if lv["candidate"] == name), key=lambda lv: lv["concurrency"]
        )
        ax.plot(
            [lv["concurrency"] for lv in mine],
            [lv["latency_ms"]["p95"] for lv in mine],
            marker="o",
            label=name,
        )
    ax.set_xlabel("requests in flight")
    ax.set_ylabel("p95 latency (ms)")
    ax.legend(loc="best")
    figures.append(inline_png(fig))
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(lv, path)}</td>" for _, path in COLUMNS) + "</tr>"
        for lv in levels
    )
    pick = report["recommendation"]
    verdict = (
        f"Recommended: <b>{html.escape(pick['candidate'])}</b> at {pick['concurrency']} in "
        f"flight ({html.escape(pick['why'])})."
        if pick
        else html.escape(report["why_none"])
    )
    return (
        "<!doctype html><meta charset='utf-8'>"
        f"<title>Sweep: {html.escape(report['suite'])}</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
        "td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right}"
        "img{display:block;margin:1em 0}</style>"
        f"<h1>Sweep: {html.escape(report['suite'])}</h1><p>{verdict}</p>"
        f"{''.join(figures)}<table><tr>{head}</tr>{rows}</table>"
    )


def _cell(level: dict[str, Any], path: tuple[str, ...]) -> str:
    value: Any = level
    for key in path:  # a field only some levels have (a tuned model's cost) may be missing
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return "-"
    return html.escape(f"{value:.4g}" if isinstance(value, float) else str(value))


SWEEPS = "sweeps"  # under BASTION_HOME: where the console and the API look for reports


def saved_reports(
    root: Path, usable: set[str] | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The sweep reports (`report.json`) in the folders under `root`, newest first: each
    one's folder (relative to `root`), when it was written, suite, models, levels and
    recommendation. A file that is not a readable report is skipped, and with `usable`,
    one that names a model outside it (another tenant's tuned model: not theirs)."""
    found = []
    for path in root.glob("**/report.json") if root.is_dir() else []:
        read = _read_report(root, path, usable)
        if read is not None:
            found.append(read[0])
    found.sort(key=lambda r: r["written"], reverse=True)
    return found[:limit]


def saved_report(root: Path, folder: str, usable: set[str]) -> dict[str, Any]:
    """The whole report of one folder `saved_reports` lists."""
    path = root / folder / "report.json"
    inside = path.resolve().is_relative_to(root.resolve())  # no '..' out of the folder
    read = _read_report(root, path, usable) if inside else None
    if read is None:
        raise NotFound(
            f"no sweep report '{folder}'; GET /v1/admin/sweeps lists them "
            f"(they are the `bastion sweep --out` folders under {SWEEPS}/ in BASTION_HOME)"
        )
    return read[1]


def _read_report(
    root: Path, path: Path, usable: set[str] | None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A report's summary and the report itself; None when the file is not a readable
    report, or names a model outside `usable`."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        levels = report["levels"]
        summary = {
            "folder": str(path.parent.relative_to(root)),
            "written": datetime.fromtimestamp(path.stat().st_mtime, UTC),
            "suite": str(report["suite"]),
            "models": sorted({str(level["model"]) for level in levels}),
            "levels": len(levels),
            "recommendation": report.get("recommendation"),
            "why_none": report.get("why_none"),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if usable is not None and not set(summary["models"]) <= usable:
        return None
    return summary, report
