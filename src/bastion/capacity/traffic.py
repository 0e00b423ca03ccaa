"""The real traffic of a model, from the audit trail: its answered requests' prompt and
answer lengths (the token counts the backend reported) and how many came in an hour."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bastion.audit.log import AuditLog
from bastion.errors import BadRequest


@dataclass(frozen=True)
class ObservedTraffic:
    model: str
    requests: int
    since: str
    prompt_tokens_p50: int
    prompt_tokens_p95: int
    answer_tokens_p50: int
    answer_tokens_p95: int
    busiest_hour_qps: float  # requests per second in the busiest clock hour

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def observed_traffic(
    audit: AuditLog, model: str, since: datetime, tenant: str | None = None
) -> ObservedTraffic:
    prompts: list[int] = []
    answers: list[int] = []
    hours: Counter[str] = Counter()
    for record in audit.records(tenant):
        if record.get("model") != model or record.get("status") != "ok":
            continue
        at = datetime.fromisoformat(record["created_at"])
        if at < since or not record.get("completion_tokens"):
            continue
        prompts.append(int(record["prompt_tokens"]))
        answers.append(int(record["completion_tokens"]))
        hours[at.strftime("%Y-%m-%dT%H")] += 1
    if not prompts:
        raise BadRequest(
            f"the audit trail has no answered request to '{model}' since {since.isoformat()}; "
            "give --prompt-tokens and --answer-tokens instead, or an earlier --since"
        )
    return ObservedTraffic(
        model=model,
        requests=len(prompts),
        since=since.isoformat(),
        prompt_tokens_p50=_quantile(prompts, 0.5),
        prompt_tokens_p95=_quantile(prompts, 0.95),
        answer_tokens_p50=_quantile(answers, 0.5),
        answer_tokens_p95=_quantile(answers, 0.95),
        busiest_hour_qps=max(hours.values()) / 3600,
    )


def _quantile(values: list[int], q: float) -> int:
    """The nearest-rank quantile: a value that was really seen."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
