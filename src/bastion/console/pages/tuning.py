"""Tuned models of the admin's tenant: loss curves, forgetting guard, lineage; promote or reject."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.console.sessions import Viewer
from bastion.console.web import AdminViewer, Console, numbered, redirect
from bastion.errors import BadRequest, BastionError, Conflict
from bastion.plots import inline_png, pyplot
from bastion.tuning.progress import JobProgress, running_jobs
from bastion.tuning.registry import TunedRecord

PAGE_SIZE = 50
# The forgetting guard's figures: (label, key in ModelScores, higher is better)
GUARD_ROWS = (
    ("General accuracy", "general_accuracy", True),
    ("Task ROUGE-L", "task_rouge_l", True),
    ("Toxic answers", "toxicity", False),
    ("Personal data leaked", "pii_leak", False),
    ("Injections obeyed", "injection_compliance", False),
)


def guard_rows(forgetting: dict[str, Any]) -> list[dict[str, Any]]:
    """The base and the candidate side by side, with the change and whether it is worse."""
    rows = []
    for label, key, higher_is_better in GUARD_ROWS:
        base = forgetting.get("base", {}).get(key)
        candidate = forgetting.get("candidate", {}).get(key)
        if base is None or candidate is None:
            continue
        change = candidate - base
        worse = change < 0 if higher_is_better else change > 0
        rows.append({"label": label, "base": base, "candidate": candidate, "change": change,
                     "worse": worse})  # fmt: skip
    return rows


def loss_plot(training: dict[str, Any]) -> str | None:
    """Training and validation loss by optimizer step, the best step marked; None when the
    run recorded no validation."""
    history = training.get("history") or []
    if not history:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3))
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["train_loss"] for h in history], marker=".", label="training")
    ax.plot(steps, [h["val_loss"] for h in history], marker=".", label="validation")
    if training.get("best_step") is not None:
        ax.axvline(training["best_step"], color="grey", linestyle=":", label="best (kept)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    return inline_png(fig)


def jobs_plot(jobs: list[JobProgress]) -> str | None:
    """The training loss of each running job by step, so far."""
    if not any(job.curve for job in jobs):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    for job in jobs:
        ax.plot(
            [p["step"] for p in job.curve], [p["train_loss"] for p in job.curve], label=job.name
        )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
    return inline_png(fig)


def _number(value: str, label: str, default: float) -> float:
    if not value.strip():
        return default
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{label} '{value}' is not a number; give a percent such as 20") from None
    if not math.isfinite(number):
        raise BadRequest(f"{label} must be a finite percent")
    return number


def register(web: FastAPI, console: Console) -> None:
    platform = console.platform
    tuned = platform.tuned
    store = platform.experiments.store

    def experiments_using(tenant: str, name: str) -> list[str]:
        """The tenant's running experiments that have the tuned model in an arm."""
        return [
            e["name"]
            for e in store.list(tenant)
            if e["status"] == "running"
            and any(v.model == name for v in store.get(tenant, e["name"])[0].variants)
        ]

    def detail(
        request: Request,
        viewer: Viewer,
        record: TunedRecord,
        refused: str | None = None,
        status: int = 200,
    ) -> Response:
        forgetting = record.metrics.get("forgetting") or {}
        training = record.metrics.get("training") or {}
        return console.page(
            request, viewer, "tuned_model.html", status=status, record=record,
            forgetting=forgetting, guard=guard_rows(forgetting), training=training,
            loss=loss_plot(training), dataset=record.lineage.get("dataset") or {},
            search=record.lineage.get("search"), apps=[a.name for a in platform.config.apps],
            experiments=experiments_using(record.tenant, record.name), refused=refused,
        )  # fmt: skip

    @web.get("/tuning")
    def tuning_page(request: Request, viewer: AdminViewer, page: int = Query(1, ge=1)) -> Response:
        tenant = viewer.principal.tenant
        shown, at = numbered(tuned.all(tenant)[::-1], page, PAGE_SIZE)
        jobs = running_jobs(platform.home, tenant)
        return console.page(
            request, viewer, "tuning.html", records=shown, at=at, jobs=jobs,
            jobs_plot=jobs_plot(jobs),
        )  # fmt: skip

    @web.get("/tuning/{name}")
    def tuned_page(request: Request, name: str, viewer: AdminViewer) -> Response:
        return detail(request, viewer, tuned.get(name, viewer.principal.tenant))

    @web.post("/tuning/{name}/promote")
    async def tuned_promote(request: Request, name: str, viewer: AdminViewer) -> Response:
        form = await console.form(request, viewer)
        record = tuned.get(name, viewer.principal.tenant)  # another tenant's: 404
        from bastion.tuning.job import promote  # torch: only when a model is promoted

        try:
            created = await run_in_threadpool(
                lambda: promote(
                    platform.tuning(),
                    viewer.principal,
                    name,
                    form.get("app", ""),
                    experiment=form.get("experiment", "").strip() or None,
                    weight=_number(form.get("weight", ""), "weight", 50.0),
                    traffic=_number(form.get("traffic", ""), "traffic", 100.0),
                )
            )
        except BastionError as exc:
            # Why it was refused (rejected by the guard, the app's users may not use it, the
            # app already runs an experiment), on the page it was asked from.
            return detail(request, viewer, record, refused=exc.message, status=exc.status_code)
        return redirect(f"/experiments/{created['name']}")

    @web.post("/tuning/{name}/reject")
    async def tuned_reject(request: Request, name: str, viewer: AdminViewer) -> Response:
        await console.form(request, viewer)
        record = tuned.get(name, viewer.principal.tenant)
        if record.status == "rejected":
            raise Conflict(f"'{name}' is rejected already")
        running = experiments_using(record.tenant, name)
        if running:
            # Its arm would fail every request it is assigned: end the experiment first.
            raise Conflict(
                f"'{name}' is in running experiment '{running[0]}'; stop or promote that "
                "experiment first"
            )
        tuned.set_status(name, "rejected")
        platform.registry.refresh(force=True)  # a rejected model is no longer served
        return redirect(f"/tuning/{name}")
