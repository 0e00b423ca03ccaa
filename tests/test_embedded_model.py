"""The real embedded model (SmolLM2-135M-Instruct from its wheel), end to end."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from bastion.config import BastionConfig, ModelConfig
from bastion.errors import BadRequest
from bastion.models import ChatMessage, GenerationParams, ModelInfo
from bastion.models.embedded import embedded_gguf_path, is_prepared, prepare_embedded_model
from bastion.models.transformers_backend import TransformersBackend
from bastion.platform import Platform
from conftest import LiveServer

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


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llamacpp extra not installed"
)
def test_llamacpp_backend_on_the_same_gguf() -> None:
    from bastion.models.llamacpp_backend import LlamaCppBackend

    b = LlamaCppBackend(
        ModelInfo("smollm2-gguf", "llamacpp", None, 2048), embedded_gguf_path(), threads=2
    )
    # llama.cpp computes on the Q4_1 weights, so its greedy text differs from transformers'.
    answer = b.generate(QUESTION, GREEDY)
    assert answer.text.strip() and answer.prompt_tokens == 37 and answer.completion_tokens == 12
    deltas = list(b.stream(QUESTION, GREEDY))
    assert "".join(d.text for d in deltas) == answer.text
