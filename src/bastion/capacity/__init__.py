"""Capacity: what serving a model takes (`bastion plan`, `GET /v1/admin/plan`).

architecture.py  the model's shape, read from its GGUF or Hugging Face files
hardware.py      the GPU table (hardware.yaml) and a probe of this machine
engine_probe.py  llama.cpp timed on slices of a GGUF: this machine's speeds for that model
traffic.py       prompt and answer lengths and the request rate, from the audit trail
planner.py       memory, speed, replicas and monthly cost for a traffic target
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bastion.audit.log import AuditLog
from bastion.capacity.architecture import read_architecture
from bastion.capacity.hardware import hardware_table, select
from bastion.capacity.planner import HOURS_PER_MONTH, Traffic, plan
from bastion.capacity.traffic import observed_traffic
from bastion.config import PriceConfig
from bastion.errors import BadRequest

DEFAULT_PROMPT_TOKENS = 512
DEFAULT_ANSWER_TOKENS = 256


@dataclass(frozen=True)
class PlanRequest:
    qps: float
    p95_ms: float
    hardware: list[str] | None = None  # names from the table, or this-machine; None: all
    precision: str | None = None  # None: bf16 on GPUs, the file as stored on a CPU
    prompt_tokens: int | None = None
    answer_tokens: int | None = None
    audit_since: datetime | None = None  # take the lengths the request leaves out from here
    prices: dict[str, float] = field(default_factory=dict)  # per device-hour, by name


def capacity_plan(
    name: str,
    weights: Path,
    request: PlanRequest,
    audit: AuditLog | None = None,
    tenant: str | None = None,
    token_price: PriceConfig | None = None,
) -> dict[str, Any]:
    """The plan for the model at `weights` on each chosen hardware, as JSON. With
    `request.audit_since`, the prompt and answer lengths not given are the p95 of the
    model's answered requests in `audit` (of `tenant`) since then. A `token_price` (the
    model's, when an API also sells it per token) is costed beside, per 1,000 requests."""
    observed = None
    prompt, answer = request.prompt_tokens, request.answer_tokens
    if request.audit_since is not None:
        if audit is None:
            raise BadRequest("reading the traffic from the audit trail needs a registered model")
        observed = observed_traffic(audit, name, request.audit_since, tenant)
        prompt = prompt or observed.prompt_tokens_p95
        answer = answer or observed.answer_tokens_p95
    traffic = Traffic(
        prompt or DEFAULT_PROMPT_TOKENS,
        answer or DEFAULT_ANSWER_TOKENS,
        request.qps,
        request.p95_ms,
    )
    arch = read_architecture(weights)
    chosen = [
        replace(h, price_per_hour=request.prices.get(h.name, h.price_per_hour))
        for h in select(request.hardware, hardware_table(), model=weights)
    ]
    rows = []
    for hardware in chosen:
        precision = request.precision or ("stored" if hardware.kind == "cpu" else "bf16")
        found = plan(arch, hardware, traffic, precision)
        rows.append({**found.to_dict(), "precision": precision, "spec": hardware.to_dict()})
    per_token = None
    if token_price is not None and (token_price.input_per_1m or token_price.output_per_1m):
        per_request = (
            traffic.prompt_tokens * token_price.input_per_1m
            + traffic.answer_tokens * token_price.output_per_1m
        ) / 1e6
        per_token = {
            "cost_per_1k_requests": round(1000 * per_request, 5),
            "cost_per_1m_tokens": round(1e6 * per_request / traffic.tokens, 5),
            "monthly_cost": round(per_request * traffic.qps * 3600 * HOURS_PER_MONTH, 2),
        }
    return {
        "model": name,
        "architecture": arch.to_dict(),
        "traffic": {
            "prompt_tokens": traffic.prompt_tokens,
            "answer_tokens": traffic.answer_tokens,
            "qps": traffic.qps,
            "p95_ms": traffic.p95_ms,
            "observed": observed.to_dict() if observed else None,
        },
        "hardware": rows,
        "recommended": _recommended(rows),
        "priced_per_token": per_token,
    }


def _recommended(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The hardware that meets the target cheapest a month (fewest devices when unpriced)."""
    met = [r for r in rows if r["replicas"] is not None]
    if not met:
        return None

    def devices(row: dict[str, Any]) -> int:
        return int(row["replicas"] * row["devices_per_replica"])

    priced = [r for r in met if r["monthly_cost"] is not None]
    if priced:
        return min(priced, key=lambda r: (r["monthly_cost"], devices(r)))
    return min(met, key=devices)
