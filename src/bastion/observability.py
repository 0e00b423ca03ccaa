"""Prometheus metrics and structured (JSON) logs carrying the trace id."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "bastion_requests_total", "Chat requests by outcome.", ["app", "model", "status"]
)
TOKENS = Counter("bastion_tokens_total", "Tokens processed.", ["model", "kind"])
HTTP_LATENCY = Histogram(
    "bastion_http_request_seconds",
    "HTTP request latency.",
    ["route", "status"],
    buckets=(
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
    ),
)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: str, json_format: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger("bastion")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
