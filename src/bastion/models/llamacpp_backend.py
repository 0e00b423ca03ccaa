"""llama.cpp through llama-cpp-python: the default way to serve a GGUF on a CPU, about 3x
faster than transformers on the embedded model (BENCHMARKS.md), with the requests to one
model decoded together (`llamacpp_batching`).

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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import BackendError, BadRequest
from bastion.models.base import (
    ChatMessage,
    FinishReason,
    Generation,
    GenerationParams,
    JsonFormat,
    ModelInfo,
    StopScanner,
    StreamDelta,
    TokenLogprob,
    Tool,
    joined,
)

if TYPE_CHECKING:
    from bastion.models.llamacpp_batching import DecodeLoop, SampledLogprob

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


def _template_message(message: ChatMessage, knows_tools: bool) -> dict[str, Any]:
    """A message for the chat template. Templates that know tool calls take them with
    their arguments as objects; for the others an earlier call is written out as JSON."""
    laid_out = message.openai()
    if not message.tool_calls:
        return laid_out
    if knows_tools:
        for call in laid_out["tool_calls"]:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"] or "{}")
        return laid_out
    calls = "\n".join(
        json.dumps({"name": c.name, "arguments": json.loads(c.arguments or "{}")})
        for c in message.tool_calls
    )
    return {"role": message.role, "content": f"{message.content}\n{calls}".strip()}


def _tools_note(offered: tuple[Tool, ...]) -> str:
    """The tools, told to a model whose chat template has no place for them."""
    listed = "\n".join(json.dumps(t.openai()["function"]) for t in offered)
    return (
        "You can call these functions:\n"
        f"{listed}\n"
        'To call one, answer with only a JSON object: {"name": <function name>, '
        '"arguments": <its arguments>}.'
    )


def json_grammar(params: GenerationParams) -> Any:
    """The grammar a generation is held to, or None when its answer is free text."""
    if params.json_format is None:
        return None
    return _grammar(json.dumps(params.json_format.grammar_schema()))


@dataclass(frozen=True)
class _Loaded:
    model: Any  # llama_cpp._internals.LlamaModel
    loop: DecodeLoop
    chat_format: Any  # the GGUF's chat template (a Jinja2ChatFormatter)
    end_text: str  # how the template spells its end of turn
    knows_tools: bool  # the template lays out tools and tool calls itself (Qwen's does)

    def piece(self, token: int) -> str:
        return str(self.model.detokenize([token]).decode("utf-8", "replace"))

    def spelt(self, token: int, logprob: SampledLogprob) -> TokenLogprob:
        """A sampled token's log-probabilities, its token ids spelt out."""
        top = tuple((self.piece(t), lp) for t, lp in logprob.top)
        return TokenLogprob(self.piece(token), logprob.logprob, top)


