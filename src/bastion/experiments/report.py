"""The experiment report: per-arm metrics, always-valid comparisons with the control, the
guardrails, and a decision; as JSON, a terminal table, or an HTML page with plots."""

from __future__ import annotations

import html
import math
import statistics
from typing import Any

import numpy as np

from bastion.config import ExperimentConfig
from bastion.experiments import stats
from bastion.experiments.metrics import METRICS, ArmData
from bastion.plots import inline_png, pyplot


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _p(value: float) -> float | None:
    """p-values keep their precision: rounding would turn 1e-12 into a meaningless 0."""
    return float(f"{value:.4g}") if math.isfinite(value) else None


def _p_or_one(value: float | None) -> float:
    return 1.0 if value is None else value


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 6),
        "p50": round(ordered[len(ordered) // 2], 6),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 6),
    }


def _fixed_horizon(kind: str, control: list[float], arm: list[float]) -> float | None:
    """The classic test's p-value: valid only when read once, at a horizon fixed in advance
    (shown for teams that planned one; the decision uses the sequential test)."""
    try:
        if kind == "rate":
            fixed = stats.two_proportions(int(sum(control)), len(control), int(sum(arm)), len(arm))
        else:
            fixed = stats.welch(control, arm)
    except ValueError:  # no variance yet
        return None
    return _p(fixed.p_value)


def _tau(control: list[float], arm: list[float], mde: float | None) -> float | None:
    """The mixing scale tuned to the declared minimum effect (primary metric), else default."""
    pooled = float(np.std(np.concatenate([control, arm])))
    return stats.tau_for(mde, pooled) if mde and pooled > 0 else None


def _compare(
    kind: str, control: list[float], arm: list[float], mde: float | None, alpha: float
) -> dict[str, Any] | None:
    if len(control) < 2 or len(arm) < 2:
        return None
    result = stats.sequential(control, arm, alpha=alpha, tau=_tau(control, arm, mde))
    return {
        "effect": _finite(result.effect),
        "ci_low": _finite(result.ci_low),
        "ci_high": _finite(result.ci_high),
        "p_value": _p(result.p_value),
        "significant": result.significant,
        "fixed_horizon_p_value": _fixed_horizon(kind, control, arm),
        "_result": result,
    }


def build_report(
    spec: ExperimentConfig, arms: dict[str, ArmData], state: dict[str, Any], alpha: float = 0.05
) -> dict[str, Any]:
    control = spec.variants[0].name
    treatments = [v.name for v in spec.variants[1:]]
    metrics: dict[str, Any] = {}
    for name, info in METRICS.items():
        per_arm = {a: _summary(arms[a].values.get(name, [])) for a in arms}
        comparisons = {}
        for arm in treatments:
            mde = spec.minimum_effect if name == spec.primary_metric else None
            compared = _compare(
                info.kind,
                arms[control].values.get(name, []),
                arms[arm].values.get(name, []),
                mde,
                alpha,
            )
            if compared is not None:
                comparisons[arm] = compared
        metrics[name] = {
            "higher_is_better": info.higher_is_better,
            "per": info.per,
            "arms": per_arm,
            "vs_control": comparisons,
        }
    primary = metrics[spec.primary_metric]
    # Several challengers: Holm keeps the family-wise error at alpha across them.
    tested = [a for a in treatments if a in primary["vs_control"]]
    p_values = [_p_or_one(primary["vs_control"][a]["p_value"]) for a in tested]
    adjusted = [float(p) for p in stats.holm(p_values)] if tested else []
    decisions = {}
    for arm, p_adj in zip(tested, adjusted, strict=True):
        entry = primary["vs_control"][arm]
        entry["p_holm"] = _p(float(p_adj))
        decision = stats.decide(
            entry["_result"],
            spec.minimum_effect,
            higher_is_better=METRICS[spec.primary_metric].higher_is_better,
        )
        verdict = decision.verdict
        if verdict == "ship_b" and p_adj > alpha:
            verdict = "keep_running"  # significant alone, not after the correction for arms
        decisions[arm] = {
            "verdict": verdict,
            "reason": decision.reason,
            "more_samples_per_arm": decision.more_samples,
        }
    for metric in metrics.values():
        for entry in metric["vs_control"].values():
            entry.pop("_result", None)
    return {
        "experiment": spec.name,
        "status": state.get("status"),
        "app": spec.app,
        "unit": spec.unit,
        "control": control,
        "primary_metric": spec.primary_metric,
        "minimum_effect": spec.minimum_effect,
        "requests": {a: arms[a].requests for a in arms},
        "stopped_arms": state.get("stopped_arms", {}),
        "metrics": metrics,
        "decisions": decisions,
        "decision": _overall(decisions, state),
    }


def _overall(decisions: dict[str, Any], state: dict[str, Any]) -> str:
    if not decisions:
        return "keep running (not enough data in the primary metric yet)"
    winners = [a for a, d in decisions.items() if d["verdict"] == "ship_b"]
    if winners:
        return f"ship {winners[0]}"
    running = [d for d in decisions.values() if d["verdict"] == "keep_running"]
    if running:
        more = max((d["more_samples_per_arm"] or 0) for d in running)
        return (
            f"keep running (about {more} more rated requests per arm)" if more else "keep running"
        )
    return "keep the control"


def render_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    arms = list(report["requests"])
    table = Table(
        "metric",
        *arms,
        *(f"{a} vs control" for a in arms[1:]),
        title=f"{report['experiment']}: {report['decision']}",
    )
    for name, metric in report["metrics"].items():
        cells = [
            f"{s['mean']:.4g} (n={s['n']})" if s.get("n") else "-" for s in metric["arms"].values()
        ]
        for arm in arms[1:]:
            c = metric["vs_control"].get(arm)
            cells.append(
                f"{c['effect']:+.3g} [{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]"
                + (" *" if c["significant"] else "")
                if c
                else "-"
            )
        marker = " (primary)" if name == report["primary_metric"] else ""
        table.add_row(name + marker, *cells)
    return table


def _fmt(value: float | None) -> str:
    return "-inf..inf" if value is None else f"{value:+.3g}"


def effect_over_time(
    report: dict[str, Any], arms: dict[str, ArmData]
) -> dict[str, dict[str, list[float]]]:
    """Per challenger, the primary metric's difference from the control and its always-valid
    95% confidence sequence as the observations per arm grew (about 60 points; an unbounded
    side is NaN): {arm: {"n": [...], "effect": [...], "low": [...], "high": [...]}}."""
    primary, control = report["primary_metric"], report["control"]
    out = {}
    for arm in list(arms)[1:]:
        a, b = arms[control].values.get(primary, []), arms[arm].values.get(primary, [])
        steps = min(len(a), len(b))
        tau = _tau(a, b, report["minimum_effect"]) if steps else None
        series: dict[str, list[float]] = {"n": [], "effect": [], "low": [], "high": []}
        for n in range(10, steps + 1, max(1, steps // 60)):
            r = stats.sequential(a[:n], b[:n], tau=tau)
            series["n"].append(n)
            series["effect"].append(r.effect)
            series["low"].append(r.ci_low if math.isfinite(r.ci_low) else np.nan)
            series["high"].append(r.ci_high if math.isfinite(r.ci_high) else np.nan)
        out[arm] = series
    return out


def figures(report: dict[str, Any], arms: dict[str, ArmData]) -> list[tuple[str, str]]:
    """The report's plots as (caption, inline PNG <img>): the primary metric's effect over
    time with its always-valid confidence band, its distribution per arm, latency per arm."""
    plt = pyplot()
    primary = report["primary_metric"]
    control = report["control"]
    out = []
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for arm, series in effect_over_time(report, arms).items():
        if series["n"]:
            ax.plot(series["n"], series["effect"], label=f"{arm} - {control}")
            ax.fill_between(series["n"], series["low"], series["high"], alpha=0.25)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("observations per arm")
    ax.set_ylabel(f"difference in {primary}")
    ax.set_title("Effect over time with its always-valid 95% confidence band")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    out.append((f"{primary}: each challenger minus the control", inline_png(fig)))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    data = [arms[a].values.get(primary, []) for a in arms]
    if any(data):
        ax.boxplot([d or [np.nan] for d in data], tick_labels=list(arms))
    ax.set_title(f"{primary} per arm")
    out.append((f"{primary} per arm", inline_png(fig)))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    lat = [arms[a].values.get("latency_ms", []) for a in arms]
    for arm, values in zip(arms, lat, strict=True):
        if values:
            ax.hist(values, bins=30, alpha=0.5, label=arm)
    ax.set_title("latency_ms per arm")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    out.append(("latency_ms per arm", inline_png(fig)))
    return out


def render_html(report: dict[str, Any], arms: dict[str, ArmData]) -> str:
    """A self-contained page: the decision, the table, the primary metric over time with its
    always-valid confidence band, and per-arm distributions."""
    primary = report["primary_metric"]
    control = report["control"]
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(
            f"<td>{s.get('mean', '-'):.4g} (n={s['n']})</td>" if s.get("n") else "<td>-</td>"
            for s in m["arms"].values()
        )
        + "</tr>"
        for name, m in report["metrics"].items()
    )
    head = "".join(f"<th>{html.escape(a)}</th>" for a in report["requests"])
    reasons = "".join(
        f"<li><b>{html.escape(a)}</b>: {html.escape(d['verdict'])} "
        f"({html.escape(d['reason'])})</li>"
        for a, d in report["decisions"].items()
    )
    images = "".join(image for _, image in figures(report, arms))
    return (
        "<!doctype html><meta charset='utf-8'>"
        f"<title>{html.escape(report['experiment'])}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "td,th{padding:.2em .6em;border-bottom:1px solid #ddd}"
        "img{display:block;margin:1em 0}</style>"
        f"<h1>{html.escape(report['experiment'])}</h1>"
        f"<p><b>Decision: {html.escape(report['decision'])}</b> (primary metric: "
        f"{html.escape(primary)}; control: {html.escape(control)})</p><ul>{reasons}</ul>"
        f"<table><tr><th>metric</th>{head}</tr>{rows}</table>{images}"
    )
