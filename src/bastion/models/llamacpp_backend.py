"""llama.cpp through llama-cpp-python: the default way to serve a GGUF on a CPU, about 3x
faster than transformers on the embedded model (BENCHMARKS.md).

`make install` builds llama-cpp-python with `CMAKE_ARGS="-DGGML_NATIVE=OFF"`: the native
build crashes on some CPUs (AMX). The conversation is formatted with the GGUF's own chat
template, as llama-cpp-python's chat completion does; tokens are sampled one by one here
so that streams carry exact token counts and stop sequences are cut before they are sent.
"""

from __future__ import annotations

import codecs
import functools
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.errors import BackendError, BadRequest
from bastion.models.base import (
    ChatMessage,
    FinishReason,
    Generation,
    GenerationParams,
    ModelInfo,
    StopScanner,
    StreamDelta,
)

RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: it draws a fresh seed per call

# GGUF keys in which a model file may recommend its sampling settings (llama.cpp's names).
GGUF_SAMPLING_KEYS = {
    "general.sampling.temp": "temperature",
    "general.sampling.top_p": "top_p",
    "general.sampling.penalty_repeat": "repetition_penalty",
}


def gguf_sampling(metadata: Mapping[str, str]) -> dict[str, float | int]:
    """The sampling settings a GGUF's metadata recommends (llama.cpp gives values as text)."""
    found: dict[str, float | int] = {}
    for key, name in GGUF_SAMPLING_KEYS.items():
        try:
            found[name] = float(metadata[key])
        except (KeyError, ValueError):
            continue
    return found


@functools.lru_cache(maxsize=32)
def _grammar(schema_json: str) -> Any:
    """A JSON schema as a llama.cpp grammar, compiled once per schema (apps reuse theirs)."""
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(schema_json, verbose=False)
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise BadRequest(
            f"response_format: this JSON schema cannot be enforced while decoding ({exc}); "
            "use the JSON Schema subset llama.cpp supports (objects, arrays, enums, "
            "strings, numbers, booleans, $defs)"
        ) from exc


def json_grammar(params: GenerationParams) -> Any:
    """The grammar a generation is held to, or None when its answer is free text."""
    if params.json_format is None:
        return None
    return _grammar(json.dumps(params.json_format.grammar_schema()))


@dataclass(frozen=True)
class _Loaded:
    llm: Any  # llama_cpp.Llama
    chat_format: Any  # the GGUF's chat template (a Jinja2ChatFormatter)
    is_end: Callable[[int], bool]  # an end-of-generation token (the template's EOS)
    end_text: str  # how the template spells its end of turn


class LlamaCppBackend:
    """One GGUF model in one `Llama` object. It holds a single KV cache, so generations
    take turns under a lock (the admission gate bounds who waits for it); the lock is held
    while a stream is read and released when the stream ends or is closed."""

    def __init__(
        self,
        info: ModelInfo,
        gguf_path: Path,
        *,
        threads: int | None = None,
        prefix_cache: bool = True,
    ) -> None:
        self.info = info
        self.prefix_cache = prefix_cache
        self.gguf_path = gguf_path
        # None: llama.cpp's choice (half the CPUs to generate, all of them for prompts).
        # Set, it caps both: llama.cpp's threads spin while they wait for one another, so
        # more threads than free cores makes it many times slower, not a little.
        self.threads = threads
        self._loaded: _Loaded | None = None
        self._load_lock = threading.Lock()
        self._lock = threading.Lock()  # a plain Lock: a stream may end in another thread

    def load(self) -> _Loaded:
        with self._load_lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> _Loaded:
        try:
            import llama_cpp
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise BackendError(
                "llama-cpp-python is missing: run `make install`, which builds it with "
                "CMAKE_ARGS='-DGGML_NATIVE=OFF' (or pip install llama-cpp-python==0.3.36 with "
                "that variable set)"
            ) from exc
        if not self.gguf_path.is_file():
            raise BackendError(f"model '{self.info.name}': no GGUF file at {self.gguf_path}")
        try:
            llm = llama_cpp.Llama(
                model_path=str(self.gguf_path),
                n_ctx=self.info.context_length,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                verbose=False,
            )
        except ValueError as exc:
            raise BackendError(
                f"model '{self.info.name}': llama.cpp cannot load {self.gguf_path}: {exc}"
            ) from exc
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError(
                f"model '{self.info.name}': {self.gguf_path} has no chat template "
                "(tokenizer.chat_template), so a conversation cannot be formatted for it; "
                "use an instruct model's GGUF"
            )

        def spelt(token: int) -> str:
            return str(llm.detokenize([token], special=True).decode("utf-8", "replace"))

        eos, vocab = spelt(llm.token_eos()), llama_cpp.llama_model_get_vocab(llm.model)
        return _Loaded(
            llm,
            Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=spelt(llm.token_bos())),
            lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token)),
            eos,
        )

    def recommended_sampling(self) -> dict[str, float | int]:
        return gguf_sampling(self.load().llm.metadata)

    def _run(self, messages: list[ChatMessage], params: GenerationParams) -> Iterator[StreamDelta]:
        model = self.load()
        llm = model.llm
        sampling = params.sampling()
        grammar = json_grammar(params)
        with self._lock:
            formatted = model.chat_format(
                messages=[{"role": m.role, "content": m.content} for m in messages]
            )
            prompt = llm.tokenize(
                formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
            )
            if len(prompt) + sampling.max_tokens > self.info.context_length:
                raise BadRequest(
                    f"prompt ({len(prompt)} tokens) plus max_tokens ({sampling.max_tokens}) "
                    f"exceeds the context length of '{self.info.name}' "
                    f"({self.info.context_length}); shorten the conversation or lower max_tokens"
                )
            llm.set_seed(RANDOM_SEED if params.seed is None else params.seed)
            # With the prefix cache, `generate` evaluates only what follows the longest
            # start this prompt shares with the tokens in the KV cache (an app's
            # instructions and sources header). That changes the logits slightly (the
            # tokens after it are computed in another batch), so a repeated greedy request
            # may differ in a token; without it, the whole prompt is evaluated every time.
            if not self.prefix_cache:
                llm.reset()
            # The end-of-turn text is a stop too, should the model spell it out in pieces.
            scanner = StopScanner((*params.stop, model.end_text))
            text = codecs.getincrementaldecoder("utf-8")(errors="replace")
            finish: FinishReason = "length"
            generated = 0
            for token in llm.generate(
                prompt,
                temp=sampling.temperature,
                top_p=sampling.top_p,
                repeat_penalty=sampling.repetition_penalty,
                grammar=grammar,
            ):
                if model.is_end(token):
                    finish = "stop"
                    break
                generated += 1
                out = scanner.feed(text.decode(llm.detokenize([token])))
                if out:
                    yield StreamDelta(out)
                if scanner.stopped:
                    finish = "stop"
                    break
                if generated >= sampling.max_tokens:
                    break
            tail = scanner.feed(text.decode(b"", final=True)) + scanner.flush()
            if tail:
                yield StreamDelta(tail)
            yield StreamDelta("", finish, len(prompt), generated)

    def generate(self, messages: list[ChatMessage], params: GenerationParams) -> Generation:
        deltas = list(self._run(messages, params))
        last = deltas[-1]
        return Generation(
            "".join(d.text for d in deltas),
            last.prompt_tokens or 0,
            last.completion_tokens or 0,
            last.finish_reason or "stop",
        )

    def stream(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> Iterator[StreamDelta]:
        return self._run(messages, params)
