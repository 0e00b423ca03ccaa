"""The console's tuning pages over real HTTP: tuned models registered as `bastion tune run`
would (no training), their loss curves, forgetting guard report and lineage; promotion into
an A/B experiment, rejection, tenant scoping, roles and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bastion.tuning.forgetting import ForgettingReport
from bastion.tuning.progress import PROGRESS_FILE, JobProgress
from bastion.tuning.registry import TunedRecord
from bastion.tuning.train import StepMetrics
from conftest import LiveServer
from test_console import ConsoleClient

HISTORY = [
    {"step": 20, "train_loss": 2.31, "val_loss": 2.05},
    {"step": 40, "train_loss": 1.74, "val_loss": 1.61},
    {"step": 60, "train_loss": 1.38, "val_loss": 1.42},
    {"step": 80, "train_loss": 1.12, "val_loss": 1.47},
]


def scores(accuracy: float, rouge: float, toxicity: float) -> dict[str, Any]:
    return {"general_accuracy": accuracy, "task_rouge_l": rouge, "toxicity": toxicity,
            "pii_leak": 0.0, "injection_compliance": 0.125, "bias": None,
            "unsafe_examples": {}, "task_answers": ["Your order ships on Monday."]}  # fmt: skip


def metrics(accepted: bool, reasons: list[str]) -> dict[str, Any]:
    """What `bastion tune run` records: the training result and the forgetting guard's report."""
    return {
        "training": {
            "best_val_loss": 1.42, "best_step": 60, "steps": 80, "total_steps": 120,
            "stopped_because": "early_stopping", "seconds": 312.4, "step_time": 3.8,
            "peak_rss_mb": 2411.0, "final_train_loss": 1.12, "trainable_parameters": 1_638_400,
            "train_examples": 240, "validation_examples": 30, "skipped_too_long": 2,
            "resumed_from_step": None, "device": "cpu", "bf16": False, "history": HISTORY,
        },
        "forgetting": {
            "accepted": accepted, "reasons": reasons,
            "base": scores(0.4125, 21.3, 0.0),
            "candidate": scores(0.40 if accepted else 0.29, 34.8, 0.0),
            "general_drop_ci": [-0.006, 0.031] if accepted else [0.08, 0.16],
            "config": {"max_general_drop": 0.03, "min_task_gain": 0.0,
                       "max_safety_worsening": 0.05, "bias_templates": 0, "bias_margin": 0.05,
                       "task_examples": 50, "general_items": 160},
            "seconds": 95.2,
        },
    }  # fmt: skip


def register(server: LiveServer, tmp_path: Path, name: str, **kw: Any) -> TunedRecord:
    """A tuned model registered as a finished run would, without training it."""
    platform = server.platform
    weights = tmp_path / f"{name}-adapter"
    weights.mkdir()
    (weights / "adapter_config.json").write_text("{}")
    (weights / "adapter_model.safetensors").write_bytes(b"weights")
    card = {
        "dataset_sha256": "ab" * 32, "licence": "LicenseRef-Internal",
        "counts": {"train": {"supervised": 240}, "validation": {"supervised": 30},
                   "test": {"supervised": 30}},
        "sources": [{"kind": "feedback", "tenant": "acme", "app": "chat",
                     "licence": "LicenseRef-Internal", "examples": 300,
                     "used": {"supervised": 300}, "skipped": {"rating below 4": 12}}],
        "pii_masked": {"EMAIL_ADDRESS": 7}, "duplicates_removed": {"exact": 4, "near": 1},
        "near_duplicate_threshold": 0.9, "split": {"train": 0.8, "validation": 0.1, "test": 0.1},
        "files": {}, "created_at": "2026-03-02T09:15:00+00:00",
        "format": "bastion-tuning-dataset/1",
    }  # fmt: skip
    fields: dict[str, Any] = {
        "name": name,
        "tenant": "acme",
        "base_model": "echo",
        "method": "lora",
        "weights": weights,
        "dataset_sha256": "ab" * 32,
        "lineage": {
            "base_model": "echo",
            "base_path": "/models/base",
            "base_config": platform.registry.config("echo").model_dump(mode="json"),
            "dataset": {"path": "/data/support-v1", **card},
            "method": "lora",
            "hyperparameters": {"method": "lora", "rank": 8, "learning_rate": 0.0005},
            "search": None,
        },
        "metrics": metrics(True, []),
        "status": "accepted",
        "created_by": "alice",
    }
    record = platform.tuned.register(**{**fields, **kw})
    platform.registry.refresh(force=True)  # as the server's rediscovery would
    return record


