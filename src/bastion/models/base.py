"""The model backend interface: `generate`, `stream` and `info`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from bastion.plugins import Part

if TYPE_CHECKING:
    from bastion.config import ModelConfig

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None


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
        self._keep = max((len(s) for s in self._stop), default=1) - 1
        self._buffer = ""
        self.stopped = False

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
        safe = len(self._buffer) - self._keep
        if safe <= 0:
            return ""
        out, self._buffer = self._buffer[:safe], self._buffer[safe:]
        return out

    def flush(self) -> str:
        out, self._buffer = ("" if self.stopped else self._buffer), ""
        return out
