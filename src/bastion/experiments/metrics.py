"""Per-arm observations of an experiment, from the audit trail and the feedback table.

Every metric is a list of numbers per arm in arrival order (the sequential test needs the
order): one per request for latency, tokens, cost, errors and guard flags; one per rated
request for feedback score and acceptance; one per correction for edit distance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import Levenshtein

from bastion.config import ExperimentConfig, ModelConfig


@dataclass(frozen=True)
class MetricInfo:
    kind: str  # "rate" (0/1 per observation) or "mean"
    higher_is_better: bool
    per: str  # what one observation is


METRICS: dict[str, MetricInfo] = {
    "feedback_score": MetricInfo("mean", True, "rated request (rating 1-5 or thumbs, as 0-1)"),
    "acceptance_rate": MetricInfo("rate", True, "rated request (thumbs up or 4+, no edits)"),
    "edit_distance": MetricInfo("mean", False, "corrected request (normalised Levenshtein)"),
    "latency_ms": MetricInfo("mean", False, "request"),
    "completion_tokens": MetricInfo("mean", False, "request"),
    "cost_usd": MetricInfo("mean", False, "request (registry prices)"),
    "error_rate": MetricInfo("rate", False, "request"),
    "toxicity_flag_rate": MetricInfo("rate", False, "request"),
    "pii_leak_rate": MetricInfo("rate", False, "request (PII masked in the answer)"),
    "injection_flag_rate": MetricInfo("rate", False, "request (injection or canary)"),
    "groundedness_flag_rate": MetricInfo("rate", False, "request"),
    "copyright_flag_rate": MetricInfo("rate", False, "request (a `copyright` guard)"),
    "bias_flag_rate": MetricInfo("rate", False, "request (a `bias` guard)"),
}
_FLAGS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "toxicity_flag_rate": (("toxicity", None),),
    "pii_leak_rate": (("pii", "output"),),
    "injection_flag_rate": (("injection", None), ("canary", None)),
    "groundedness_flag_rate": (("groundedness", None),),
    "copyright_flag_rate": (("copyright", None),),
    "bias_flag_rate": (("bias", None),),
}


@dataclass
class ArmData:
    arm: str
    requests: int = 0
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, metric: str, value: float) -> None:
        self.values.setdefault(metric, []).append(float(value))


def _flagged(record: dict[str, Any], guards: tuple[tuple[str, str | None], ...]) -> bool:
    return any(
        v.get("guard") == guard
        and v.get("action") not in ("allow", None)
        and (stage is None or v.get("stage") == stage)
        for v in record.get("verdicts", [])
        for guard, stage in guards
    )


def _feedback_values(items: list[dict[str, Any]], response: str) -> dict[str, float]:
    out: dict[str, float] = {}
    item = items[0]  # the requester's own rating comes first when an admin also rated
    score = None
    if item.get("rating") is not None:
        score = (item["rating"] - 1) / 4
    elif item.get("thumbs") is not None:
        score = 1.0 if item["thumbs"] > 0 else 0.0
    edited = item.get("corrected_text") is not None
    if score is not None:
        out["feedback_score"] = score
        out["acceptance_rate"] = float(score >= 0.75 and not edited)
    if edited:
        out["edit_distance"] = Levenshtein.normalized_distance(response, item["corrected_text"])
    return out


def collect(
    spec: ExperimentConfig,
    records: list[dict[str, Any]],
    feedback: dict[str, list[dict[str, Any]]],
    models: list[ModelConfig],
) -> dict[str, ArmData]:
    """Arm -> observations, from the experiment's audit records (oldest first)."""
    prices = {m.name: m.price for m in models}
    arms = {v.name: ArmData(v.name) for v in spec.variants}
    for record in records:
        assigned = (record.get("extra") or {}).get("experiment") or {}
        if assigned.get("name") != spec.name or assigned.get("arm") not in arms:
            continue
        data = arms[assigned["arm"]]
        data.requests += 1
        data.add("latency_ms", record.get("latency_ms", 0.0))
        data.add("completion_tokens", record.get("completion_tokens", 0))
        price = prices.get(record.get("model") or "")
        cost = 0.0
        if price is not None:
            cost = (
                record.get("prompt_tokens", 0) * price.input_per_1m
                + record.get("completion_tokens", 0) * price.output_per_1m
            ) / 1e6
        data.add("cost_usd", cost)
        data.add("error_rate", record.get("status") == "error")
        for metric, guards in _FLAGS.items():
            data.add(metric, _flagged(record, guards))
        rated = feedback.get(record["trace_id"])
        if rated:
            own = sorted(rated, key=lambda f: f["user"] != record.get("user"))
            for metric, value in _feedback_values(own, record.get("response") or "").items():
                data.add(metric, value)
    return arms
