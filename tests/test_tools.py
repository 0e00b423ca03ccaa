"""Tool calls through the gateway with an OpenAI-compatible model: passed on both ways,
streamed, checked by the guards (names masked on the way in and restored in the arguments,
a denied term blocked), audited; and refused by backends that only write text. (The
embedded llama.cpp model's own calls are tested in test_embedded_model.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from bastion.audit import AuditQuery
from conftest import LiveServer, ServedApp, remote_gateway, user_client

SEND_EMAIL = {
    "type": "function",
    "function": {
        "name": "send_email",
        "description": "Send an email.",
        "parameters": {
            "type": "object",
            "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
            "required": ["to", "body"],
        },
    },
}
LOOK_UP = {"type": "function", "function": {"name": "look_up", "parameters": {"type": "object"}}}


class CallingUpstream:
    """An OpenAI-compatible server that calls a tool whenever it is offered one: the one
    tool_choice names, else the first, with the last user message (as the gateway passed
    it on) as the body, "the codename" spelt out; its stream sends the arguments in two
    pieces. It keeps every request body it got."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            body = await request.json()
            self.bodies.append(body)
            said = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
            choice = body.get("tool_choice")
            if not body.get("tools") or choice == "none":
                message: dict[str, Any] = {"role": "assistant", "content": f"no tool: {said}"}
                finish = "stop"
            else:
                name = choice["function"]["name"] if isinstance(choice, dict) else None
                name = name or body["tools"][0]["function"]["name"]
                # "the codename" is written out: a term the person never typed
                written = said.replace("the codename", "Project Nightingale")
                arguments = json.dumps({"to": "sales", "body": written})
                call = {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
                message = {"role": "assistant", "content": None, "tool_calls": [call]}
                finish = "tool_calls"
            if body.get("stream"):
                return StreamingResponse(_chunks(message, finish), media_type="text/event-stream")
            usage = {"prompt_tokens": 7, "completion_tokens": 5}
            reply = {"choices": [{"message": message, "finish_reason": finish}], "usage": usage}
            return JSONResponse(reply)

        self.served = ServedApp(app)


async def _chunks(message: dict[str, Any], finish: str) -> Any:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return f"data: {json.dumps({'choices': [{'delta': delta, 'finish_reason': finish}]})}\n\n"

    if message.get("content"):
        yield chunk({"content": message["content"]})
    for i, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        function = {"name": call["function"]["name"], "arguments": arguments[:10]}
        head = {"index": i, "id": call["id"], "type": "function", "function": function}
        yield chunk({"tool_calls": [head]})
        yield chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[10:]}}]})
    yield chunk({}, finish) + "data: [DONE]\n\n"


@pytest.fixture(scope="module")
def upstream() -> Iterator[CallingUpstream]:
    server = CallingUpstream()
    with server.served:
        yield server


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: CallingUpstream
) -> Iterator[LiveServer]:
    with remote_gateway(tmp_path_factory.mktemp("tools-home"), upstream.served.port) as live:
        yield live


@pytest.fixture(scope="module")
def client(gateway: LiveServer) -> openai.OpenAI:
    return user_client(gateway)


def after_a_call(asked: str, name: str, arguments: str, result: str, then: str) -> Any:
    """A conversation: a question, the model's call (call_9), its result, a new question."""
    made = {"id": "call_9", "type": "function", "function": {"name": name, "arguments": arguments}}
    return [
        {"role": "user", "content": asked},
        {"role": "assistant", "content": None, "tool_calls": [made]},
        {"role": "tool", "tool_call_id": "call_9", "content": result},
        {"role": "user", "content": then},
    ]


def call(client: openai.OpenAI, text: str, **kw: Any) -> Any:
    messages = [{"role": "user", "content": text}]
    return client.chat.completions.create(model="remote", messages=messages, **kw)  # type: ignore[arg-type]


