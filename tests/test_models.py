from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from bastion.config import ModelConfig, SamplingConfig
from bastion.errors import BackendError, BadRequest, Overloaded
from bastion.models import (
    ChatMessage,
    GenerationParams,
    JsonFormat,
    ModelInfo,
    ModelRegistry,
    Sampling,
)
from bastion.models.admission import AdmissionGate
from bastion.models.base import SamplingSource, StopScanner, Tool, ToolUse, truncate_at_stop
from bastion.models.echo import EchoBackend
from bastion.models.llamacpp_backend import gguf_sampling
from bastion.models.openai_backend import OpenAICompatibleBackend
from conftest import LiveServer, ServedApp, free_port

INFO = ModelInfo("remote", "openai", None, 4096)
HELLO = [ChatMessage("user", "hello remote world")]


def test_truncate_at_stop_picks_the_earliest() -> None:
    assert truncate_at_stop("abcXYdefZ", ("Z", "XY")) == ("abc", True)
    assert truncate_at_stop("abc", ()) == ("abc", False)


@pytest.mark.parametrize("pieces", [["ab", "cST", "OPde"], ["abcSTOPde"], list("abcSTOPde")])
def test_stop_scanner_cuts_streams_at_any_split(pieces: list[str]) -> None:
    scanner = StopScanner(("STOP",))
    out = "".join(scanner.feed(p) for p in pieces) + scanner.flush()
    assert out == "abc" and scanner.stopped


def test_stop_scanner_holds_back_only_a_possible_start() -> None:
    scanner = StopScanner(("<|im_end|>",))
    assert scanner.feed("Hello there") == "Hello there"  # sent at once, nothing held
    assert scanner.feed(" <|im") == " "
    assert scanner.feed("age") == "<|image"  # not a stop after all
    assert scanner.feed("<|im_end|> more") == "" and scanner.stopped


def test_echo_backend_stream_matches_generate() -> None:
    echo = EchoBackend(ModelInfo("echo", "echo", None, 100))
    params = GenerationParams(max_tokens=3)
    whole = echo.generate(HELLO, params)
    deltas = list(echo.stream(HELLO, params))
    assert "".join(d.text for d in deltas) == whole.text
    assert deltas[-1].completion_tokens == whole.completion_tokens == 3


def test_sampling_fills_only_what_the_request_left_out() -> None:
    assert GenerationParams().sampling() == Sampling()  # Bastion's defaults
    layers: list[tuple[SamplingSource, dict[str, float | int]]] = [
        ("config", {"temperature": 0.2}),
        ("model", {"temperature": 0.7, "top_p": 0.8}),
    ]
    filled, sources = GenerationParams(max_tokens=5, stop=("x",)).filled(layers)
    assert filled == GenerationParams(
        temperature=0.2, top_p=0.8, max_tokens=5, repetition_penalty=1.0, stop=("x",)
    )
    assert sources == {
        "temperature": "config",
        "top_p": "model",
        "max_tokens": "request",
        "repetition_penalty": "default",
    }
    # a request's 0 is a choice (greedy), not "not given"
    assert GenerationParams(temperature=0).filled(layers)[0].temperature == 0


def test_registry_fills_from_the_models_sampling_config(tmp_path: Path) -> None:
    config = ModelConfig(name="e", backend="echo", sampling=SamplingConfig(temperature=0.1))
    registry = ModelRegistry([config], tmp_path)
    params, sources = registry.sampling_params("e", GenerationParams(top_p=0.5))
    assert (params.temperature, params.top_p) == (0.1, 0.5)
    assert sources["temperature"] == "config" and sources["max_tokens"] == "default"


def test_model_files_recommend_sampling(tmp_path: Path) -> None:
    """GGUF metadata (as llama.cpp reports it: text) and generation_config.json: only the
    settings a file sets count, so the next layer fills the others."""
    metadata = {
        "general.sampling.temp": "0.6",
        "general.sampling.top_p": "0.95",
        "general.sampling.top_k": "20",
        "general.name": "Qwen",
    }
    assert gguf_sampling(metadata) == {"temperature": 0.6, "top_p": 0.95}
    assert gguf_sampling({"general.name": "SmolLM2"}) == {}

    from bastion.models.transformers_backend import TransformersBackend

    (tmp_path / "generation_config.json").write_text(
        json.dumps({"do_sample": True, "temperature": 0.7, "repetition_penalty": 1.05})
    )
    backend = TransformersBackend(ModelInfo("m", "local", None, 100), tmp_path)
    assert backend.recommended_sampling() == {"temperature": 0.7, "repetition_penalty": 1.05}


def test_admission_gate_refuses_beyond_its_queue() -> None:
    gate = AdmissionGate("m", max_concurrency=1, max_queue=1, wait_s=5)
    gate.admit()
    waiter = threading.Thread(target=lambda: (gate.admit(), gate.release()))
    waiter.start()
    deadline = time.monotonic() + 10
    while gate.in_flight < 2 and time.monotonic() < deadline:  # the waiter has queued
        time.sleep(0.01)
    with pytest.raises(Overloaded) as refused:
        gate.admit()
    assert refused.value.retry_after >= 1
    gate.release()
    waiter.join(5)
    assert gate.in_flight == 0


