"""A deterministic, zero-latency backend for tests and gateway benchmarks.

It answers with the last user message, word by word; token counts are word counts. Asked
for JSON (a response_format), it answers the last user message when that is JSON of the
asked shape, and refuses otherwise, so tests can script a structured answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

from bastion.errors import BadRequest
from bastion.models.base import (
    ChatMessage,
    Generation,
    GenerationParams,
    ModelInfo,
    StreamDelta,
    only_text,
    truncate_at_stop,
)


class EchoBackend:
    def __init__(self, info: ModelInfo) -> None:
        self.info = info

    def _answer(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> tuple[list[str], int, str]:
        only_text(self.info, params)
        prompt_tokens = sum(len(m.content.split()) for m in messages)
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        if params.json_format is not None:
            _check_json(last_user, params.json_format.grammar_schema())
        words = last_user.split()
        limit = params.sampling().max_tokens
        finish = "length" if len(words) > limit else "stop"
        text, stopped = truncate_at_stop(" ".join(words[:limit]), params.stop)
        return (
            text.split(" ") if text else [],
            prompt_tokens,
            "stop" if stopped else finish,
        )

    def generate(self, messages: list[ChatMessage], params: GenerationParams) -> Generation:
        words, prompt_tokens, finish = self._answer(messages, params)
        return Generation(" ".join(words), prompt_tokens, len(words), finish)  # type: ignore[arg-type]

    def stream(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> Iterator[StreamDelta]:
        words, prompt_tokens, finish = self._answer(messages, params)
        for i, word in enumerate(words):
            yield StreamDelta(word if i == 0 else " " + word)
        yield StreamDelta("", finish, prompt_tokens, len(words))  # type: ignore[arg-type]


def _check_json(text: str, schema: Mapping[str, Any]) -> None:
    try:
        jsonschema.validate(json.loads(text), dict(schema))
    except (ValueError, jsonschema.ValidationError) as exc:
        raise BadRequest(
            "the echo model answers JSON only by repeating a user message that already is "
            f"JSON of the asked shape ({str(exc).splitlines()[0]})"
        ) from exc
