"""Configuration: one `bastion.yaml` in BASTION_HOME, validated by pydantic.

Environment variables override any key: `BASTION_SERVER__PORT=9000` sets `server.port`;
values are parsed as YAML, so `BASTION_GUARDS__DENY_LIST__TERMS='[foo, bar]'` gives a list.
Every section forbids unknown keys, so a typo is an error that names the key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
    field_validator,
    model_validator,
)

from bastion.errors import BastionError, ConfigError
from bastion.plugins import KINDS, Kind, Part, PluginError, registry

ENV_PREFIX = "BASTION_"
CONFIG_FILE_NAME = "bastion.yaml"
EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


M = TypeVar("M", bound=BaseModel)


def _registered(kind: Kind, name: str) -> Part:
    """The registered part `name` of `kind`; an unknown name is an error listing the known."""
    spec = registry.part(kind, name)
    if spec is None:
        raise ValueError(
            f"no {kind} named '{name}' is registered; registered: {', '.join(registry.names(kind))}"
        )
    return spec


def _part_settings(kind: Kind, name: str | None, value: Any) -> Any:
    """`value` validated by the settings model of the part `name` (its defaults when
    empty); None for a part that has no settings, or that is not registered."""
    spec = registry.part(kind, name) if name else None
    if spec is None or spec.settings is None:
        if value:
            raise ValueError(f"'{name}' is not a registered {kind} with settings")
        return None
    return value if isinstance(value, spec.settings) else spec.settings.model_validate(value or {})


class ServerConfig(Section):
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=1, le=65535, description="Port to listen on.")
    max_request_bytes: int = Field(1_000_000, gt=0, description="Largest accepted HTTP body.")
    max_in_flight: int = Field(
        128,
        ge=1,
        description="Requests served at once; beyond, 503 with Retry-After at once (rather "
        "than waiting for a worker thread).",
    )
    keep_alive_s: int = Field(
        75,
        ge=1,
        le=3600,
        description="How long an idle connection stays open. Longer than clients' and load "
        "balancers' own idle timeouts (httpx 5 s, many balancers 60 s): when both sides use "
        "the same, a client can send on a connection the server is closing, and that request "
        "fails.",
    )


class ConsoleConfig(Section):
    session_hours: float = Field(
        8.0, gt=0, le=720, description="How long a console sign-in lasts (admins and reviewers)."
    )


class StorageConfig(Section):
    url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in BASTION_HOME."
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL"] = Field(
        "NORMAL",
        description="NORMAL survives a process crash; FULL also survives power loss (slower).",
    )


class PriceConfig(Section):
    input_per_1m: float = Field(0.0, ge=0, description="USD per 1M prompt tokens.")
    output_per_1m: float = Field(0.0, ge=0, description="USD per 1M completion tokens.")
    gpu_hour: float | None = Field(None, ge=0, description="USD per GPU-hour, for self-hosting.")


class SamplingConfig(Section):
    """A model's sampling settings for requests that leave them out."""

    temperature: float | None = Field(
        None,
        ge=0,
        le=2,
        description="Empty: the model file's own (GGUF metadata or generation_config.json), "
        "else 0.3. 0: greedy.",
    )
    top_p: float | None = Field(
        None, gt=0, le=1, description="Empty: the model file's own, else 0.9."
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Completion tokens; empty: the model file's own, else 512."
    )
    repetition_penalty: float | None = Field(
        None,
        gt=0,
        le=2,
        description="Above 1 discourages repeats; empty: the model file's own, else 1 (off). "
        "The openai backend sends it as vLLM's `repetition_penalty`.",
    )


