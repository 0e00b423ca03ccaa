"""OpenTelemetry traces: a span per request with one per stage and the generation, under
the HTTP request's span when the server receives it, carrying the audit trace id; the
exporters built from the configuration; nothing installed when tracing is off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult

from bastion.config import TracingConfig
from bastion.observability import tracer_provider
from bastion.platform import Platform
from conftest import ECHO_CONFIG, LiveServer, write_config

EXPORTED = InMemorySpanExporter()


class Switch(Sampler):
    """Samples while these tests run; afterwards spans are not recorded, so the rest of the
    session pays nothing for the provider a process can install only once."""

    on = True

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return (ALWAYS_ON if self.on else ALWAYS_OFF).should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return "on while the tracing tests run"


@pytest.fixture(scope="module", autouse=True)
def _provider() -> Iterator[None]:
    """The process-wide provider, as `tracing.exporter` would install it, but in memory."""
    switch = Switch()
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = TracerProvider(sampler=switch)
        provider.add_span_processor(SimpleSpanProcessor(EXPORTED))
        trace.set_tracer_provider(provider)
    yield
    switch.on = False
    EXPORTED.clear()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    EXPORTED.clear()
    yield EXPORTED


def test_a_request_is_traced_stage_by_stage_under_the_http_span(
    home: Path, spans: InMemorySpanExporter
) -> None:
    answer = _chat(home, "admin", "echo")
    assert answer.status_code == 200
    found: dict[str, ReadableSpan] = {s.name: s for s in spans.get_finished_spans()}
    request = found["bastion.request"]
    stages = ["identify", "authorize", "input_guards", "prepare_prompt", "route"]
    for name in [*(f"bastion.{s}" for s in stages), "bastion.generate"]:
        assert _parent(found[name]) == request.context.span_id
        assert found[name].context.trace_id == request.context.trace_id
    assert request.attributes is not None
    assert request.attributes["bastion.trace_id"] == answer.json()["bastion"]["trace_id"]
    assert request.attributes["bastion.status"] == "ok"
    assert request.attributes["gen_ai.request.model"] == "echo"
    assert request.attributes["bastion.tenant"] == "acme"
    http = [s for s in spans.get_finished_spans() if s.context.span_id == _parent(request)]
    assert http, "the request's span sits under FastAPI's HTTP span"


def _chat(home: Path, role: str, model: str) -> httpx.Response:
    """One chat completion over HTTP from a user of `role`, on a server started for it."""
    platform = Platform.open(home, write_config(home, ECHO_CONFIG))
    key = platform.access.create_key(tenant="acme", user="a", role=role).secret
    try:
        with LiveServer(platform) as server:
            return httpx.post(
                f"{server.url}/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "hello there"}]},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
    finally:
        platform.close()


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_a_refused_request_ends_its_span_with_the_outcome(
    home: Path, spans: InMemorySpanExporter
) -> None:
    refused = _chat(home, "user", "echo-premium")  # not a model the role may use
    assert refused.status_code == 403
    (request,) = [s for s in spans.get_finished_spans() if s.name == "bastion.request"]
    assert request.attributes is not None and request.attributes["bastion.status"] == "rejected"
    authorize = next(s for s in spans.get_finished_spans() if s.name == "bastion.authorize")
    assert authorize.status.status_code == trace.StatusCode.ERROR  # where it was refused


def test_exporters_are_built_from_the_configuration() -> None:
    assert tracer_provider(TracingConfig()) is None  # off by default: nothing installed
    otlp = tracer_provider(
        TracingConfig(exporter="otlp", endpoint="http://collector:4318/v1/traces")
    )
    (processor,) = otlp._active_span_processor._span_processors
    assert isinstance(processor.span_exporter, OTLPSpanExporter)
    assert otlp.resource.attributes["service.name"] == "bastion"
    otlp.shutdown()
    console = tracer_provider(TracingConfig(exporter="console", sample_ratio=0.5))
    assert "0.5" in console.sampler.get_description()
    console.shutdown()
