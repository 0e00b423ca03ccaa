"""The model registry: what is configured, what it costs, and its backend (built lazily)."""

from __future__ import annotations

import threading
from pathlib import Path

from bastion.config import ModelConfig
from bastion.errors import NotFound
from bastion.models.admission import AdmissionGate
from bastion.models.base import ModelBackend, ModelInfo, Price


def model_info(config: ModelConfig) -> ModelInfo:
    return ModelInfo(
        name=config.name,
        backend=config.backend,
        parameters=config.parameters,
        context_length=config.context_length,
        price=Price(config.price.input_per_1m, config.price.output_per_1m, config.price.gpu_hour),
    )


class ModelRegistry:
    """Lists the configured models and hands out one shared backend per model."""

    def __init__(self, configs: list[ModelConfig], cache_root: Path) -> None:
        self._configs = {c.name: c for c in configs}
        self._cache_root = cache_root
        self._backends: dict[str, ModelBackend] = {}
        self._gates = {
            c.name: AdmissionGate(c.name, c.max_concurrency, c.max_queue) for c in configs
        }
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self._configs)

    def config(self, name: str) -> ModelConfig:
        try:
            return self._configs[name]
        except KeyError:
            raise NotFound(
                f"model '{name}' is not registered; available: {', '.join(self._configs)}"
            ) from None

    def info(self, name: str) -> ModelInfo:
        return model_info(self.config(name))

    def gate(self, name: str) -> AdmissionGate:
        self.config(name)
        return self._gates[name]

    def backend(self, name: str) -> ModelBackend:
        """The model's backend, built on first use and shared afterwards."""
        config = self.config(name)
        with self._lock:
            if name not in self._backends:
                self._backends[name] = self._build(config)
            return self._backends[name]

    def _build(self, config: ModelConfig) -> ModelBackend:
        info = model_info(config)
        if config.backend == "echo":
            from bastion.models.echo import EchoBackend

            return EchoBackend(info)
        if config.backend == "openai":
            from bastion.models.openai_backend import OpenAICompatibleBackend

            assert config.base_url is not None
            return OpenAICompatibleBackend.from_env(
                info,
                config.base_url,
                config.api_key_env,
                remote_model=config.remote_model,
                timeout_s=config.timeout_s,
                retries=config.retries,
            )
        if config.backend == "llamacpp":
            from bastion.models.embedded import embedded_gguf_path
            from bastion.models.llamacpp_backend import LlamaCppBackend

            path = Path(config.path).expanduser() if config.path else embedded_gguf_path()
            return LlamaCppBackend(info, path, threads=config.threads)
        from bastion.models.embedded import prepare_embedded_model
        from bastion.models.transformers_backend import TransformersBackend

        if config.backend == "embedded":
            path = prepare_embedded_model(self._cache_root)
        else:
            assert config.path is not None
            path = Path(config.path).expanduser()
        adapter = Path(config.adapter).expanduser() if config.adapter else None
        return TransformersBackend(info, path, adapter=adapter, threads=config.threads)