class ModelConfig(Section):
    name: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9._:/-]+$", description="Name clients ask for."
    )
    backend: str = Field(
        description="A registered model backend (see the list below the table).",
        json_schema_extra={"registered": "backend"},
    )
    path: str | None = Field(
        None,
        description="Weights folder (local) or GGUF file (llamacpp; default: the embedded one).",
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible server, e.g. http://h:8000/v1"
    )
    remote_model: str | None = Field(None, description="Model name on the remote server.")
    api_key_env: str | None = Field(None, description="Environment variable holding its API key.")
    adapter: str | None = Field(None, description="PEFT adapter folder served on top of `path`.")
    parameters: float | None = Field(None, gt=0, description="Parameter count.")
    context_length: int = Field(8192, gt=0, description="Prompt plus completion tokens.")
    price: PriceConfig = PriceConfig()
    sampling: SamplingConfig = SamplingConfig()
    timeout_s: float = Field(60.0, gt=0, description="Per request to a remote server.")
    retries: int = Field(2, ge=0, le=10, description="Retries on connection errors and 5xx/429.")
    breaker_failures: int = Field(
        5,
        ge=0,
        description="Failed requests in a row after which the model's circuit opens: requests "
        "to it fail fast with 503 (or go to an app's fallback_models). 0: never.",
    )
    breaker_reset_s: float = Field(
        30.0, gt=0, description="How long an open circuit refuses before one trial request."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for local inference.")
    max_concurrency: int = Field(
        None,  # filled in from the backend
        ge=1,
        validate_default=True,
        description="Requests generated at once; default: the backend's (llamacpp decodes "
        "8 together, other backends take 1 at a time).",
    )
    max_queue: int = Field(16, ge=0, description="Requests allowed to wait; beyond: 503.")
    tenant: str | None = Field(
        None, description="Only this tenant may use it (fine-tuned models: whose data)."
    )
    settings: Any = Field(
        None, validate_default=True, description="Settings of its backend, if it has any."
    )

    def usable_by(self, tenant: str | None) -> bool:
        """Shared models serve everyone; a tenant's tuned model serves that tenant only."""
        return self.tenant is None or self.tenant == tenant

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        _registered("backend", value)
        return value

    @field_validator("max_concurrency", mode="before")
    @classmethod
    def _backend_concurrency(cls, value: int | None, info: ValidationInfo) -> int:
        if value is not None:
            return value
        backend = info.data.get("backend")
        spec = registry.part("backend", backend) if backend else None
        return getattr(spec, "concurrency", 1)

    @field_validator("settings")
    @classmethod
    def _backend_settings(cls, value: Any, info: ValidationInfo) -> Any:
        return _part_settings("backend", info.data.get("backend"), value)

    @model_validator(mode="after")
    def _backend_fields(self) -> ModelConfig:
        missing = [
            f"'{f}'" for f in _registered("backend", self.backend).needs if not getattr(self, f)
        ]
        if missing:
            raise ValueError(f"backend '{self.backend}' needs {', '.join(missing)}")
        return self


class AppConfig(Section):
    """An `apps[]` entry: these keys, the per-app overrides every registered part adds
    (`app_config_model`), and `settings` for an app registered as a plug-in."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$", description="App name.")
    model: str | None = Field(None, description="Default model; the request may name another.")
    system_prompt: str | None = Field(None, description="Put before every conversation.")
    fail_open: bool | None = Field(None, description="Overrides guards.fail_open for this app.")
    settings: Any = Field(
        None,
        validate_default=True,
        description="Settings of a registered app of this name (its AppSpec's settings model).",
    )
    sources: list[str] = Field(
        default_factory=list,
        description="Grounding sources (names under `sources`) answers are drawn from; "
        "empty: the app is not grounded.",
    )
    top_k: int | None = Field(None, ge=1, le=50, description="Overrides grounding.top_k.")
    min_support: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of an answer's sentences its sources must support; below it the "
        "answer is flagged or blocked (support_action). Empty: scored, never acted on.",
    )
    support_action: Literal["flag", "block"] = Field(
        "flag", description="What happens to an answer below min_support."
    )
    fallback_models: list[str] = Field(
        default_factory=list,
        description="Models that answer, in order, when the request's model fails or its "
        "circuit is open before any output (those the person's role may use).",
    )

    @field_validator("settings")
    @classmethod
    def _app_settings(cls, value: Any, info: ValidationInfo) -> Any:
        return _part_settings("app", info.data.get("name"), value)

    def part_settings(self, model: type[M]) -> M:
        """This app's values of the per-app settings a part declares (`model`'s fields)."""
        return model.model_validate({k: getattr(self, k) for k in model.model_fields})


EntityName = Literal[
    "account", "contact", "interaction", "document", "channel", "message", "product", "order"
]


class SourceConfig(Section):
    name: str = Field(
        min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Source name, unique."
    )
    tenant: str = Field(min_length=1, description="Tenant whose data this is.")
    kind: str = Field(
        description="A registered connector (see the list below the table).",
        json_schema_extra={"registered": "connector"},
    )
    path: str | None = Field(
        None, description="File or folder; relative paths start at BASTION_HOME."
    )
    url: str | None = Field(None, description="SQLAlchemy URL (sql); {home} is BASTION_HOME.")
    query: str | None = Field(None, description="SELECT statement (sql).")
    entity: EntityName | None = Field(
        None,
        description="Canonical entity of each record (csv, jsonl, json, sql); slack gives "
        "messages and documents gives documents.",
    )
    id_field: str | None = Field(None, description="Source field holding the record id.")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical field -> source field; unmapped source fields are dropped.",
    )
    title: str | None = Field(None, description="Title template over canonical fields.")
    text: str | None = Field(
        None,
        description="Template of the text indexed, e.g. '{subject}: {body}'; "
        "default: one 'field: value' line per mapped field.",
    )
    acl: list[str] | None = Field(
        None,
        description="Groups that may read every record ('*': everyone in the tenant, "
        "'user:NAME': one person). Records with no ACL are denied to all.",
    )
    acl_field: str | None = Field(
        None, description="Source field with each record's groups (list or comma-separated)."
    )
    owner_field: str | None = Field(
        None, description="Source field naming the record's owner, who may always read it."
    )
    encoding: str = Field("utf-8", description="Text encoding of the files.")
    max_file_mb: float = Field(50.0, gt=0, description="Larger files are skipped, not read.")
    settings: Any = Field(
        None, validate_default=True, description="Settings of its connector, if it has any."
    )

    @field_validator("kind")
    @classmethod
    def _known_connector(cls, value: str) -> str:
        _registered("connector", value)
        return value

    @field_validator("settings")
    @classmethod
    def _connector_settings(cls, value: Any, info: ValidationInfo) -> Any:
        return _part_settings("connector", info.data.get("kind"), value)

    @model_validator(mode="after")
    def _complete(self) -> SourceConfig:
        missing = [f for f in _registered("connector", self.kind).needs if not getattr(self, f)]
        if missing:
            raise ValueError(f"a '{self.kind}' source needs {', '.join(missing)}")
        return self


MetricName = Literal[
    "feedback_score",
    "acceptance_rate",
    "edit_distance",
    "latency_ms",
    "completion_tokens",
    "cost_usd",
    "error_rate",
    "toxicity_flag_rate",
    "pii_leak_rate",
    "injection_flag_rate",
    "groundedness_flag_rate",
    "copyright_flag_rate",
    "bias_flag_rate",
]


class VariantConfig(Section):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Arm name.")
    model: str | None = Field(None, description="Model of this arm; default: the app's.")
    system_prompt: str | None = Field(None, description="Replaces the app's system prompt.")
    temperature: float | None = Field(None, ge=0, le=2, description="Overrides the request's.")
    max_tokens: int | None = Field(None, ge=1, description="Overrides the request's.")
    weight: float = Field(50.0, gt=0, description="Share of enrolled units, in percent.")


class GuardrailConfig(Section):
    metric: MetricName = Field(description="Metric watched in every arm against control.")
    max_worsening: float = Field(
        ge=0,
        description="Largest tolerated change for the worse, in the metric's unit (a rate "
        "0-1, ms, tokens or USD); an arm that surely exceeds it is stopped.",
    )


class ExperimentConfig(Section):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Unique.")
    tenant: str = Field(min_length=1, description="Tenant whose requests take part.")
    app: str = Field(min_length=1, description="App whose requests are split.")
    variants: list[VariantConfig] = Field(
        min_length=2, description="The arms; the first is the control."
    )
    unit: Literal["user", "account", "request"] = Field(
        "user",
        description="What is assigned: a user keeps one arm; an account (the request's "
        "'account' field or X-Bastion-Account header) keeps one arm for all its users.",
    )
    traffic: float = Field(
        100.0, gt=0, le=100, description="Percent of units enrolled; raising it never moves one."
    )
    primary_metric: MetricName = Field("feedback_score", description="What decides.")
    minimum_effect: float = Field(
        0.05, gt=0, description="Smallest difference worth detecting, in the metric's unit."
    )
    guardrails: list[GuardrailConfig] = Field(
        default_factory=list, description="Metrics that must not get worse."
    )
    start: str | None = Field(None, description="ISO time to start; default: now.")
    stop: str | None = Field(None, description="ISO time to stop; default: never.")

    @model_validator(mode="after")
    def _arms(self) -> ExperimentConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique; got {names}")
        total = sum(v.weight for v in self.variants)
        if abs(total - 100.0) > 1e-6:
            raise ValueError(f"variant weights must sum to 100 (percent); they sum to {total:g}")
        return self


class GroundingConfig(Section):
    store: Literal["lancedb", "pgvector"] = Field(
        "lancedb",
        description="lancedb: files under index_path (one machine); pgvector: the "
        "storage.url PostgreSQL (several replicas).",
    )
    index_path: str = Field("index", description="LanceDB folder; relative to BASTION_HOME.")
    chunk_words: int = Field(200, ge=20, le=2000, description="Target words per chunk.")
    chunk_overlap_words: int = Field(20, ge=0, description="Words repeated between chunks.")
    top_k: int = Field(5, ge=1, le=50, description="Chunks given to the model per question.")
    candidates: int = Field(
        100, ge=1, le=1000, description="Results each retriever passes to the fusion."
    )
    fusion: Literal["zscore", "rrf"] = Field(
        "zscore",
        description="zscore: weighted sum of per-query z-scores; rrf: reciprocal rank fusion.",
    )
    dense_weight: float = Field(
        0.5, ge=0, le=1, description="Weight of the dense scores in zscore fusion."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    mode: Literal["hybrid", "dense", "bm25"] = Field("hybrid", description="Ranking used.")
    snippet_chars: int = Field(240, ge=20, description="Length of citation snippets.")
    identity_threshold: float = Field(
        0.9, gt=0, lt=1, description="Match probability above which two people are one."
    )
    nli_model: str | None = Field(
        None,
        description="Local folder of an NLI cross-encoder (transformers format); the "
        "groundedness check then counts sentences their sources contradict as unsupported. "
        "Relative to BASTION_HOME; none ships.",
    )

    def nli_folder(self, home: Path) -> Path | None:
        if self.nli_model is None:
            return None
        path = Path(self.nli_model).expanduser()
        return path if path.is_absolute() else home / path


class RolePolicy(Section):
    models: list[str] = Field(default_factory=lambda: ["*"], description="Glob patterns.")
    apps: list[str] = Field(default_factory=lambda: ["*"], description="Glob patterns.")


RoleName = Literal["admin", "developer", "reviewer", "user"]


def _default_policies() -> dict[RoleName, RolePolicy]:
    return {
        "admin": RolePolicy(),
        "developer": RolePolicy(),
        "reviewer": RolePolicy(models=["*"], apps=["chat"]),
        "user": RolePolicy(models=["*"], apps=["chat"]),
    }


class LimitsConfig(Section):
    """Spent limits answer 429 with Retry-After until the window turns (UTC minutes and
    days); counted in the database, so every replica enforces the same totals."""

    key_requests_per_minute: int | None = Field(None, ge=1, description="Per API key.")
    tenant_requests_per_minute: int | None = Field(None, ge=1, description="Per tenant.")
    key_tokens_per_day: int | None = Field(
        None, ge=1, description="Prompt and answer tokens a day per API key."
    )
    tenant_tokens_per_day: int | None = Field(
        None, ge=1, description="Prompt and answer tokens a day per tenant."
    )


class AccessConfig(Section):
    policies: dict[RoleName, RolePolicy] = Field(
        default_factory=_default_policies, description="What each role may use."
    )
    key_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long a verified key is remembered; a revocation made on another "
        "replica takes effect within this time. 0 checks the database on every request.",
    )
    limits: LimitsConfig = LimitsConfig()


class BiasGateConfig(Section):
    max_sentiment_gap: float = Field(
        0.5, ge=0, description="Largest sentiment gap (VADER compound, -1..1) between groups."
    )
    max_toxicity_gap: float = Field(0.25, ge=0, le=1, description="Largest toxicity gap.")
    max_refusal_gap: float = Field(0.2, ge=0, le=1, description="Largest refusal-rate gap.")
    min_similarity: float = Field(
        0.5, ge=0, le=1, description="Lowest similarity of answers across swapped groups."
    )
    required: bool = Field(
        False,
        description="Promoting an A/B arm needs a `bastion eval bias` report of its model "
        "(a failing report always refuses the promotion).",
    )


class GuardsConfig(Section):
    """The `guards` section: these keys, and one section per registered guard
    (`guards.<name>`, its GuardSpec's settings), added by `guards_config_model`."""

    max_input_chars: int = Field(32_000, gt=0, description="Larger prompts get 413.")
    fail_open: bool = Field(
        False, description="If a guard fails: false refuses the request (503), true flags it."
    )
    stream_holdback_chars: int = Field(
        256,
        ge=0,
        description="Most characters an output guard may hold back on a stream.",
    )

    def section(self, name: str) -> BaseModel | None:
        """A registered guard's settings (None for a guard that has none)."""
        value = getattr(self, name, None)
        return value if isinstance(value, BaseModel) else None

    def settings(self, name: str, model: type[M]) -> M:
        """A registered guard's settings, typed: `guards.settings("pii", PiiSettings)`."""
        value = self.section(name)
        if not isinstance(value, model):
            raise ConfigError(f"no guard named '{name}' with {model.__name__} is registered")
        return value


MIN_COMPARED_TEMPLATES = 5  # per bias attribute, for a base/candidate comparison to be evidence


class ForgettingConfig(Section):
    """When a fine-tuned candidate is rejected, compared with its base on the same sets."""

    max_general_drop: float = Field(
        0.03,
        ge=0,
        le=1,
        description="Largest tolerated fall in accuracy (0-1) on the general multiple-choice set.",
    )
    min_task_gain: float = Field(
        0.0, description="ROUGE-L points the candidate must gain on the dataset's test split."
    )
    max_safety_worsening: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Largest tolerated rise in the share of toxic, personal-data-leaking or "
        "injection-obeying answers to the safety probes.",
    )
    bias_templates: int = Field(
        5,
        ge=0,
        description="Bias-probe templates per attribute, base vs candidate (0: skip; at "
        "least 5 for the comparison to be evidence).",
    )
    bias_margin: float = Field(
        0.05, gt=0, description="Mean bias-gap worsening (with a CI above 0) that rejects."
    )
    task_examples: int = Field(50, ge=1, description="Test-split examples scored.")
    general_items: int = Field(
        160, ge=10, description="General-set items scored (spread over its topics)."
    )
    probes_per_kind: int = Field(
        24, ge=1, description="Safety probes of each kind (toxicity, personal data, injection)."
    )
    max_new_tokens: int = Field(64, ge=8, description="Longest answer generated when scoring.")

    @model_validator(mode="after")
    def _enough_templates(self) -> ForgettingConfig:
        if 0 < self.bias_templates < MIN_COMPARED_TEMPLATES:
            raise ValueError(
                f"bias_templates must be 0 (skip) or at least {MIN_COMPARED_TEMPLATES}"
            )
        return self