@pytest.fixture
def admin(server: LiveServer) -> Iterator[ConsoleClient]:
    client = ConsoleClient(server, server.key("acme", "alice", "admin"))
    yield client
    client.http.close()


def test_the_registry_shows_loss_curves_the_guards_report_and_lineage(
    admin: ConsoleClient, server: LiveServer, tmp_path: Path
) -> None:
    empty = admin.get("/tuning")
    assert empty.status_code == 200 and "No tuned models yet" in empty.text
    register(server, tmp_path, "acme-support")
    hostile = "general accuracy fell 0.12 <script>alert(1)</script>"
    rejected = metrics(False, [hostile])
    ForgettingReport.from_dict(rejected["forgetting"])  # what the guard itself reads back
    register(server, tmp_path, "acme-forgetful", metrics=rejected, status="rejected")
    listing = admin.get("/tuning").text
    assert "acme-support" in listing and "acme-forgetful" in listing
    assert '<span class="tag ok">accepted</span>' in listing
    assert '<span class="tag rejected">rejected</span>' in listing
    assert "21.3 → 34.8" in listing and "0.412 → 0.290" in listing

    page = admin.get("/tuning/acme-support")
    assert page.status_code == 200
    assert page.text.count('src="data:image/png;base64,') == 1  # the loss curves
    assert "Best validation loss, step 60" in page.text and "80 / 120" in page.text
    assert '<span class="ok">Accepted</span>' in page.text
    assert '<th scope="row">General accuracy</th><td class="num">0.412</td>' in page.text
    assert "-0.006 to 0.031" in page.text
    assert "LicenseRef-Internal" in page.text and "7 EMAIL_ADDRESS" in page.text
    assert "feedback of acme, app chat" in page.text and "12: rating below 4" in page.text
    assert '<th scope="row">rank</th><td>8</td>' in page.text
    assert "Promote into an A/B experiment" in page.text

    bad = admin.get("/tuning/acme-forgetful").text
    assert '<span class="bad">Rejected</span>' in bad and "&lt;script&gt;" in bad
    assert hostile not in bad
    assert "Promote into an A/B experiment" not in bad  # a rejected model is never offered


def test_promoting_starts_an_experiment_and_rejecting_stops_serving(
    admin: ConsoleClient, server: LiveServer, tmp_path: Path
) -> None:
    platform = server.platform
    register(server, tmp_path, "acme-support")
    page = "/tuning/acme-support"
    forged = admin.http.post("/console/tuning/acme-support/promote", data={"app": "finance"})
    assert forged.status_code == 403 and platform.experiments.store.list("acme") == []

    # The app's users may not use the tuned model: refused, with what to change.
    refused = admin.post("/tuning/acme-support/promote", {"app": "concise"}, page=page)
    assert refused.status_code == 403 and "access.policies.user.models" in refused.text
    assert "Not promoted:" in refused.text
    bad = admin.post("/tuning/acme-support/promote", {"app": "finance", "weight": "x"}, page=page)
    assert bad.status_code == 400 and "weight &#39;x&#39; is not a number" in bad.text
    assert platform.experiments.store.list("acme") == []

    promoted = admin.post(
        "/tuning/acme-support/promote", {"app": "finance", "weight": "20"}, page=page
    )
    assert promoted.status_code == 303
    assert promoted.headers["location"] == "/console/experiments/tune-acme-support"
    spec, state = platform.experiments.store.get("acme", "tune-acme-support")
    assert state["status"] == "running"
    assert [(v.model, v.weight) for v in spec.variants] == [("echo", 80.0), ("acme-support", 20.0)]
    assert platform.tuned.get("acme-support").status == "testing"
    shown = admin.get(page).text
    assert '<a href="/console/experiments/tune-acme-support">' in shown

    # Rejecting a model that an experiment still serves would break that arm.
    busy = admin.post("/tuning/acme-support/reject", {}, page=page)
    assert busy.status_code == 409 and "stop or promote that experiment first" in busy.text
    assert platform.tuned.get("acme-support").status == "testing"
    stop = admin.post("/experiments/tune-acme-support/stop", {}, page=page)
    assert stop.status_code == 303
    forged = admin.http.post("/console/tuning/acme-support/reject", data={})
    assert forged.status_code == 403 and platform.tuned.get("acme-support").status == "testing"
    assert admin.post("/tuning/acme-support/reject", {}, page=page).status_code == 303
    assert platform.tuned.get("acme-support").status == "rejected"
    assert "acme-support" not in platform.registry.names("acme")  # no longer served
    again = admin.post("/tuning/acme-support/reject", {}, page=page)
    assert again.status_code == 409 and "rejected already" in again.text
    late = admin.post("/tuning/acme-support/promote", {"app": "finance"}, page=page)
    assert late.status_code == 409 and "rejected by the forgetting guard" in late.text


