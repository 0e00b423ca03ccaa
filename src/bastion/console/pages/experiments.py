"""A/B experiments of the admin's tenant: list, create, the report with its plots, stop, promote."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from bastion.config import ExperimentConfig, MetricName
from bastion.console.sessions import Viewer
from bastion.console.web import AdminViewer, Console, numbered, parse_moment, redirect
from bastion.errors import BadRequest, BastionError
from bastion.experiments.metrics import METRICS
from bastion.experiments.report import figures

PAGE_SIZE = 50
ARM_ROWS = 4  # arms the form offers; empty rows are left out
GUARDRAIL_ROWS = 2
UNITS = ("user", "account", "request")
METRIC_NAMES: tuple[str, ...] = get_args(MetricName)
ARM_FIELDS = ("name", "model", "weight", "system_prompt", "temperature", "max_tokens")


def _where(loc: tuple[int | str, ...]) -> str:
    """A validation error's location in the form's words: 'arm 2 weight', 'traffic'."""
    if len(loc) >= 2 and loc[0] in ("variants", "guardrails") and isinstance(loc[1], int):
        kind = "arm" if loc[0] == "variants" else "guardrail"
        rest = " ".join(str(p).replace("_", " ") for p in loc[2:])
        return f"{kind} {loc[1] + 1} {rest}".strip()
    return " ".join(str(p).replace("_", " ") for p in loc)


def readable(exc: ValidationError) -> str:
    """A pydantic error as one sentence an admin can act on."""
    problems = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        where = _where(tuple(error["loc"]))
        problems.append(f"{where}: {message}" if where else message)
    return "the experiment is not valid: " + "; ".join(problems)


def spec_from_form(form: dict[str, str], tenant: str, apps: list[str]) -> ExperimentConfig:
    """The ExperimentConfig the create form describes, in the viewer's tenant."""
    app = form.get("app", "")
    if app not in apps:
        raise BadRequest(f"app '{app}' is not configured; pick one of {', '.join(apps)}")
    variants = []
    for i in range(ARM_ROWS):
        arm = {k: form.get(f"arm{i}_{k}", "").strip() for k in ARM_FIELDS}
        if not arm["name"]:
            continue
        # pydantic reads the numbers from the text; empty optional fields take the defaults
        variants.append({k: v for k, v in arm.items() if v})
    guardrails = []
    for i in range(GUARDRAIL_ROWS):
        metric = form.get(f"guardrail{i}_metric", "")
        if metric:
            worsening = form.get(f"guardrail{i}_max_worsening", "").strip()
            guardrails.append({"metric": metric, "max_worsening": worsening})
    data: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "tenant": tenant,  # an admin creates experiments in their own tenant only
        "app": app,
        "unit": form.get("unit", "user"),
        "primary_metric": form.get("primary_metric", "feedback_score"),
        "variants": variants,
        "guardrails": guardrails,
    }
    for key in ("start", "stop"):  # as the UTC ISO text the experiment store compares
        moment = parse_moment(form.get(key, ""), key)
        data[key] = moment.isoformat() if moment else None
    for key in ("traffic", "minimum_effect"):
        if form.get(key, "").strip():
            data[key] = form[key].strip()
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(readable(exc)) from None


def register(web: FastAPI, console: Console) -> None:
    platform = console.platform
    experiments = platform.experiments

    def listing(
        request: Request,
        viewer: Viewer,
        page: int = 1,
        form: dict[str, str] | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        tenant = viewer.principal.tenant
        shown, at = numbered(experiments.store.list(tenant)[::-1], page, PAGE_SIZE)  # newest first
        return console.page(
            request, viewer, "experiments.html", status=status, experiments=shown, at=at,
            apps=[a.name for a in platform.config.apps],
            models=platform.registry.names(tenant), units=UNITS, metrics=METRIC_NAMES,
            arm_rows=ARM_ROWS, guardrail_rows=GUARDRAIL_ROWS, form=form or {}, error=error,
        )  # fmt: skip

    def detail(
        request: Request,
        viewer: Viewer,
        name: str,
        refused: str | None = None,
        status: int = 200,
    ) -> Response:
        tenant = viewer.principal.tenant
        report, arms = experiments.report(tenant, name)
        spec, state = experiments.store.get(tenant, name)
        observed = sum(report["requests"].values())
        return console.page(
            request, viewer, "experiment.html", status=status, report=report, spec=spec,
            state=state, metrics=METRICS, plots=figures(report, arms) if observed else [],
            refused=refused,
        )  # fmt: skip

    @web.get("/experiments")
    def experiments_page(
        request: Request, viewer: AdminViewer, page: int = Query(1, ge=1)
    ) -> Response:
        return listing(request, viewer, page)

    @web.post("/experiments")
    async def experiments_create(request: Request, viewer: AdminViewer) -> Response:
        form = await console.form(request, viewer)
        apps = [a.name for a in platform.config.apps]
        try:
            spec = spec_from_form(form, viewer.principal.tenant, apps)
            await run_in_threadpool(experiments.store.create, spec)
        except BastionError as exc:
            # The form comes back filled in, with what to fix.
            return listing(request, viewer, form=form, error=exc.message, status=exc.status_code)
        return redirect(f"/experiments/{spec.name}")

    @web.get("/experiments/{name}")
    def experiment_page(request: Request, name: str, viewer: AdminViewer) -> Response:
        return detail(request, viewer, name)

    @web.post("/experiments/{name}/stop")
    async def experiment_stop(request: Request, name: str, viewer: AdminViewer) -> Response:
        await console.form(request, viewer)
        experiments.stop(viewer.principal.tenant, name)
        return redirect(f"/experiments/{name}")

    @web.post("/experiments/{name}/promote")
    async def experiment_promote(request: Request, name: str, viewer: AdminViewer) -> Response:
        form = await console.form(request, viewer)
        tenant = viewer.principal.tenant
        experiments.store.get(tenant, name)  # another tenant's: 404, not a refusal
        try:
            await run_in_threadpool(
                experiments.promote, tenant, name, form.get("arm", ""), form.get("force") == "on"
            )
        except BastionError as exc:
            # A refused promotion (the bias gate, an unknown arm, already ended) says why
            # on the report it was asked from.
            return detail(request, viewer, name, refused=exc.message, status=exc.status_code)
        return redirect(f"/experiments/{name}")
