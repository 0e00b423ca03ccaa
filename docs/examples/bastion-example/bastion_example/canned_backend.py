"""A model backend: answers from canned replies picked by a keyword of the last question
(a stand-in for a rule-based bot, or the shape of a client for another model server)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, Field

from bastion.config import ModelConfig
from bastion.models.base import (
    BackendSetup,
    BackendSpec,
    ChatMessage,
    Generation,
    GenerationParams,
    ModelBackend,
    ModelInfo,
    StreamDelta,
)
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register


class CannedSettings(BaseModel):  # models[].settings of a `canned` model
    replies: dict[str, str] = Field(default_factory=dict, description="Keyword -> reply.")
    fallback: str = Field("I cannot help with that.", description="When no keyword matches.")


class CannedBackend:
    def __init__(self, info: ModelInfo, settings: CannedSettings) -> None:
        self.info = info
        self.settings = settings

    def generate(self, messages: list[ChatMessage], params: GenerationParams) -> Generation:
        question = next((m.content for m in reversed(messages) if m.role == "user"), "").lower()
        replies = self.settings.replies.items()
        text = next((r for k, r in replies if k.lower() in question), self.settings.fallback)
        return Generation(text, len(question.split()), len(text.split()))

    def stream(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> Iterator[StreamDelta]:
        answer = self.generate(messages, params)
        yield StreamDelta(answer.text)
        yield StreamDelta("", "stop", answer.prompt_tokens, answer.completion_tokens)


def build(config: ModelConfig, setup: BackendSetup) -> ModelBackend:
    return CannedBackend(setup.info, config.settings)


@hookimpl
def register_backends(register: Register) -> None:
    register(
        BackendSpec(
            name="canned",
            description="canned replies by keyword",
            settings=CannedSettings,
            build=build,
        )
    )
