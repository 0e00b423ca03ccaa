"""Any OpenAI-compatible `/v1/chat/completions` server: vLLM, llama.cpp server, Ollama, ..."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx

from bastion.errors import BackendError, BadRequest
from bastion.models.base import (
    ChatMessage,
    Generation,
    GenerationParams,
    ModelInfo,
    StreamDelta,
    TokenLogprob,
    ToolCall,
    new_call_id,
)

_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
_MAX_BACKOFF_S = 8.0


class OpenAICompatibleBackend:
    """Talks to a remote server with timeouts, retries (with backoff) and streaming.

    Retries cover connection failures and retryable statuses before any output was
    received; a stream that breaks half-way is reported, not silently restarted.
    """

    def __init__(
        self,
        info: ModelInfo,
        base_url: str,
        *,
        remote_model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 2,
        backoff_s: float = 0.5,
    ) -> None:
        self.info = info
        self.remote_model = remote_model or info.name
        self.retries = retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        )

    @classmethod
    def from_env(
        cls, info: ModelInfo, base_url: str, api_key_env: str | None, **kw: Any
    ) -> OpenAICompatibleBackend:
        return cls(
            info,
            base_url,
            api_key=os.environ.get(api_key_env) if api_key_env else None,
            **kw,
        )

    def _body(
        self, messages: list[ChatMessage], params: GenerationParams, stream: bool
    ) -> dict[str, Any]:
        sampling = params.sampling()
        body: dict[str, Any] = {
            "model": self.remote_model,
            "messages": [m.openai() for m in messages],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "stream": stream,
        }
        if sampling.repetition_penalty != 1.0:  # not OpenAI's; vLLM's name for it
            body["repetition_penalty"] = sampling.repetition_penalty
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.json_format is not None:
            body["response_format"] = params.json_format.openai()
        if params.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = params.logprobs
        if params.tools is not None:
            body.update(params.tools.openai())
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after and retry_after.isdigit():
            return min(float(retry_after), _MAX_BACKOFF_S)
        return min(self.backoff_s * 2.0**attempt, _MAX_BACKOFF_S)

    def _send(self, body: dict[str, Any], stream: bool) -> httpx.Response:
        last_error = ""
        for attempt in range(self.retries + 1):
            response: httpx.Response | None = None
            try:
                request = self._client.build_request("POST", "/chat/completions", json=body)
                response = self._client.send(request, stream=stream)
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response
                detail = response.read().decode("utf-8", "replace")[:500]
                if response.status_code not in _RETRYABLE_STATUS:
                    response.close()
                    raise BadRequest(
                        f"model server for '{self.info.name}' rejected the request "
                        f"({response.status_code}): {detail}"
                    )
                last_error = f"HTTP {response.status_code}: {detail}"
                response.close()
            if attempt < self.retries:
                time.sleep(self._delay(attempt, response))
        raise BackendError(
            f"model server for '{self.info.name}' at {self._client.base_url} failed after "
            f"{self.retries + 1} attempts ({last_error}); check that it is running"
        )

    def generate(self, messages: list[ChatMessage], params: GenerationParams) -> Generation:
        response = self._send(self._body(messages, params, stream=False), stream=False)
        try:
            data = response.json()
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            calls = [
                ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
                for c in choice["message"].get("tool_calls") or []
            ]
            return Generation(
                choice["message"].get("content") or "",
                int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", 0)),
                _finish(choice.get("finish_reason")),
                list(_logprobs(choice)) if params.logprobs is not None else None,
                calls,
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(
                f"model server for '{self.info.name}' sent an invalid answer: {exc}"
            ) from exc

    def stream(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> Iterator[StreamDelta]:
        response = self._send(self._body(messages, params, stream=True), stream=True)
        finish: str | None = None
        usage: dict[str, Any] = {}
        calls: dict[int, dict[str, str]] = {}  # tool calls come in pieces, by index
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                chunk = json.loads(payload)
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or ""
                    finish = choice.get("finish_reason") or finish
                    logprobs = tuple(_logprobs(choice))
                    if text or logprobs:
                        yield StreamDelta(text, logprobs=logprobs)
                    for piece in (choice.get("delta") or {}).get("tool_calls") or []:
                        call = calls.setdefault(piece["index"], {"id": "", "name": "", "args": ""})
                        function = piece.get("function") or {}
                        call["id"] = piece.get("id") or call["id"]
                        call["name"] += function.get("name") or ""
                        call["args"] += function.get("arguments") or ""
        except (httpx.TransportError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"stream from model server for '{self.info.name}' broke: {exc}"
            ) from exc
        finally:
            response.close()
        yield StreamDelta(
            "",
            _finish(finish),
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
            tool_calls=tuple(
                ToolCall(c["id"] or new_call_id(), c["name"], c["args"])
                for _, c in sorted(calls.items())
            ),
        )


def _logprobs(choice: dict[str, Any]) -> Iterator[TokenLogprob]:
    """A choice's (or a chunk's) token log-probabilities, in OpenAI's shape."""
    for item in (choice.get("logprobs") or {}).get("content") or []:
        top = tuple((t["token"], float(t["logprob"])) for t in item.get("top_logprobs") or [])
        yield TokenLogprob(item["token"], float(item["logprob"]), top)


def _finish(reason: Any) -> Any:
    return reason if reason in ("stop", "length", "content_filter", "tool_calls") else "stop"