def test_tools_are_passed_on_and_calls_come_back(
    client: openai.OpenAI, upstream: CallingUpstream
) -> None:
    answer = call(client, "tell sales the launch moved", tools=[SEND_EMAIL, LOOK_UP])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (made,) = choice.message.tool_calls or []
    assert made.function.name == "send_email"
    assert json.loads(made.function.arguments) == {
        "to": "sales",
        "body": "tell sales the launch moved",
    }
    sent = upstream.bodies[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["send_email", "look_up"]
    assert sent["tool_choice"] == "auto"
    named = {"type": "function", "function": {"name": "look_up"}}
    answer = call(client, "find it", tools=[SEND_EMAIL, LOOK_UP], tool_choice=named)
    assert (answer.choices[0].message.tool_calls or [])[0].function.name == "look_up"
    assert upstream.bodies[-1]["tool_choice"] == named
    answer = call(client, "just talk", tools=[SEND_EMAIL], tool_choice="none")
    assert answer.choices[0].message.content == "no tool: just talk"


def test_a_streamed_call_arrives_whole(client: openai.OpenAI) -> None:
    chunks = list(call(client, "tell sales hello", tools=[SEND_EMAIL], stream=True))
    pieces = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert len(pieces) == 1 and pieces[0].function is not None
    assert pieces[0].function.name == "send_email"
    arguments = json.loads(pieces[0].function.arguments or "")
    assert arguments == {"to": "sales", "body": "tell sales hello"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_the_conversation_goes_back_with_the_call_and_its_result(
    client: openai.OpenAI, upstream: CallingUpstream
) -> None:
    messages = after_a_call("what is in stock?", "look_up", "{}", "12 sensors", "so how many?")
    answer = client.chat.completions.create(model="remote", messages=messages)
    assert answer.choices[0].message.content == "no tool: so how many?"
    sent = {m["role"]: m for m in upstream.bodies[-1]["messages"]}
    assert sent["assistant"]["content"] is None
    assert sent["assistant"]["tool_calls"][0]["function"] == {"name": "look_up", "arguments": "{}"}
    assert sent["tool"]["tool_call_id"] == "call_9"
    assert "12 sensors" in sent["tool"]["content"]  # marked as data for the model


def test_names_are_masked_for_the_model_and_restored_in_the_call(
    client: openai.OpenAI, upstream: CallingUpstream, gateway: LiveServer
) -> None:
    answer = call(client, "write to jane.doe@example.com", tools=[SEND_EMAIL])
    arguments = json.loads((answer.choices[0].message.tool_calls or [])[0].function.arguments)
    assert arguments["body"] == "write to jane.doe@example.com"  # the tool gets the real one
    assert "jane.doe@example.com" not in json.dumps(upstream.bodies[-1])  # the model did not
    record = gateway.platform.audit.search(AuditQuery(tenant="acme", limit=1)).records[0]
    assert "send_email" in record["response"]
    assert "jane.doe@example.com" not in json.dumps(record)
    # an earlier call's arguments going back to the model are masked too
    arguments = '{"to": "jane.doe@example.com", "body": "hi"}'
    messages = after_a_call("who did we write to?", "send_email", arguments, "sent", "thanks")
    client.chat.completions.create(model="remote", messages=messages)
    assert "jane.doe@example.com" not in json.dumps(upstream.bodies[-1])


def test_a_call_whose_arguments_a_guard_blocks_is_not_sent(client: openai.OpenAI) -> None:
    """The deny list blocks 'project nightingale' in answers: also inside a call's
    arguments (the model wrote it; the person did not)."""
    answer = call(client, "tell them the codename", tools=[SEND_EMAIL])
    assert answer.choices[0].finish_reason == "content_filter"
    assert not answer.choices[0].message.tool_calls


def test_tool_requests_that_cannot_be_honoured_are_refused_clearly(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError, match="does not give tool calls"):
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "hi"}],
            tools=[SEND_EMAIL],  # type: ignore[list-item]
        )
    with pytest.raises(openai.BadRequestError, match="not among the tools"):
        call(
            client,
            "hi",
            tools=[SEND_EMAIL],
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    with pytest.raises(openai.BadRequestError, match="tool_choice needs tools"):
        call(client, "hi", tool_choice="required")
    bad = {"type": "function", "function": {"name": "x", "parameters": {"type": "nonsense"}}}
    with pytest.raises(openai.BadRequestError, match="not a valid JSON Schema"):
        call(client, "hi", tools=[bad])
