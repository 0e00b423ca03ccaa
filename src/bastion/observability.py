"""Prometheus metrics, structured (JSON) logs carrying the trace id, and OpenTelemetry
traces (a span per request and per stage; off unless `tracing.exporter` is set)."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from bastion.config import TracingConfig

REQUESTS = Counter(
    "bastion_requests_total", "Chat requests by outcome.", ["app", "model", "status"]
)
TOKENS = Counter("bastion_tokens_total", "Tokens processed.", ["model", "kind"])
IN_FLIGHT = Gauge(
    "bastion_http_requests_in_flight", "HTTP requests being served (server.max_in_flight caps it)."
)
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


def resident_memory_bytes() -> int:
    """This process's resident memory now (Linux; a mapped model's pages count once read)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


TRACER = trace.get_tracer("bastion")  # the no-op tracer until a provider is installed


def tracer_provider(settings: TracingConfig) -> Any:
    """An OpenTelemetry SDK provider exporting Bastion's spans as configured, or None when
    tracing is off. Spans leave in batches on a background thread."""
    if settings.exporter == "none":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # No endpoint: the exporter reads OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4318.
        exporter: Any = (
            OTLPSpanExporter(endpoint=settings.endpoint)
            if settings.endpoint
            else OTLPSpanExporter()
        )
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBasedTraceIdRatio(settings.sample_ratio),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing(settings: TracingConfig) -> None:
    """Install the provider process-wide (FastAPI's HTTP spans and Bastion's share it), once:
    a provider the host application installed already is kept."""
    provider = tracer_provider(settings)
    if provider is None:
        return
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    else:
        logging.getLogger(__name__).info("a tracer provider is installed already; keeping it")
