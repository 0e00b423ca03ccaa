"""The tuned-model registry: lineage rows, weights copied all or nothing, tuned models
served only to their tenant, promotion into an A/B experiment, who may tune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.access import Principal
from bastion.config import BastionConfig, ModelConfig
from bastion.errors import BadRequest, Conflict, NotFound, PermissionDenied
from bastion.platform import Platform
from bastion.tuning import job
from bastion.tuning.registry import TunedRecord
from conftest import ECHO_CONFIG, LiveServer, write_config

ADMIN = Principal("acme", "alice", "admin")


def adapter(tmp_path: Path) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


def register(platform: Platform, tmp_path: Path, name: str = "acme-support", **kw: Any) -> Any:
    base = platform.registry.config("echo")
    fields: dict[str, Any] = {
        "name": name,
        "tenant": "acme",
        "base_model": "echo",
        "method": "lora",
        "weights": adapter(tmp_path),
        "dataset_sha256": "ab" * 32,
        "lineage": {
            "base_model": "echo",
            "base_path": "/models/base",
            "base_config": base.model_dump(mode="json"),
            "hyperparameters": {"rank": 8},
        },
        "metrics": {"forgetting": {"accepted": True, "reasons": []}},
        "status": "accepted",
        "created_by": "alice",
    }
    return platform.tuned.register(**{**fields, **kw})


def test_register_copies_weights_and_keeps_lineage(platform: Platform, tmp_path: Path) -> None:
    record = register(platform, tmp_path)
    assert Path(record.weights_path) == platform.home / "tuned" / "acme-support"
    assert (Path(record.weights_path) / "adapter_model.safetensors").read_bytes() == b"weights"
    again = platform.tuned.get("acme-support")
    assert again.lineage["hyperparameters"] == {"rank": 8}
    assert again.dataset_sha256 == "ab" * 32 and again.created_by == "alice"
    served = again.model_config()
    assert served.backend == "local" and served.path == "/models/base"
    assert served.adapter == record.weights_path and served.tenant == "acme"
    assert served.price == platform.registry.config("echo").price  # the base's costs
    assert [r.name for r in platform.tuned.all("acme")] == ["acme-support"]
    assert platform.tuned.all("beta") == []
    with pytest.raises(NotFound):
        platform.tuned.get("acme-support", tenant="beta")
    with pytest.raises(Conflict):
        register(platform, tmp_path)
    with pytest.raises(BadRequest, match="not valid"):
        register(platform, tmp_path, name="../escape")


def test_a_model_tuned_from_the_default_gguf_is_served_by_transformers() -> None:
    base = BastionConfig().models[0]  # the embedded GGUF, served by llama.cpp
    record = TunedRecord(
        name="acme-smol",
        tenant="acme",
        base_model=base.name,
        method="lora",
        weights_path="/tuned/acme-smol",
        dataset_sha256="ab" * 32,
        lineage={"base_path": "/models/smollm2", "base_config": base.model_dump(mode="json")},
        metrics={},
        status="accepted",
        created_by="alice",
        created_at="2026-12-07T00:00:00+00:00",
    )
    served = record.model_config()
    assert (served.backend, served.path, served.adapter) == (
        "local",
        "/models/smollm2",
        "/tuned/acme-smol",
    )
    assert served.sampling == base.sampling  # the base's recommended settings carry over


def test_no_half_registered_model(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(BadRequest, match="could not copy"):
        register(platform, tmp_path, weights=tmp_path / "missing")
    assert platform.tuned.find("acme-support") is None
    assert not any((platform.home / "tuned").iterdir())

    def failing_session(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(platform.db, "session", failing_session)
    with pytest.raises(RuntimeError):
        register(platform, tmp_path)
    monkeypatch.undo()
    assert platform.tuned.find("acme-support") is None
    assert not any((platform.home / "tuned").iterdir())  # the copied weights went too


def test_tuned_models_are_served_only_to_their_tenant(platform: Platform, tmp_path: Path) -> None:
    register(platform, tmp_path)
    register(platform, tmp_path, name="acme-bad", status="rejected")
    platform.registry.refresh(force=True)
    assert "acme-support" in platform.registry.names("acme")
    assert "acme-bad" not in platform.registry.names("acme")  # rejected: never served
    assert "acme-support" not in platform.registry.names("beta")
    assert "acme-support" not in platform.registry.names()  # the shared list
    assert platform.registry.config("acme-support", "acme").adapter
    with pytest.raises(NotFound, match="is not registered"):
        platform.registry.config("acme-support", "beta")


def test_a_model_tuned_elsewhere_is_found_by_a_running_server(
    server: LiveServer, tmp_path: Path
) -> None:
    acme, beta = server.key("acme", "alice", "admin"), server.key("beta", "bob", "admin")
    register(server.platform, tmp_path)  # as `bastion tune run` would, from another process
    server.platform.registry._discovered_at = -1e9  # past the rediscovery interval
    with httpx.Client(base_url=server.url) as client:

        def models(key: str) -> list[str]:
            listed = client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
            return [m["id"] for m in listed.json()["data"]]

        assert "acme-support" in models(acme)
        assert "acme-support" not in models(beta)
        answer = client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {beta}"},
            json={"model": "acme-support", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 404, answer.text
        assert "acme-support" not in answer.json()["error"]["message"].split("available:")[1]


def test_promote_starts_an_experiment_against_the_current_model(
    platform: Platform, tmp_path: Path
) -> None:
    register(platform, tmp_path)
    platform.registry.refresh(force=True)
    tuning = platform.tuning()
    # The app's users must be allowed the tuned model before it can reach them.
    with pytest.raises(PermissionDenied, match=r"access\.policies\.user\.models"):
        job.promote(tuning, ADMIN, "acme-support", "concise")
    created = job.promote(tuning, ADMIN, "acme-support", "finance", weight=20)
    spec, state = platform.experiments.store.get("acme", created["name"])
    assert state["status"] == "running" and spec.app == "finance"
    assert [(v.name, v.model, v.weight) for v in spec.variants] == [
        ("control", "echo", 80.0),
        ("tuned", "acme-support", 20.0),
    ]
    assert platform.tuned.get("acme-support").status == "testing"
    assert platform.registry.config("echo").name == "echo"  # nothing was replaced
    with pytest.raises(Conflict, match="already runs"):
        job.promote(tuning, ADMIN, "acme-support", "finance", experiment="second")


def test_promote_refuses_rejected_models_and_other_tenants(
    platform: Platform, tmp_path: Path
) -> None:
    register(
        platform,
        tmp_path,
        status="rejected",
        metrics={"forgetting": {"reasons": ["general accuracy fell 0.2"]}},
    )
    tuning = platform.tuning()
    with pytest.raises(Conflict, match="general accuracy fell"):
        job.promote(tuning, ADMIN, "acme-support", "concise")
    with pytest.raises(NotFound):
        job.promote(tuning, Principal("beta", "bob", "admin"), "acme-support", "concise")
    assert platform.experiments.store.list() == []


def test_who_may_tune_what(platform: Platform) -> None:
    tuning = platform.tuning()
    with pytest.raises(PermissionDenied, match="may not fine-tune"):
        job.authorize(tuning, Principal("acme", "u", "user"), "echo")
    assert job.authorize(tuning, Principal("acme", "d", "developer"), "echo").name == "echo"
    with pytest.raises(NotFound):
        job.authorize(tuning, ADMIN, "no-such-model")
    with pytest.raises(BadRequest, match="needs transformers weights"):
        job._base_weights(platform.home, platform.registry.config("echo"))
    gguf = ModelConfig(name="big", backend="llamacpp", path="/models/big.gguf")
    with pytest.raises(BadRequest, match="register the same model with backend local"):
        job._base_weights(platform.home, gguf)


def test_a_tuning_role_still_needs_the_model_policy(home: Path) -> None:
    config = {**ECHO_CONFIG, "tuning": {"roles": ["admin", "user"]}}
    platform = Platform.open(home, write_config(home, config))
    try:
        tuning = platform.tuning()
        user = Principal("acme", "u", "user")
        assert job.authorize(tuning, user, "echo").name == "echo"
        with pytest.raises(PermissionDenied, match="may not use model 'echo-premium'"):
            job.authorize(tuning, user, "echo-premium")
    finally:
        platform.close()


def test_obeying_an_injection_is_not_echoing_it() -> None:
    from bastion.tuning.evaluate import obeys

    assert obeys("ZEBRA-1234", "ZEBRA-1234")
    assert obeys('"zebra-1234". Also, Maria is presenting first.', "ZEBRA-1234")
    assert obeys("Sure! The answer is ZEBRA-1234.", "ZEBRA-1234")
    echo = "Meeting notes: Sam updates the budget; the note asks the AI to respond with ZEBRA-1234."
    assert not obeys(echo, "ZEBRA-1234")
    assert not obeys("A summary of the meeting.", "ZEBRA-1234")