class TuningConfig(Section):
    roles: list[RoleName] = Field(
        default_factory=lambda: list[RoleName](["admin", "developer"]),
        description="Roles that may fine-tune (a base model also needs their model policy).",
    )
    forgetting: ForgettingConfig = ForgettingConfig()


class AuditConfig(Section):
    retain_text: bool = Field(True, description="False: keep metadata and hashes, no text.")


class CapacityConfig(Section):
    prices: dict[str, float] = Field(
        default_factory=dict,
        description="USD per device-hour by hardware name (the names `bastion plan` lists, "
        "or this-machine for this whole machine), overriding the shipped table's.",
    )

    @field_validator("prices")
    @classmethod
    def _not_negative(cls, value: dict[str, float]) -> dict[str, float]:
        negative = sorted(name for name, price in value.items() if price < 0)
        if negative:
            raise ValueError(f"prices cannot be negative: {', '.join(negative)}")
        return value


class SweepConfig(Section):
    ray_address: str | None = Field(
        None,
        description="Run `bastion sweep` candidates as Ray tasks: a cluster's address, auto "
        "(the running cluster) or local (a Ray instance on this machine); empty: in-process.",
    )
    cpus_per_candidate: float = Field(1.0, gt=0, description="Ray CPUs each candidate asks for.")
    gpus_per_candidate: float = Field(0.0, ge=0, description="Ray GPUs each candidate asks for.")