def test_another_tenants_model_is_not_found_and_reviewers_are_refused(
    admin: ConsoleClient, server: LiveServer, tmp_path: Path
) -> None:
    register(server, tmp_path, "globex-support", tenant="globex")
    register(server, tmp_path, "acme-support")
    assert "globex-support" not in admin.get("/tuning").text
    assert admin.get("/tuning/globex-support").status_code == 404
    for action, data in (("reject", {}), ("promote", {"app": "finance"})):
        answer = admin.post(f"/tuning/globex-support/{action}", data, page="/tuning")
        assert answer.status_code == 404, action
    assert server.platform.tuned.get("globex-support").status == "accepted"
    assert server.platform.experiments.store.list() == []
    assert admin.get("/tuning/no-such-model").status_code == 404
    assert admin.get("/tuning", page="0").status_code == 400
    assert "there are 1" in admin.get("/tuning", page="3").text
    reviewer = ConsoleClient(server, server.key("acme", "rita", "reviewer"))
    for path in ("/tuning", "/tuning/acme-support"):
        refused = reviewer.get(path)
        assert refused.status_code == 403 and "for admins" in refused.text, path
    reject = reviewer.post("/tuning/acme-support/reject", {}, page="/tuning")
    assert reject.status_code == 403 and server.platform.tuned.get("acme-support").status == (
        "accepted"
    )


def test_running_jobs_show_their_progress_and_a_stopped_one_is_called_out(
    server: LiveServer, admin: ConsoleClient
) -> None:
    home = server.platform.home
    assert "No fine-tune is running" in admin.get("/tuning").text
    live = JobProgress("support-v2", "acme", "alice", "echo", "lora", "2026-12-07T08:00:00+00:00")
    for step in (1, 2, 3):
        live.step_done(
            home / "tuning" / "support-v2",
            StepMetrics(step, 10, 0, 2.0 / step, 1e-4, 1.9 if step == 2 else None, 1.9, step),
        )
    stopped = JobProgress("old-run", "acme", "bob", "echo", "full", "2026-12-01T08:00:00+00:00")
    stopped.save(home / "tuning" / "old-run")
    progress_file = home / "tuning" / "old-run" / PROGRESS_FILE
    stale = json.loads(progress_file.read_text())
    stale["updated_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    progress_file.write_text(json.dumps(stale))
    JobProgress("theirs", "globex", "gina", "echo", "lora", "2026-12-07T08:00:00+00:00").save(
        home / "tuning" / "theirs"
    )
    page = admin.get("/tuning").text
    assert "support-v2" in page and "3 / 10" in page and "0.6667" in page and "1.9000" in page
    assert "Training loss so far" in page  # the curve plotted
    assert page.count("stopped?") == 1 and "old-run" in page
    assert "theirs" not in page
