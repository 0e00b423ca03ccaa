"""The built-in model backends, registered as plug-ins. Each is imported only when a model
that uses it is first asked for, so listing them costs nothing."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from bastion.config import ModelConfig
from bastion.errors import BadRequest
from bastion.models.base import BackendSetup, BackendSpec, ModelBackend
from bastion.plugins import hookimpl
from bastion.plugins.hookspecs import Register


def _echo(config: ModelConfig, setup: BackendSetup) -> ModelBackend:
    from bastion.models.echo import EchoBackend

    return EchoBackend(setup.info)


def _openai(config: ModelConfig, setup: BackendSetup) -> ModelBackend:
    from bastion.models.openai_backend import OpenAICompatibleBackend

    assert config.base_url is not None
    return OpenAICompatibleBackend.from_env(
        setup.info,
        config.base_url,
        config.api_key_env,
        remote_model=config.remote_model,
        timeout_s=config.timeout_s,
        retries=config.retries,
    )


class LlamaCppSettings(BaseModel):
    kv_tokens: int | None = Field(
        None,
        gt=0,
        description="KV cache cells (prompt and answer tokens held at once) that the "
        "requests decoded together share; default twice the context length.",
    )
    prefix_cache: bool = Field(
        True,
        description="Reuse the KV cache of the prompt's start that an earlier request shared "
        "(an app's instructions): faster first tokens; a repeated greedy request may then "
        "differ in a token from its first answer.",
    )


def weights_path(model: ModelConfig) -> Path:
    """Where a registered model's weights are: its `path`, or the embedded GGUF."""
    if model.path:
        return Path(model.path).expanduser()
    if model.backend in ("llamacpp", "embedded"):
        from bastion.models.embedded import embedded_gguf_path

        return embedded_gguf_path()
    raise BadRequest(
        f"model '{model.name}' ({model.backend}) has no local weights to read its shape from; "
        "give --weights PATH (a .gguf file or a Hugging Face folder)"
    )


def _llamacpp(config: ModelConfig, setup: BackendSetup) -> ModelBackend:
    from bastion.models.llamacpp_backend import LlamaCppBackend

    path = weights_path(config)
    settings = config.settings or LlamaCppSettings()
    return LlamaCppBackend(
        setup.info,
        path,
        threads=config.threads,
        prefix_cache=settings.prefix_cache,
        parallel=config.max_concurrency,
        kv_tokens=settings.kv_tokens,
    )


def _transformers(config: ModelConfig, setup: BackendSetup) -> ModelBackend:
    from bastion.models.embedded import prepare_embedded_model
    from bastion.models.transformers_backend import TransformersBackend

    if config.backend == "embedded":
        path = prepare_embedded_model(setup.cache_root)
    else:
        assert config.path is not None
        path = Path(config.path).expanduser()
    adapter = Path(config.adapter).expanduser() if config.adapter else None
    return TransformersBackend(setup.info, path, adapter=adapter, threads=config.threads)


@hookimpl
def register_backends(register: Register) -> None:
    register(
        BackendSpec(
            name="embedded",
            description="the bundled SmolLM2-135M-Instruct's transformers weights (what "
            "fine-tuning trains; slower to serve than llamacpp on its GGUF)",
            build=_transformers,
        )
    )
    register(
        BackendSpec(
            name="local",
            description="a transformers weights folder (`path`), optionally with a PEFT `adapter`",
            needs=("path",),
            build=_transformers,
        )
    )
    register(
        BackendSpec(
            name="openai",
            description="a remote OpenAI-compatible server (`base_url`): vLLM, llama.cpp "
            "server, Ollama",
            needs=("base_url",),
            build=_openai,
        )
    )
    register(
        BackendSpec(
            name="llamacpp",
            description="a GGUF file through llama.cpp (`path`; default: the embedded "
            "SmolLM2-135M-Instruct, the default model)",
            settings=LlamaCppSettings,
            build=_llamacpp,
            concurrency=8,
        )
    )
    register(
        BackendSpec(name="echo", description="a test double that repeats the prompt", build=_echo)
    )