class LlamaCppBackend:
    """One GGUF model, its generations decoded together by one decode loop
    (`llamacpp_batching`): up to `parallel` at once, each in a sequence of its own, the
    rest waiting in the loop's queue (the admission gate bounds how many)."""

    def __init__(
        self,
        info: ModelInfo,
        gguf_path: Path,
        *,
        threads: int | None = None,
        prefix_cache: bool = True,
        parallel: int = 8,
        kv_tokens: int | None = None,
    ) -> None:
        self.info = info
        self.prefix_cache = prefix_cache
        self.gguf_path = gguf_path
        # None: llama.cpp's choice (half the CPUs to generate, all of them for prompts).
        # Set, it caps both: llama.cpp's threads spin while they wait for one another, so
        # more threads than free cores makes it many times slower, not a little.
        self.threads = threads
        self.parallel = parallel
        # The KV cells the sequences share; at least one full context.
        self.kv_tokens = max(kv_tokens or 2 * info.context_length, info.context_length)
        self._loaded: _Loaded | None = None
        self._load_lock = threading.Lock()

    def load(self) -> _Loaded:
        with self._load_lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> _Loaded:
        try:
            import llama_cpp
            from llama_cpp import _internals
            from llama_cpp._logger import set_verbose
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            from bastion.models.llamacpp_batching import DecodeLoop
        except ImportError as exc:
            raise BackendError(
                "llama-cpp-python is missing: run `make install`, which builds it with "
                "CMAKE_ARGS='-DGGML_NATIVE=OFF' (or pip install llama-cpp-python==0.3.36 with "
                "that variable set)"
            ) from exc
        if not self.gguf_path.is_file():
            raise BackendError(f"model '{self.info.name}': no GGUF file at {self.gguf_path}")
        set_verbose(False)  # llama.cpp's load report and warnings stay out of the logs
        try:
            model = _internals.LlamaModel(
                path_model=str(self.gguf_path),
                params=llama_cpp.llama_model_default_params(),
                verbose=False,
            )
        except ValueError as exc:
            raise BackendError(
                f"model '{self.info.name}': llama.cpp cannot load {self.gguf_path}: {exc}"
            ) from exc
        template = model.metadata().get("tokenizer.chat_template")
        if not template:
            raise BackendError(
                f"model '{self.info.name}': {self.gguf_path} has no chat template "
                "(tokenizer.chat_template), so a conversation cannot be formatted for it; "
                "use an instruct model's GGUF"
            )

        def spelt(token: int) -> str:
            return str(model.detokenize([token], special=True).decode("utf-8", "replace"))

        eos = spelt(model.token_eos())
        loop = DecodeLoop(
            model,
            slots=self.parallel,
            kv_tokens=self.kv_tokens,
            threads=self.threads,
            prefix_cache=self.prefix_cache,
            name=self.info.name,
        )
        formatter = Jinja2ChatFormatter(
            template=template, eos_token=eos, bos_token=spelt(model.token_bos())
        )
        return _Loaded(model, loop, formatter, eos, "tools" in template)

    def recommended_sampling(self) -> dict[str, float | int]:
        return gguf_sampling(self.load().model.metadata())

    def _sampler(self, loaded: _Loaded, params: GenerationParams) -> Any:
        """The request's sampler chain, as llama-cpp-python's `Llama.generate` builds it."""
        from llama_cpp import _internals

        sampling = params.sampling()
        sampler = _internals.LlamaSampler()  # type: ignore[no-untyped-call]
        sampler.add_penalties(loaded.model.n_vocab(), 64, sampling.repetition_penalty, 0.0, 0.0)
        grammar = json_grammar(params)
        if grammar is not None:
            sampler.add_grammar(loaded.model, grammar)
        if sampling.temperature == 0:
            sampler.add_greedy()  # type: ignore[no-untyped-call]
        else:
            sampler.add_top_k(40)
            sampler.add_top_p(sampling.top_p, 1)
            sampler.add_min_p(0.05, 1)
            sampler.add_temp(sampling.temperature)
            sampler.add_dist(RANDOM_SEED if params.seed is None else params.seed)
        return sampler

    def _prompt(
        self, loaded: _Loaded, messages: list[ChatMessage], offered: tuple[Tool, ...]
    ) -> list[int]:
        """The conversation as the template lays it out, with the tools the model may call:
        in the template's own way when it has one, else described in the system message."""
        chat = [_template_message(m, loaded.knows_tools) for m in messages]
        tools = [t.openai() for t in offered] if offered and loaded.knows_tools else None
        if offered and not loaded.knows_tools:
            note = _tools_note(offered)
            if chat and chat[0]["role"] == "system":
                chat[0] = {**chat[0], "content": f"{chat[0]['content']}\n\n{note}"}
            else:
                chat.insert(0, {"role": "system", "content": note})
        formatted = loaded.chat_format(messages=chat, tools=tools)
        return list(
            loaded.model.tokenize(
                formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
            )
        )

    def _run(self, messages: list[ChatMessage], params: GenerationParams) -> Iterator[StreamDelta]:
        loaded = self.load()
        tools = params.tools
        offered = tools.offered() if tools is not None else ()
        prompt = self._prompt(loaded, messages, offered)
        if tools is None or not offered:
            yield from self._decode(loaded, prompt, params)
            return
        # The answer may be a tool call: it is read whole before any of it is sent. A call
        # that must be made is held to the tools' schemas while decoding.
        if tools.must_call():
            params = replace(params, json_format=JsonFormat(tools.call_schema(), "tool_call"))
        answer = joined(list(self._decode(loaded, prompt, params)), params)
        call = tools.parse(answer.text) if answer.finish_reason == "stop" else None
        yield StreamDelta(
            "" if call else answer.text,
            "tool_calls" if call else answer.finish_reason,
            answer.prompt_tokens,
            answer.completion_tokens,
            tuple(answer.logprobs or ()),
            (call,) if call else (),
        )

    def _decode(
        self, loaded: _Loaded, prompt: list[int], params: GenerationParams
    ) -> Iterator[StreamDelta]:
        from bastion.models.llamacpp_batching import Decoding

        sampling = params.sampling()
        if len(prompt) + sampling.max_tokens > self.info.context_length:
            raise BadRequest(
                f"prompt ({len(prompt)} tokens) plus max_tokens ({sampling.max_tokens}) "
                f"exceeds the context length of '{self.info.name}' "
                f"({self.info.context_length}); shorten the conversation or lower max_tokens"
            )
        decoding = Decoding(
            prompt, self._sampler(loaded, params), sampling.max_tokens, params.logprobs
        )
        loaded.loop.submit(decoding)
        try:
            # The end-of-turn text is a stop too, should the model spell it out in pieces.
            scanner = StopScanner((*params.stop, loaded.end_text))
            text = codecs.getincrementaldecoder("utf-8")(errors="replace")
            finish: FinishReason = "length"
            generated = 0
            logprobs: list[TokenLogprob] = []  # those not yet sent with a delta
            while generated < sampling.max_tokens:
                sampled = decoding.tokens.get()
                if isinstance(sampled, BaseException):
                    raise sampled
                if sampled.end:
                    finish = "stop"
                    break
                generated += 1
                if sampled.logprob is not None:
                    logprobs.append(loaded.spelt(sampled.token, sampled.logprob))
                out = scanner.feed(text.decode(loaded.model.detokenize([sampled.token])))
                if out:
                    yield StreamDelta(out, logprobs=tuple(logprobs))
                    logprobs.clear()
                if scanner.stopped:
                    finish = "stop"
                    break
            tail = scanner.feed(text.decode(b"", final=True)) + scanner.flush()
            yield StreamDelta(tail, finish, len(prompt), generated, tuple(logprobs))
        finally:
            # However the reading ends (a stop sequence, a client gone), decoding stops.
            decoding.cancelled = True

    def generate(self, messages: list[ChatMessage], params: GenerationParams) -> Generation:
        return joined(list(self._run(messages, params)), params)

    def stream(
        self, messages: list[ChatMessage], params: GenerationParams
    ) -> Iterator[StreamDelta]:
        return self._run(messages, params)
