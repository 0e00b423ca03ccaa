"""The pipeline's own guarantees: stage order, output guards, slots and audit on every path."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from bastion.errors import Overloaded
from bastion.guards import GuardChain
from bastion.guards.deny_list import DenyListGuard
from bastion.models import ChatMessage, GenerationParams
from bastion.pipeline import ChatRequest, InputGuards, Pipeline
from bastion.platform import Platform
from conftest import ECHO_CONFIG, LiveServer, write_config


def leak_everything(platform: Platform) -> Pipeline:
    """A pipeline whose input guard lets 'secret plan' through, so the output guard must act."""
    stages = [InputGuards([]) if s.name == "input_guards" else s for s in platform.pipeline.stages]
    return Pipeline(
        platform.config,
        stages,
        platform.registry,
        GuardChain([], [DenyListGuard(["secret plan"], "redact")], []),
        platform.audit,
    )


def request(text: str, stream: bool = False) -> ChatRequest:
    return ChatRequest([ChatMessage("user", text)], GenerationParams(), "echo", "chat", stream)


def test_stage_order_is_declared_in_one_place(platform: Platform) -> None:
    names = [s.name for s in platform.pipeline.stages]
    assert names == [
        "identify",
        "authorize",
        "limit",
        "assign_arm",
        "app_template",
        "retrieve",
        "input_guards",
        "prepare_prompt",
        "route",
    ]


def test_output_guard_redacts_whole_answers(platform: Platform) -> None:
    pipeline = leak_everything(platform)
    key = platform.access.create_key(tenant="acme", user="a", role="admin").secret
    done = pipeline.complete(pipeline.prepare(request("the secret plan is here"), key))
    assert done.text == "the [REDACTED] is here"
    assert done.bastion["trust"]["action"] == "redact"
    assert platform.audit.get(done.trace_id)["response"] == done.text


def test_output_guard_redacts_streams_over_http(platform: Platform) -> None:
    platform.pipeline = leak_everything(platform)
    with LiveServer(platform) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=server.key())
        chunks = list(
            client.chat.completions.create(
                model="echo",
                messages=[{"role": "user", "content": "a b c secret plan d e"}],
                stream=True,
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a b c [REDACTED] d e"
    trust = next(c.model_extra["bastion"] for c in chunks if c.model_extra.get("bastion"))["trust"]
    assert any(v["stage"] == "output" and v["action"] == "redact" for v in trust["verdicts"])


def test_a_stream_closed_early_is_audited_and_frees_its_slot(platform: Platform) -> None:
    key = platform.access.create_key(tenant="acme", user="a", role="admin").secret
    ctx = platform.pipeline.prepare(request("word " * 100, stream=True), key)
    events = platform.pipeline.open_stream(ctx)
    assert platform.registry.gate("echo").in_flight == 1
    next(events)
    events.close()
    assert platform.registry.gate("echo").in_flight == 0
    record = platform.audit.get(ctx.trace_id)
    assert record["status"] == "cancelled" and record["stream"] is True
    assert platform.audit.verify().ok


@pytest.fixture
def single_slot(home: Path) -> Iterator[Platform]:
    """The echo model with one slot and no queue."""
    config = copy.deepcopy(ECHO_CONFIG)
    config["models"][0].update(max_concurrency=1, max_queue=0)
    platform = Platform.open(home, write_config(home, config))
    yield platform
    platform.close()


def test_a_full_queue_answers_503_with_retry_after(single_slot: Platform) -> None:
    gate = single_slot.registry.gate("echo")
    with LiveServer(single_slot) as server, gate.slot():
        response = httpx.post(
            server.url + "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {server.key()}"},
        )
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert single_slot.audit.recent()[-1]["status"] == "error"


def test_overloaded_stream_is_refused_before_it_starts(single_slot: Platform) -> None:
    key = single_slot.access.create_key(tenant="acme", user="a", role="admin").secret
    ctx = single_slot.pipeline.prepare(request("x", stream=True), key)
    with single_slot.registry.gate("echo").slot(), pytest.raises(Overloaded):
        single_slot.pipeline.open_stream(ctx)
    assert single_slot.audit.get(ctx.trace_id)["status"] == "error"
