"""Cost and sizing: the capacity planner for a registered model, and the saved sweep reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from bastion.capacity import PlanRequest, capacity_plan
from bastion.capacity.architecture import BYTES_PER_PARAMETER
from bastion.capacity.hardware import hardware_table
from bastion.capacity.traffic import observed_traffic
from bastion.console.web import AdminViewer, Console, parse_moment
from bastion.errors import BadRequest
from bastion.models.backends import weights_path
from bastion.sweep.report import SWEEPS, saved_reports

PRECISIONS = ("stored", *BYTES_PER_PARAMETER)


def _number(value: str, name: str, whole: bool = False) -> float | None:
    """A positive number the viewer typed; empty: None."""
    if not value.strip():
        return None
    try:
        number = int(value) if whole else float(value)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        example = "512" if whole else "2.5"
        raise BadRequest(f"{name} '{value}' is not {kind}; type e.g. {example}") from None
    if not number > 0 or number == float("inf"):
        raise BadRequest(f"{name} must be more than 0, not {value}")
    return number


def register(web: FastAPI, console: Console) -> None:
    platform = console.platform
    table = hardware_table()

    def plan_for(tenant: str, form: dict[str, Any]) -> dict[str, Any]:
        config = platform.registry.config(form["model"], tenant)  # another tenant's: NotFound
        try:
            weights = weights_path(config)
        except BadRequest:
            raise BadRequest(
                f"model '{config.name}' ({config.backend} backend) has no local weights to read "
                "its shape from, so it cannot be sized; to plan it, set its path in "
                "bastion.yaml to a .gguf file or a Hugging Face weights folder"
            ) from None
        qps = _number(form["qps"], "requests per second")
        p95 = _number(form["p95_ms"], "p95 latency")
        if qps is None or p95 is None:
            raise BadRequest("give the requests per second and the p95 latency target to plan")
        known = {h.name for h in table}
        for name in form["hardware"]:
            if name not in known:
                raise BadRequest(f"no hardware named '{name}'; choose from the list")
        if form["precision"] and form["precision"] not in PRECISIONS:
            raise BadRequest(
                f"precision '{form['precision']}' is unknown; use one of {', '.join(PRECISIONS)}"
            )
        prompt = _number(form["prompt_tokens"], "prompt tokens", whole=True)
        answer = _number(form["answer_tokens"], "answer tokens", whole=True)
        since, observed, unseen = parse_moment(form["since"], "since"), None, False
        if since is not None and (prompt is None or answer is None):
            try:
                observed = observed_traffic(platform.audit, config.name, since, tenant)
                prompt = prompt or observed.prompt_tokens_p95
                answer = answer or observed.answer_tokens_p95
            except BadRequest:  # no traffic yet: the planner's default lengths, said so
                unseen = True
        request = PlanRequest(
            qps=qps,
            p95_ms=p95,
            hardware=form["hardware"] or None,
            precision=form["precision"] or None,
            prompt_tokens=int(prompt) if prompt else None,
            answer_tokens=int(answer) if answer else None,
            prices=platform.config.capacity.prices,
        )
        result = capacity_plan(config.name, weights, request, platform.audit, tenant, config.price)
        result["observed"] = observed.to_dict() if observed else None
        result["unseen"] = unseen
        return result

    @web.get("/cost")
    def cost_page(
        request: Request,
        viewer: AdminViewer,
        model: str = "",
        qps: str = "1",
        p95_ms: str = "5000",
        hardware: Annotated[list[str] | None, Query()] = None,
        precision: str = "",
        prompt_tokens: str = "",
        answer_tokens: str = "",
        since: str = "",
    ) -> Response:
        tenant = viewer.principal.tenant
        form = {"model": model, "qps": qps, "p95_ms": p95_ms, "hardware": hardware or [],
                "precision": precision, "prompt_tokens": prompt_tokens,
                "answer_tokens": answer_tokens, "since": since}  # fmt: skip
        if not model:  # the form alone: lengths from the last week's traffic by default
            form["since"] = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
        plan, error = None, None
        if model:
            try:
                plan = plan_for(tenant, form)
            except BadRequest as exc:  # shown above the form, which keeps what was typed
                error = exc.message
        sweeps = saved_reports(platform.home / SWEEPS, set(platform.registry.names(tenant)))
        return console.page(
            request, viewer, "cost.html", status=400 if error else 200, form=form,
            models=platform.registry.names(tenant), hardware=table, precisions=PRECISIONS,
            plan=plan, error=error, sweeps=sweeps, sweeps_folder=platform.home / SWEEPS,
        )  # fmt: skip