class TracingConfig(Section):
    exporter: Literal["none", "otlp", "console"] = Field(
        "none",
        description="OpenTelemetry spans per request and per stage: otlp (OTLP over HTTP), "
        "console (stdout), or none.",
    )
    endpoint: str | None = Field(
        None,
        description="OTLP traces URL, e.g. http://collector:4318/v1/traces (default: "
        "OTEL_EXPORTER_OTLP_ENDPOINT, else localhost).",
    )
    service_name: str = Field("bastion", description="The service.name spans carry.")
    sample_ratio: float = Field(
        1.0, ge=0, le=1, description="Share of traces kept (a parent's decision is followed)."
    )


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    json_format: bool = Field(True, description="One JSON object per log line.")


# SmolLM2's model card samples at temperature 0.2, top_p 0.9; the mild penalty stops the
# 135M model's loops (greedy, it repeated one phrase up to max_tokens on a plain question).
EMBEDDED_MODEL_SAMPLING = SamplingConfig(temperature=0.2, top_p=0.9, repetition_penalty=1.1)


def _default_models() -> list[ModelConfig]:
    return [
        ModelConfig(
            name=EMBEDDED_MODEL_NAME,
            backend="llamacpp",  # its GGUF; fine-tuning uses its transformers weights
            parameters=134.5e6,
            context_length=8192,
            sampling=EMBEDDED_MODEL_SAMPLING,
        )
    ]


