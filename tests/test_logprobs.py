"""Token log-probabilities through the gateway: passed on from an OpenAI-compatible model,
streamed, refused by backends without them, and withheld once a guard changed the answer.
(The embedded llama.cpp model's own are tested in test_embedded_model.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from conftest import ServedApp, remote_gateway, streamed_logprobs, user_client


def _logprobs(words: list[str], top: int) -> list[dict[str, Any]]:
    return [
        {
            "token": w,
            "logprob": -0.5 * i,
            "bytes": list(w.encode()),
            "top_logprobs": [
                {"token": t, "logprob": lp, "bytes": list(t.encode())}
                for t, lp in [(w, -0.5 * i), (" maybe", -4.0)][:top]
            ],
        }
        for i, w in enumerate(words)
    ]


def echoing_upstream() -> FastAPI:
    """An OpenAI-compatible server that repeats the last user message (as the gateway
    passed it on, masked) word by word, with made-up log-probabilities when asked."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        text = body["messages"][-1]["content"]
        words = [w if i == 0 else " " + w for i, w in enumerate(text.split())]
        logprobs = _logprobs(words, body.get("top_logprobs", 0)) if body.get("logprobs") else None
        if not body.get("stream"):
            choice: dict[str, Any] = {"message": {"content": text}, "finish_reason": "stop"}
            choice["logprobs"] = {"content": logprobs} if logprobs else None
            usage = {"prompt_tokens": 5, "completion_tokens": len(words)}
            return JSONResponse({"choices": [choice], "usage": usage})

        async def chunks() -> Any:
            for i, word in enumerate(words):
                delta: dict[str, Any] = {"delta": {"content": word}, "finish_reason": None}
                if logprobs:
                    delta["logprobs"] = {"content": [logprobs[i]]}
                yield f"data: {json.dumps({'choices': [delta]})}\n\n"
            last = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    with (
        ServedApp(echoing_upstream()) as upstream,
        remote_gateway(tmp_path_factory.mktemp("logprobs-home"), upstream.port) as gateway,
    ):
        yield user_client(gateway)


def ask(client: openai.OpenAI, text: str, **kw: Any) -> Any:
    return client.chat.completions.create(
        model="remote", messages=[{"role": "user", "content": text}], **kw
    )


def test_logprobs_of_a_remote_model_are_passed_on(client: openai.OpenAI) -> None:
    answer = ask(client, "the quarterly numbers look fine", logprobs=True, top_logprobs=2)
    choice = answer.choices[0]
    assert choice.logprobs is not None
    tokens = choice.logprobs.content or []
    assert "".join(t.token for t in tokens) == choice.message.content
    assert [t.logprob for t in tokens] == [-0.5 * i for i in range(len(tokens))]
    assert all(len(t.top_logprobs) == 2 and t.top_logprobs[0].token == t.token for t in tokens)
    assert tokens[1].bytes == list(b" quarterly")
    plain = ask(client, "the quarterly numbers look fine")
    assert plain.choices[0].logprobs is None  # only when asked for


def test_streamed_logprobs_add_up_to_the_answer(client: openai.OpenAI) -> None:
    chunks = list(ask(client, "ship the release on friday", logprobs=True, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    tokens = streamed_logprobs(chunks)
    assert text == "ship the release on friday"
    assert "".join(t.token for t in tokens) == text
    assert all(t.top_logprobs == [] for t in tokens)  # top_logprobs not asked: none


def test_logprobs_are_withheld_when_a_guard_changed_the_answer(client: openai.OpenAI) -> None:
    """The model saw (and repeated) a placeholder where the email was: its tokens are not
    the answer the client gets, so they are not sent."""
    for stream in (False, True):
        if stream:
            chunks = list(ask(client, "write to jane.doe@example.com", logprobs=True, stream=True))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            last = chunks[-1]
            logprobs, bastion = last.choices[0].logprobs, last.model_extra["bastion"]
        else:
            answer = ask(client, "write to jane.doe@example.com", logprobs=True)
            text, logprobs = answer.choices[0].message.content, answer.choices[0].logprobs
            bastion = answer.model_extra["bastion"]
        assert text == "write to jane.doe@example.com"  # restored for the client
        assert logprobs is None
        assert bastion["logprobs"] == "withheld: the guards changed the answer"


def test_a_backend_without_logprobs_refuses_them_clearly(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="does not give logprobs"):
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi"}], logprobs=True
        )
    with pytest.raises(openai.BadRequestError, match="top_logprobs needs logprobs"):
        ask(client, "hi", top_logprobs=2)
    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        ask(client, "hi", logprobs=True, top_logprobs=21)
