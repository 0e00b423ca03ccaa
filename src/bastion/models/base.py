"""The model backend interface: `generate`, `stream` and `info`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from bastion.plugins import Part

if TYPE_CHECKING:
    from bastion.config import ModelConfig

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


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


FinishReason = Literal["stop", "length", "content_filter"]


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason = "stop"


@dataclass
class StreamDelta:
    """A piece of streamed text; the last delta carries the finish reason and token counts."""

    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


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
