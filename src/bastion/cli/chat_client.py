"""The HTTP client behind `bastion chat` and `bastion feedback`."""

from __future__ import annotations

import json
from typing import Any

import httpx
from rich.console import Console

from bastion.errors import BastionError


class ChatClient:
    def __init__(
        self,
        url: str,
        key: str,
        *,
        model: str | None,
        app: str,
        max_tokens: int,
        temperature: float,
    ) -> None:
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=300,
        )
        self._options: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "app": app,
        }
        if model:
            self._options["model"] = model
        self.last_trace: str | None = None

    def send(self, messages: list[dict[str, str]], *, stream: bool, out: Console) -> str:
        """Send the conversation; print the answer as it arrives and return it."""
        body = {**self._options, "messages": messages, "stream": stream}
        try:
            if not stream:
                response = self._client.post("/v1/chat/completions", json=body)
                data = self._checked(response)
                text: str = data["choices"][0]["message"]["content"]
                out.print(text, highlight=False)
                self._trailer(data.get("bastion") or {}, out)
                return text
            parts: list[str] = []
            with self._client.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    self._checked(response)
                for line in response.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        raise BastionError(chunk["error"]["message"])
                    for choice in chunk.get("choices", []):
                        piece = choice.get("delta", {}).get("content") or ""
                        parts.append(piece)
                        out.print(piece, end="", highlight=False, markup=False)
                    if chunk.get("bastion"):
                        out.print()
                        self._trailer(chunk["bastion"], out)
            return "".join(parts)
        except httpx.TransportError as exc:
            raise BastionError(
                f"cannot reach the server: {exc}; is `bastion serve` running?"
            ) from exc

    @staticmethod
    def _checked(response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code >= 400:
            message = (data.get("error") or {}).get("message") or response.text
            raise BastionError(f"{response.status_code}: {message}")
        return data

    def feedback(self, body: dict[str, Any]) -> Any:
        """Rate the last answer (POST /v1/feedback)."""
        if self.last_trace is None:
            raise BastionError("no answer to rate yet")
        try:
            return self._checked(
                self._client.post("/v1/feedback", json={"trace_id": self.last_trace, **body})
            )
        except httpx.TransportError as exc:
            raise BastionError(f"cannot reach the server: {exc}") from exc

    def _trailer(self, bastion: dict[str, Any], out: Console) -> None:
        self.last_trace = bastion.get("trace_id")
        trust = (bastion.get("trust") or {}).get("action", "allow")
        out.print(f"[dim]trace {bastion.get('trace_id')} · trust: {trust}[/dim]")


def send_feedback(url: str, key: str, body: dict[str, Any]) -> Any:
    client = ChatClient(url, key, model=None, app="chat", max_tokens=1, temperature=0)
    client.last_trace = body.pop("trace_id")
    return client.feedback(body)