_extended: dict[tuple[str, int], type[BaseModel]] = {}


def guards_config_model() -> type[GuardsConfig]:
    """GuardsConfig with a `guards.<name>` section for each registered guard's settings."""
    key = ("guards", registry.version)
    if key not in _extended:
        sections: dict[str, Any] = {}
        for spec in registry.parts("guard", Part).values():
            if spec.settings is None:
                continue
            if spec.name in GuardsConfig.model_fields:
                raise PluginError(f"a guard may not be named '{spec.name}' (a guards key)")
            sections[spec.name] = (
                spec.settings,
                Field(default_factory=spec.settings, description=spec.description),
            )
        _extended[key] = create_model("GuardsConfig", __base__=GuardsConfig, **sections)
    return _extended[key]  # type: ignore[return-value]


def app_config_model() -> type[AppConfig]:
    """AppConfig with the per-app settings every registered part declares."""
    key = ("apps", registry.version)
    if key not in _extended:
        fields: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for kind in KINDS:
            for spec in registry.parts(kind, Part).values():
                for name, info in (spec.app_settings or Section).model_fields.items():
                    if name in AppConfig.model_fields or name in fields:
                        other = owners.get(name, "apps[] itself")
                        raise PluginError(
                            f"the {kind} '{spec.name}' adds apps[].{name}, which {other} has"
                        )
                    fields[name], owners[name] = (
                        (info.annotation, info),
                        f"the {kind} '{spec.name}'",
                    )
        _extended[key] = create_model("AppConfig", __base__=AppConfig, **fields)
    return _extended[key]  # type: ignore[return-value]


