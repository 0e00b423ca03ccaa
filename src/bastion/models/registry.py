"""The model registry: what is configured, what it costs, and its backend (built lazily)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bastion.config import ModelConfig
from bastion.errors import NotFound
from bastion.models.admission import AdmissionGate
from bastion.models.base import (
    BackendSetup,
    BackendSpec,
    GenerationParams,
    ModelBackend,
    ModelInfo,
    Price,
    RecommendsSampling,
    SamplingSource,
)
from bastion.models.breaker import CircuitBreaker
from bastion.plugins import registry


def model_info(config: ModelConfig) -> ModelInfo:
    return ModelInfo(
        name=config.name,
        backend=config.backend,
        parameters=config.parameters,
        context_length=config.context_length,
        price=Price(config.price.input_per_1m, config.price.output_per_1m, config.price.gpu_hour),
    )


class ModelRegistry:
    """Lists the models (configured ones, and the fine-tuned ones that `discover` finds) and
    hands out one shared backend per model."""

    DISCOVER_SECONDS = 5.0  # an unknown name re-reads the tuned models at most this often

    def __init__(
        self,
        configs: list[ModelConfig],
        cache_root: Path,
        discover: Callable[[], list[ModelConfig]] | None = None,
    ) -> None:
        self._static = {c.name: c for c in configs}
        self._configs = dict(self._static)
        self._cache_root = cache_root
        self._discover = discover
        self._discovered_at = -math.inf
        self._backends: dict[str, ModelBackend] = {}
        self._gates: dict[str, AdmissionGate] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the discovered models (a model tuned or promoted by another process)."""
        if self._discover is None:
            return
        with self._lock:
            if not force and time.monotonic() - self._discovered_at < self.DISCOVER_SECONDS:
                return
            self._discovered_at = time.monotonic()
            found = {c.name: c for c in self._discover() if c.name not in self._static}
            for name in set(self._configs) - set(self._static) - set(found):
                self._backends.pop(name, None)  # a tuned model no longer served
            self._configs = {**self._static, **found}

    def names(self, tenant: str | None = None) -> list[str]:
        """The shared models, and the tenant's own tuned ones when a tenant is named."""
        self.refresh()
        return [n for n, c in self._configs.items() if c.usable_by(tenant)]

    def configs(self) -> list[ModelConfig]:
        self.refresh()
        return list(self._configs.values())

    def config(self, name: str, tenant: str | None = None) -> ModelConfig:
        """The model's config; with `tenant`, another tenant's tuned model is not found."""
        if name not in self._configs:
            self.refresh()
        config = self._configs.get(name)
        if config is None or (tenant is not None and not config.usable_by(tenant)):
            # another tenant's tuned model is reported as unknown, its name not confirmed
            raise NotFound(
                f"model '{name}' is not registered; available: {', '.join(self.names(tenant))}"
            )
        return config

    def info(self, name: str) -> ModelInfo:
        return model_info(self.config(name))

    def gate(self, name: str) -> AdmissionGate:
        config = self.config(name)
        with self._lock:
            if name not in self._gates:
                self._gates[name] = AdmissionGate(name, config.max_concurrency, config.max_queue)
            return self._gates[name]

    def breaker(self, name: str) -> CircuitBreaker:
        config = self.config(name)
        with self._lock:
            if name not in self._breakers:
                self._breakers[name] = CircuitBreaker(
                    name, config.breaker_failures, config.breaker_reset_s
                )
            return self._breakers[name]

    def loaded(self, name: str) -> bool:
        """Whether the model's backend is built (by a request, or `bastion serve` preloading
        the default model); asking never builds or loads anything."""
        with self._lock:
            return name in self._backends

    def backend(self, name: str) -> ModelBackend:
        """The model's backend, built on first use and shared afterwards."""
        config = self.config(name)
        with self._lock:
            if name not in self._backends:
                self._backends[name] = self._build(config)
            return self._backends[name]

    def sampling_params(
        self, name: str, params: GenerationParams
    ) -> tuple[GenerationParams, dict[str, SamplingSource]]:
        """`params` with each sampling setting the request left out filled in: from the
        model's `sampling` config, else the model file's recommendation, else Bastion's."""
        config = self.config(name)
        backend = self.backend(name)
        recommended = (
            backend.recommended_sampling() if isinstance(backend, RecommendsSampling) else {}
        )
        given = config.sampling.model_dump(exclude_none=True)
        return params.filled([("config", given), ("model", recommended)])

    def _build(self, config: ModelConfig) -> ModelBackend:
        spec = registry.parts("backend", BackendSpec)[config.backend]
        return spec.build(config, BackendSetup(model_info(config), self._cache_root))