def test_concurrency_defaults_to_what_the_backend_decodes_together() -> None:
    assert ModelConfig(name="m", backend="llamacpp").max_concurrency == 8  # one batch
    assert ModelConfig(name="m", backend="echo").max_concurrency == 1
    assert ModelConfig(name="m", backend="llamacpp", max_concurrency=2).max_concurrency == 2


def test_a_tool_call_is_read_from_an_answer_only_when_it_is_one() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = ToolUse((Tool("get_weather", "", schema), Tool("look_up")))
    made = '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    for text in (made, f"<tool_call>\n{made}\n</tool_call>", f"```json\n{made}\n```"):
        call = tools.parse(text)
        assert call is not None and call.name == "get_weather" and call.id.startswith("call_")
        assert json.loads(call.arguments) == {"city": "Oslo"}
    for text in (
        "It is sunny in Oslo.",
        '{"name": "get_weather", "arguments": {"town": "Oslo"}}',  # not its schema
        '{"name": "send_email", "arguments": {}}',  # not offered
        '{"name": "get_weather", "arguments": "Oslo"}',
    ):
        assert tools.parse(text) is None
    only = ToolUse(tools.tools, "required", "look_up")
    assert only.parse(made) is None and only.must_call()
    assert only.call_schema()["properties"]["name"] == {"const": "look_up"}
    assert ToolUse(tools.tools, "none").offered() == ()


def test_openai_backend_against_a_real_bastion_server(server: LiveServer) -> None:
    """Bastion's own API is an OpenAI-compatible server: chain one to the other."""
    backend = OpenAICompatibleBackend(
        INFO, server.url + "/v1", remote_model="echo", api_key=server.key()
    )
    params = GenerationParams(max_tokens=10)
    answer = backend.generate(HELLO, params)
    assert answer.text == "hello remote world" and answer.completion_tokens == 3
    deltas = list(backend.stream(HELLO, params))
    assert "".join(d.text for d in deltas) == "hello remote world"
    assert deltas[-1].finish_reason == "stop" and deltas[-1].completion_tokens == 3


def test_openai_backend_passes_a_json_format_on(server: LiveServer) -> None:
    """The remote server gets OpenAI's response_format (here Bastion's echo model, which
    answers JSON only when the question is JSON of the asked shape)."""
    backend = OpenAICompatibleBackend(
        INFO, server.url + "/v1", remote_model="echo", api_key=server.key()
    )
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    asked = GenerationParams(json_format=JsonFormat(schema, "count"))
    assert backend.generate([ChatMessage("user", '{"n": 3}')], asked).text == '{"n": 3}'
    with pytest.raises(BadRequest, match="JSON of the asked shape"):
        backend.generate([ChatMessage("user", '{"n": "three"}')], asked)
    any_object = GenerationParams(json_format=JsonFormat())
    with pytest.raises(BadRequest, match="JSON of the asked shape"):
        backend.generate(HELLO, any_object)


def test_openai_backend_reports_client_errors(server: LiveServer) -> None:
    backend = OpenAICompatibleBackend(
        INFO, server.url + "/v1", remote_model="nope", api_key=server.key()
    )
    with pytest.raises(BadRequest, match="404"):
        backend.generate(HELLO, GenerationParams())


class FlakyServer:
    """A real HTTP server that fails the first `failures` requests with 503."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        app = FastAPI()

        @app.post("/v1/chat/completions")
        def chat() -> JSONResponse:
            self.calls += 1
            if self.calls <= self.failures:
                return JSONResponse(
                    {"error": "busy"}, status_code=503, headers={"Retry-After": "0"}
                )
            return JSONResponse(
                {
                    "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                }
            )

        self.served = ServedApp(app)
        self.port = self.served.port

    def __enter__(self) -> FlakyServer:
        self.served.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.served.__exit__(*exc)


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    with FlakyServer(failures=2) as server:
        yield server


def test_openai_backend_retries_then_succeeds(flaky: FlakyServer) -> None:
    backend = OpenAICompatibleBackend(
        INFO, f"http://127.0.0.1:{flaky.port}/v1", retries=2, backoff_s=0.01
    )
    assert backend.generate(HELLO, GenerationParams()).text == "ok"
    assert flaky.calls == 3


def test_openai_backend_gives_up_with_a_clear_error(flaky: FlakyServer) -> None:
    backend = OpenAICompatibleBackend(
        INFO, f"http://127.0.0.1:{flaky.port}/v1", retries=1, backoff_s=0.01
    )
    with pytest.raises(BackendError, match="after 2 attempts"):
        backend.generate(HELLO, GenerationParams())


def test_openai_backend_unreachable_server_times_out_clearly() -> None:
    backend = OpenAICompatibleBackend(
        INFO, f"http://127.0.0.1:{free_port()}/v1", retries=1, backoff_s=0.01, timeout_s=2
    )
    with pytest.raises(BackendError, match="check that it is running"):
        backend.generate(HELLO, GenerationParams())
