"""Models and apps: the tenant's models with their health and queues, its tuned models, the
apps with their overrides, and what each role may use (read-only: bastion.yaml sets them)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from bastion.access import Principal
from bastion.apps import app_specs
from bastion.config import AppConfig, ModelConfig
from bastion.console.web import AdminViewer, Console
from bastion.tuning.registry import SERVED


def _weights(config: ModelConfig) -> str:
    """Where the model's answers come from, as an admin would look for it."""
    if config.base_url:
        return f"{config.remote_model or config.name} at {config.base_url}"
    if config.path:
        return f"{config.path} + adapter {config.adapter}" if config.adapter else config.path
    if config.backend in ("llamacpp", "embedded"):
        return "the embedded model"
    return ""


def model_rows(platform: Any, tenant: str) -> list[dict[str, Any]]:
    registry = platform.registry
    rows = []
    for name in registry.names(tenant):
        config = registry.config(name, tenant)
        gate = registry.gate(name)
        rows.append(
            {
                "config": config,
                "weights": _weights(config),
                "sampling": config.sampling.model_dump(exclude_none=True),
                "loaded": registry.loaded(name),
                "generating": gate.in_flight - gate.queued,
                "queued": gate.queued,
                "default": name == platform.config.resolved_default_model,
            }
        )
    return rows


def _overrides(app: AppConfig) -> dict[str, Any]:
    """The guard settings this app sets for itself (fields the guards add to `apps[]`)."""
    found: dict[str, Any] = {} if app.fail_open is None else {"fail_open": app.fail_open}
    for name in type(app).model_fields:
        value = getattr(app, name)
        if name not in AppConfig.model_fields and value not in (None, {}, []):
            found[name] = value
    return found


def app_rows(platform: Any) -> list[dict[str, Any]]:
    config = platform.config
    specs = app_specs()
    names = [a.name for a in config.apps] + sorted(set(specs) - {a.name for a in config.apps})
    rows = []
    for name in names:
        app = config.app(name)
        spec = specs.get(name)
        rows.append(
            {
                "app": app,
                "model": app.model or f"default ({config.resolved_default_model})",
                "plugin": spec.description if spec else None,
                "configured": any(a.name == name for a in config.apps),
                "overrides": _overrides(app),
            }
        )
    return rows


def policy_rows(platform: Any, tenant: str, models: list[str], apps: list[str]) -> list[Any]:
    """Each role's patterns and the models and apps of this tenant they let it use."""
    rows = []
    for role, rule in platform.config.access.policies.items():
        someone = Principal(tenant, "", role)
        rows.append(
            {
                "role": role,
                "rule": rule,
                "models": [m for m in models if platform.policy.allows_model(someone, m)],
                "apps": [a for a in apps if platform.policy.allows_app(someone, a)],
            }
        )
    return rows


def register(web: FastAPI, console: Console) -> None:
    platform = console.platform

    @web.get("/models")
    def models_page(request: Request, viewer: AdminViewer) -> Response:
        tenant = viewer.principal.tenant
        models = model_rows(platform, tenant)
        apps = app_rows(platform)
        tuned = [t for t in platform.tuned.all(tenant) if t.status in SERVED]
        policies = policy_rows(
            platform, tenant, [m["config"].name for m in models], [a["app"].name for a in apps]
        )
        return console.page(
            request, viewer, "models.html", models=models, apps=apps, tuned=tuned,
            policies=policies,
        )  # fmt: skip
