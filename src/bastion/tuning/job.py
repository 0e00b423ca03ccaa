"""A fine-tuning run, in order: check who asks and what, train (or search), compare the
candidate with its base (the forgetting guard), register it with its lineage; and later
promote it into an A/B experiment against the app's current model.

Job folders live under `<home>/tuning/<name>/`; a run started again with `resume` picks up
the trial or training job it was killed in.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion.access import Policy, Principal
from bastion.config import BastionConfig, ExperimentConfig, ModelConfig, VariantConfig
from bastion.errors import BadRequest, Conflict, PermissionDenied
from bastion.experiments.store import ExperimentStore
from bastion.guards.toxicity.plugin import ToxicitySettings
from bastion.models import ModelRegistry
from bastion.tuning.dataset import Dataset, SupervisedExample
from bastion.tuning.forgetting import ForgettingReport, check_candidate
from bastion.tuning.progress import JobProgress
from bastion.tuning.registry import TunedModels, TunedRecord
from bastion.tuning.search import SearchSpace, search
from bastion.tuning.train import StepMetrics, TrainConfig, TrainResult, train

IDENTIFIER_TYPES = (  # personal data an answer must not invent or repeat (names are fine)
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "US_PASSPORT",
    "IP_ADDRESS",
)


@dataclass(frozen=True)
class TuningContext:
    """The parts of the platform a fine-tuning run uses, handed in by the caller (the CLI
    takes them from its Platform), so that tuning never imports the wiring."""

    home: Path  # BASTION_HOME: the model cache and the job folders are under it
    config: BastionConfig  # tuning.roles, tuning.forgetting, the toxicity threshold, the apps
    registry: ModelRegistry  # the base models
    policy: Policy  # who may use which model
    tuned: TunedModels  # where tuned models are registered
    experiments: ExperimentStore  # where promotion starts an A/B experiment


@dataclass
class TuningRequest:
    name: str  # the tuned model's name
    base_model: str  # a registered model with local weights
    dataset: Path  # a folder written by `bastion tune dataset`
    config: TrainConfig
    trials: int = 0  # > 0: an Optuna search of that many trials
    space: SearchSpace | None = None


def _base_weights(home: Path, config: ModelConfig) -> Path:
    """The transformers weights folder of a model: what it is served from (embedded,
    local), or for the embedded GGUF served by llama.cpp, that GGUF's converted weights.
    The tuned model is then served from these by transformers (`TunedRecord`)."""
    if config.tenant is not None or config.adapter:
        raise BadRequest(
            f"model '{config.name}' is itself fine-tuned; tune its base model "
            "on the combined data instead"
        )
    if config.backend == "embedded" or (config.backend == "llamacpp" and not config.path):
        from bastion.models.embedded import model_cache_root, prepare_embedded_model

        return prepare_embedded_model(model_cache_root(home))
    if config.backend == "local" and config.path:
        return Path(config.path).expanduser().resolve()
    raise BadRequest(
        f"model '{config.name}' is served by the {config.backend} backend"
        + (f" from {config.path}" if config.path else "")
        + "; fine-tuning needs transformers weights: register the same model with backend "
        "local and its Hugging Face folder as path, and tune that"
    )


def authorize(ctx: TuningContext, principal: Principal, base_model: str) -> ModelConfig:
    """The base model's config, when this principal may fine-tune it."""
    if principal.role not in ctx.config.tuning.roles:
        raise PermissionDenied(
            f"role '{principal.role}' may not fine-tune models; tuning.roles allows "
            f"{', '.join(ctx.config.tuning.roles)}"
        )
    config = ctx.registry.config(base_model, principal.tenant)
    if not ctx.policy.allows_model(principal, base_model):
        raise PermissionDenied(
            f"role '{principal.role}' may not use model '{base_model}', so may not tune it; "
            f"ask an admin to extend access.policies.{principal.role}.models"
        )
    return config


def safety_detectors() -> tuple[Callable[[str], float], Callable[[str], bool]]:
    """The gateway's toxicity score, and whether a text holds a personal identifier."""
    from bastion.guards.pii.detector import PiiDetector
    from bastion.guards.toxicity.detector import ToxicityDetector

    toxicity = ToxicityDetector()
    pii = PiiDetector(IDENTIFIER_TYPES, threshold=0.4)

    def leaks(text: str) -> bool:
        return bool(pii.detect(text, use_ner=False))

    return toxicity.score, leaks


