"""The model backend interface: `generate`, `stream` and `info`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import jsonschema

from bastion.errors import BadRequest
from bastion.plugins import Part

if TYPE_CHECKING:
    from bastion.config import ModelConfig

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A function the model asks the caller to run (OpenAI's `tool_calls` item)."""

    id: str
    name: str
    arguments: str  # a JSON object, as text

    def openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant's earlier calls
    tool_call_id: str | None = None  # a tool message: the call it answers

    def openai(self) -> dict[str, Any]:
        """The message in OpenAI's shape (what servers and chat templates take)."""
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["content"] = self.content or None  # OpenAI's null beside calls
            message["tool_calls"] = [call.openai() for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


@dataclass(frozen=True)
class Tool:
    """A function the model may call: its name, what it does, and its arguments' JSON
    schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None  # None: an object with any members

    def openai(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name, "parameters": self.schema()}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def schema(self) -> dict[str, Any]:
        return dict(self.parameters) if self.parameters is not None else {"type": "object"}


@dataclass(frozen=True)
class ToolUse:
    """The tools a request offers, and whether the model may (`auto`), must (`required`,
    or the one `function` named) or must not (`none`) call one."""

    tools: tuple[Tool, ...]
    choice: Literal["auto", "required", "none"] = "auto"
    function: str | None = None

    def offered(self) -> tuple[Tool, ...]:
        """The tools the model may call now."""
        if self.choice == "none":
            return ()
        return tuple(t for t in self.tools if self.function in (None, t.name))

    def must_call(self) -> bool:
        return self.choice == "required" or self.function is not None

    def openai(self) -> dict[str, Any]:
        """The request fields OpenAI's API takes."""
        choice: Any = self.choice
        if self.function is not None:
            choice = {"type": "function", "function": {"name": self.function}}
        return {"tools": [t.openai() for t in self.tools], "tool_choice": choice}

    def call_schema(self) -> dict[str, Any]:
        """A JSON schema that only a call of an offered tool matches."""
        calls = [
            {
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": t.schema()},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in self.offered()
        ]
        return calls[0] if len(calls) == 1 else {"anyOf": calls}

    def parse(self, text: str) -> ToolCall | None:
        """The call `text` makes, if it is one: a JSON object naming an offered tool, with
        arguments its schema accepts (a `<tool_call>` wrapper or code fence around it is
        allowed, as models trained for tools write them). Anything else: None."""
        body = text.strip()
        for start, end in (("<tool_call>", "</tool_call>"), ("```json", "```"), ("```", "```")):
            if body.startswith(start):
                body = body[len(start) :].removesuffix(end).strip()
                break
        try:
            call = json.loads(body)
        except ValueError:
            return None
        if not isinstance(call, dict) or not isinstance(call.get("arguments"), dict):
            return None
        tool = next((t for t in self.offered() if t.name == call.get("name")), None)
        if tool is None:
            return None
        try:
            jsonschema.validate(call["arguments"], tool.schema())
        except (jsonschema.ValidationError, jsonschema.SchemaError):
            return None
        return ToolCall(new_call_id(), tool.name, json.dumps(call["arguments"]))


@dataclass(frozen=True)
class Sampling:
    """The sampling settings a generation runs with. These defaults are Bastion's, for a
    setting neither the request nor the model gives: a low temperature keeps small instruct
    models on topic (at OpenAI's default of 1.0, SmolLM2-135M drifts into random words)."""

    temperature: float = 0.3
    top_p: float = 0.9
    max_tokens: int = 512
    repetition_penalty: float = 1.0  # 1: off; servers behind `openai` may not take one


SAMPLING_KEYS = tuple(f.name for f in fields(Sampling))


@dataclass(frozen=True)
class JsonFormat:
    """An answer that must be JSON: any object (OpenAI's `json_object`) or one that
    matches `schema` (`json_schema`). Local backends enforce it while decoding (llama.cpp
    grammars); OpenAI-compatible servers get it passed on; the others refuse it."""

    schema: Mapping[str, Any] | None = None  # None: any JSON object
    name: str = "response"

    def openai(self) -> dict[str, Any]:
        """The `response_format` body OpenAI's API takes."""
        if self.schema is None:
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": dict(self.schema), "strict": True},
        }

    def grammar_schema(self) -> Mapping[str, Any]:
        """The schema decoding is held to (an object with any members for `json_object`)."""
        return self.schema if self.schema is not None else {"type": "object"}


SamplingSource = Literal["request", "config", "model", "default"]


@dataclass(frozen=True)
class GenerationParams:
    """A generation's settings. A sampling setting left None is not given: the pipeline
    fills it in from the model (`ModelRegistry.sampling_params`) before generating, and a
    backend reads the settings with `sampling()`, which falls back to Bastion's defaults
    when a backend is called directly."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    repetition_penalty: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    json_format: JsonFormat | None = None  # the answer must be JSON (response_format)
    # Each token's log-probability, with this many likeliest alternatives; None: none.
    logprobs: int | None = None
    tools: ToolUse | None = None  # functions the model may call (OpenAI's tools)

    def sampling(self) -> Sampling:
        return Sampling(**{k: v for k in SAMPLING_KEYS if (v := getattr(self, k)) is not None})

    def filled(
        self, layers: list[tuple[SamplingSource, Mapping[str, float | int]]]
    ) -> tuple[GenerationParams, dict[str, SamplingSource]]:
        """Every sampling setting set: the given ones, then each unset one from the first
        layer that has it, else Bastion's default; and where each came from."""
        values: dict[str, float | int] = {}
        sources: dict[str, SamplingSource] = {}
        default = Sampling()
        for key in SAMPLING_KEYS:
            candidates: list[tuple[SamplingSource, float | int | None]] = [
                ("request", getattr(self, key)),
                *((source, layer.get(key)) for source, layer in layers),
                ("default", getattr(default, key)),
            ]
            sources[key], values[key] = next((s, v) for s, v in candidates if v is not None)
        filled = replace(
            self,
            temperature=float(values["temperature"]),
            top_p=float(values["top_p"]),
            max_tokens=int(values["max_tokens"]),
            repetition_penalty=float(values["repetition_penalty"]),
        )
        return filled, sources


@dataclass(frozen=True)
class Price:
    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    gpu_hour: float | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for one request at per-token prices (0 when priced by GPU-hour only)."""
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1e6


@dataclass(frozen=True)
class ModelInfo:
    name: str
    backend: str
    parameters: float | None
    context_length: int
    price: Price = field(default_factory=Price)


FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token, its log-probability under the model, and the likeliest tokens
    at its place (OpenAI's `logprobs`)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason = "stop"
    logprobs: list[TokenLogprob] | None = None  # when asked for (GenerationParams.logprobs)
    tool_calls: list[ToolCall] = field(default_factory=list)  # finish_reason "tool_calls"


@dataclass
class StreamDelta:
    """A piece of streamed text; the last delta carries the finish reason and token counts.
    `logprobs`: those of the tokens decoded since the previous delta, when asked for."""

    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    logprobs: tuple[TokenLogprob, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()  # whole calls, each sent once


def joined(deltas: list[StreamDelta], asked: GenerationParams) -> Generation:
    """A whole stream as one generation."""
    last = deltas[-1]
    return Generation(
        "".join(d.text for d in deltas),
        last.prompt_tokens or 0,
        last.completion_tokens or 0,
        last.finish_reason or "stop",
        [lp for d in deltas for lp in d.logprobs] if asked.logprobs is not None else None,
        [call for d in deltas for call in d.tool_calls],
    )


def only_text(info: ModelInfo, params: GenerationParams) -> None:
    """Refuse what a backend that only writes text cannot give: logprobs, tool calls."""
    asked = [
        *(["logprobs"] if params.logprobs is not None else []),
        *(["tool calls"] if params.tools is not None and params.tools.offered() else []),
    ]
    if asked:
        raise BadRequest(
            f"model '{info.name}' ({info.backend} backend) does not give {' or '.join(asked)}; "
            "ask a llamacpp or openai model, or leave them out"
        )


class ModelBackend(Protocol):
    info: ModelInfo

    def generate(self, messages: list[ChatMessage], params: GenerationParams) -> Generation: ...

    def stream(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> Iterator[StreamDelta]: ...


@runtime_checkable
class RecommendsSampling(Protocol):
    """A backend whose model file recommends sampling settings (GGUF metadata,
    generation_config.json); requests that leave a setting out get these."""

    def recommended_sampling(self) -> dict[str, float | int]: ...


@dataclass(frozen=True)
class BackendSetup:
    """What building a backend may use besides its `models[]` entry."""

    info: ModelInfo
    cache_root: Path  # where a backend may keep converted weights


@dataclass(frozen=True, kw_only=True)
class BackendSpec(Part):
    """A model backend as a plug-in: `models[].backend` names it; `needs` lists the
    `models[]` keys it requires (e.g. `base_url`)."""

    build: Callable[[ModelConfig, BackendSetup], ModelBackend]
    #: Requests it generates at once when `max_concurrency` is not set.
    concurrency: int = 1


def truncate_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` at the first stop sequence; report whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class StopScanner:
    """Applies stop sequences to a stream, holding back only what could start one."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self._stop = tuple(s for s in stop if s)
        self._buffer = ""
        self.stopped = False

    def _held(self) -> int:
        """The length of the buffer's longest end that is the start of a stop sequence."""
        ends = (
            n
            for s in self._stop
            for n in range(min(len(s) - 1, len(self._buffer)), 0, -1)
            if self._buffer.endswith(s[:n])
        )
        return max(ends, default=0)

    def feed(self, text: str) -> str:
        """Add streamed text; return what is safe to emit now."""
        if self.stopped:
            return ""
        self._buffer += text
        cut, found = truncate_at_stop(self._buffer, self._stop)
        if found:
            self.stopped = True
            self._buffer = ""
            return cut
        safe = len(self._buffer) - self._held()
        out, self._buffer = self._buffer[:safe], self._buffer[safe:]
        return out

    def flush(self) -> str:
        out, self._buffer = ("" if self.stopped else self._buffer), ""
        return out