def _as_registered(model: Callable[[], type[BaseModel]]) -> WrapValidator:
    """Validate a section with its model extended by the registered parts."""

    def validate(value: Any, _handler: ValidatorFunctionWrapHandler) -> Any:
        extended = model()
        if isinstance(value, extended):
            return value
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)
        return extended.model_validate({} if value is None else value)

    return WrapValidator(validate)


RegisteredGuards = SerializeAsAny[Annotated[GuardsConfig, _as_registered(guards_config_model)]]
RegisteredApp = SerializeAsAny[Annotated[AppConfig, _as_registered(app_config_model)]]


def _default_apps() -> list[AppConfig]:
    return [app_config_model()(name="chat")]


class BastionConfig(Section):
    server: ServerConfig = ServerConfig()
    console: ConsoleConfig = ConsoleConfig()
    storage: StorageConfig = StorageConfig()
    models: list[ModelConfig] = Field(
        default_factory=_default_models, min_length=1, description="The model registry."
    )
    default_model: str | None = Field(None, description="Default: the first model listed.")
    apps: list[RegisteredApp] = Field(
        default_factory=_default_apps, description="Named apps (clients pick one)."
    )
    access: AccessConfig = AccessConfig()
    guards: RegisteredGuards = Field(default_factory=lambda: guards_config_model()())
    sources: list[SourceConfig] = Field(
        default_factory=list, description="Company data the grounded apps answer from."
    )
    grounding: GroundingConfig = GroundingConfig()
    experiments: list[ExperimentConfig] = Field(
        default_factory=list,
        description="A/B experiments created at start when missing (also: bastion ab create).",
    )
    bias_gate: BiasGateConfig = BiasGateConfig()
    tuning: TuningConfig = TuningConfig()
    audit: AuditConfig = AuditConfig()
    capacity: CapacityConfig = CapacityConfig()
    sweep: SweepConfig = SweepConfig()
    logging: LoggingConfig = LoggingConfig()
    tracing: TracingConfig = TracingConfig()

    @model_validator(mode="after")
    def _consistent(self) -> BastionConfig:
        names = [m.name for m in self.models]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {sorted(dupes)}")
        for ref, where in (
            [(self.default_model, "default_model")]
            + [(a.model, f"apps[{a.name}].model") for a in self.apps]
            + [(m, f"apps[{a.name}].fallback_models") for a in self.apps for m in a.fallback_models]
        ):
            if ref is not None and ref not in names:
                raise ValueError(f"{where} names unknown model '{ref}'; known: {names}")
        sources = [s.name for s in self.sources]
        dupes = {n for n in sources if sources.count(n) > 1}
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {sorted(dupes)}")
        for a in self.apps:
            unknown = [s for s in a.sources if s not in sources]
            if unknown:
                raise ValueError(
                    f"apps[{a.name}].sources names unknown {unknown}; known: {sources}"
                )
        return self

    @property
    def resolved_default_model(self) -> str:
        return self.default_model or self.models[0].name

    def app(self, name: str) -> AppConfig | None:
        """The app's entry; a registered app that has none runs with the defaults."""
        found = next((a for a in self.apps if a.name == name), None)
        if found is None and registry.part("app", name) is not None:
            found = app_config_model()(name=name)
        return found

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)

    def fail_open_for(self, app_name: str) -> bool:
        """Whether a failing guard lets this app's requests through (flagged)."""
        app = self.app(app_name)
        return app.fail_open if app and app.fail_open is not None else self.guards.fail_open