def run(
    ctx: TuningContext,
    principal: Principal,
    request: TuningRequest,
    *,
    resume: bool = False,
    progress: bool = True,
) -> tuple[TunedRecord, ForgettingReport]:
    """Train, check and register a tuned model; a rejected candidate is registered as
    rejected (never served), so its report stays with its lineage."""
    tuned = ctx.tuned
    tuned.check_name(request.name)
    if tuned.find(request.name) is not None:
        raise Conflict(f"a tuned model named '{request.name}' exists; choose another name")
    if request.name in ctx.registry.names(principal.tenant):
        raise Conflict(f"'{request.name}' is a configured model's name; choose another")
    base_config = authorize(ctx, principal, request.base_model)
    base_path = _base_weights(ctx.home, base_config)
    data = Dataset.load(request.dataset)
    job_dir = ctx.home / "tuning" / request.name
    if job_dir.exists() and not resume:
        raise Conflict(
            f"{job_dir} holds an unfinished run of '{request.name}'; pass --resume to continue "
            "it, or remove the folder to start again"
        )

    search_summary: dict[str, Any] | None = None
    result: TrainResult
    if request.trials:
        found = search(
            base_path,
            data,
            job_dir,
            request.config,
            request.trials,
            space=request.space,
            progress=progress,
        )
        result, search_summary = found.best, found.summary()
    else:
        watched = JobProgress(
            name=request.name, tenant=principal.tenant, user=principal.user,
            base_model=request.base_model, method=request.config.method,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )  # fmt: skip
        watched.save(job_dir)

        def on_step(metrics: StepMetrics) -> bool:
            watched.step_done(job_dir, metrics)
            return False  # never stops the run

        result = train(
            base_path, data, job_dir / "train", request.config, resume=resume, progress=progress,
            on_step=on_step,
        )  # fmt: skip

    toxicity, leaks = safety_detectors()
    test = [ex for ex in data.splits["test"] if isinstance(ex, SupervisedExample)]
    report = check_candidate(
        base_path,
        result.config.method,
        Path(result.output_path),
        test,
        ctx.config.tuning.forgetting,
        toxicity=toxicity,
        pii=leaks,
        toxicity_threshold=ctx.config.guards.settings("toxicity", ToxicitySettings).threshold,
        progress=progress,
    )
    record = tuned.register(
        name=request.name,
        tenant=principal.tenant,
        base_model=request.base_model,
        method=result.config.method,
        weights=Path(result.output_path),
        dataset_sha256=data.card.dataset_sha256,
        lineage={
            "base_model": request.base_model,
            "base_path": str(base_path),
            "base_config": base_config.model_dump(mode="json"),
            "dataset": {"path": str(request.dataset.resolve()), **data.card.to_dict()},
            "method": result.config.method,
            "hyperparameters": result.config.model_dump(mode="json"),
            "search": search_summary,
        },
        metrics={"training": _training_metrics(result), "forgetting": report.to_dict()},
        status="accepted" if report.accepted else "rejected",
        created_by=principal.user,
    )
    shutil.rmtree(job_dir, ignore_errors=True)  # the weights now live in the registry
    return record, report


def _training_metrics(result: TrainResult) -> dict[str, Any]:
    data = result.to_dict()
    for key in ("config", "output_path", "base_model"):  # kept in the lineage instead
        data.pop(key)
    return data


def promote(
    ctx: TuningContext,
    principal: Principal,
    name: str,
    app: str,
    *,
    experiment: str | None = None,
    weight: float = 50.0,
    traffic: float = 100.0,
) -> dict[str, Any]:
    """Start an A/B experiment: the app's current model (control) against the tuned one.
    Nothing is replaced; the experiment's own promote decides."""
    record = ctx.tuned.get(name, principal.tenant)
    if record.status == "rejected":
        reasons = record.metrics.get("forgetting", {}).get("reasons", [])
        raise Conflict(
            f"'{name}' was rejected by the forgetting guard ({'; '.join(reasons)}); "
            "it cannot be put in front of users"
        )
    authorize(ctx, principal, record.base_model)
    app_config = ctx.config.app(app)
    if app_config is None:
        raise BadRequest(f"app '{app}' is not configured")
    current = app_config.model or ctx.config.resolved_default_model
    if not 0 < weight < 100:
        raise BadRequest("--weight is the tuned model's share in percent: between 0 and 100")
    spec = ExperimentConfig(
        name=experiment or f"tune-{name.lower().replace('.', '-').replace(':', '-')}"[:64],
        tenant=record.tenant,
        app=app,
        variants=[
            VariantConfig(name="control", model=current, weight=100.0 - weight),
            VariantConfig(name="tuned", model=name, weight=weight),
        ],
        traffic=traffic,
    )
    created = ctx.experiments.create(spec)
    ctx.tuned.set_status(name, "testing")
    return created