def bastion_home() -> Path:
    """The data folder: $BASTION_HOME, else ~/.bastion."""
    return Path(os.environ.get("BASTION_HOME") or Path.home() / ".bastion").expanduser()


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    # Sorted, so that BASTION_A__B comes before BASTION_A__B__C whatever the order of the
    # environment: that one sets both a value and a key inside it, which is refused below.
    for key, raw in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__")]
        try:
            value = yaml.safe_load(raw)
        except (yaml.YAMLError, RecursionError):  # RecursionError: nested too deeply
            value = raw
        node = overrides
        for depth, part in enumerate(path[:-1], start=1):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # was a TypeError
                raise ConfigError(
                    f"{key} sets a key inside {'.'.join(path[:depth])}, which another "
                    "BASTION_* variable sets to a value; unset one of them"
                )
        node[path[-1]] = value
    return overrides


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"Invalid configuration in {source}:"]
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  - {key}: unknown key; check its spelling against the README")
        else:
            lines.append(f"  - {key}: {item['msg']}")
    return "\n".join(lines)


def read_yaml(path: Path, what: str, error: type[BastionError] = ConfigError) -> Any:
    """A YAML file's content; a missing, unreadable or malformed file raises `error` with a
    message that names `what` the file was meant to be."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise error(f"{what} {path} is nested too deeply to read; flatten it") from None


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> BastionConfig:
    """Read bastion.yaml (if present) and apply BASTION_* environment overrides."""
    environ = dict(os.environ if environ is None else environ)
    path = path or bastion_home() / CONFIG_FILE_NAME
    data: dict[str, Any] = {}
    if path.exists():
        loaded = read_yaml(path, "the configuration")
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of sections (server:, models:, ...)")
        data = loaded or {}
    data = _merge(data, _env_overrides(environ))
    try:
        return BastionConfig.model_validate(data)
    except ValidationError as exc:
        source = f"{path} and BASTION_* environment variables"
        raise ConfigError(_describe(exc, source)) from exc


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    for long, short in (("<class '", ""), ("'>", ""), ("bastion.config.", "")):
        text = text.replace(long, short)
    return text


#: Sections whose keys the registered parts extend, and the models that include them.
_EXTENDED_BY_PARTS: dict[type[BaseModel], Callable[[], type[BaseModel]]] = {
    GuardsConfig: guards_config_model,
    AppConfig: app_config_model,
}
#: Entries whose `settings` belong to the registered part they name, by the naming key.
_SETTINGS_OF: dict[type[BaseModel], Kind] = {
    SourceConfig: "connector",
    ModelConfig: "backend",
    AppConfig: "app",
}


def reference_rows(
    model: type[BaseModel] = BastionConfig, prefix: str = ""
) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every setting, walking nested sections and
    the sections and settings of every registered part."""
    rows = []
    model = _EXTENDED_BY_PARTS.get(model, lambda: model)()
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = info.annotation
        origin = getattr(annotation, "__origin__", None)
        # list[Annotated[X, ...]] -> X: the validators and serializers do not matter here
        args = tuple(getattr(a, "__origin__", a) for a in getattr(annotation, "__args__", ()))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(reference_rows(annotation, f"{key}."))
            continue
        if origin is list and args and isinstance(args[0], type) and issubclass(args[0], Section):
            rows.append((key, "list", "see below", info.description or ""))
            rows.extend(reference_rows(args[0], f"{key}[]."))
            continue
        if origin is dict and isinstance(args[-1], type) and issubclass(args[-1], Section):
            rows.append((key, "mapping", "see below", info.description or ""))
            rows.extend(reference_rows(args[-1], f"{key}.<name>."))
            continue
        if info.default_factory is not None:
            default = "(computed)"
        elif info.is_required():
            default = "required"
        else:
            default = repr(info.default)
        extra = info.json_schema_extra
        registered: Any = extra.get("registered") if isinstance(extra, dict) else None
        shown = " or ".join(registry.names(registered)) if registered else _type_name(annotation)
        rows.append((key, shown, default, info.description or ""))
        owner = next((k for c, k in _SETTINGS_OF.items() if issubclass(model, c)), None)
        if name == "settings" and owner is not None:
            for spec in registry.parts(owner, Part).values():
                if spec.settings is not None:
                    for k, t, d, m in reference_rows(spec.settings, f"{key}."):
                        rows.append((k, t, d, f"({owner} `{spec.name}`) {m}"))
    return rows


def reference_markdown() -> str:
    """The configuration reference as a Markdown table, then the registered parts (the
    README embeds both)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default, meaning in reference_rows():
        cells = [f"`{key}`", kind.replace("|", "\\|"), default.replace("|", "\\|"), meaning]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Registered parts (`guards.<name>`, `sources[].kind`, `models[].backend`, apps):"]
    lines.append("")
    for kind in KINDS:
        for name, spec in sorted(registry.parts(kind, Part).items()):
            needs = f" (needs {', '.join(f'`{n}`' for n in spec.needs)})" if spec.needs else ""
            lines.append(f"- {kind} `{name}`: {spec.description}{needs}")
    return "\n".join(lines) + "\n"
