"""A/B experiments: sticky and uniform assignment, feedback rules, per-arm metrics, the
report, guardrails and bad input, through the real server."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from scipy.stats import chisquare
from typer.testing import CliRunner

from bastion.cli import app as cli
from bastion.config import ExperimentConfig
from bastion.experiments.assignment import assign
from conftest import LiveServer


def _spec(**kw: Any) -> ExperimentConfig:
    data: dict[str, Any] = {
        "name": "prompt-test",
        "tenant": "acme",
        "app": "chat",
        "variants": [
            {"name": "a", "model": "echo", "weight": 50},
            {"name": "b", "model": "echo", "system_prompt": "Be terse.", "weight": 50},
        ],
        **kw,
    }
    return ExperimentConfig.model_validate(data)


def test_assignment_is_sticky_and_uniform() -> None:
    spec = _spec(
        variants=[
            {"name": "a", "weight": 20},
            {"name": "b", "weight": 30},
            {"name": "c", "weight": 50},
        ]
    )
    units = [f"user-{i}" for i in range(20_000)]
    arms = [assign(spec, "salt1", u) for u in units]
    assert arms == [assign(spec, "salt1", u) for u in units]  # deterministic
    counts = Counter(arms)
    observed = [counts["a"], counts["b"], counts["c"]]
    assert chisquare(observed, [4_000, 6_000, 10_000]).pvalue > 0.001
    other_salt = [assign(spec, "salt2", u) for u in units]
    assert sum(x != y for x, y in zip(arms, other_salt, strict=True)) > 10_000  # independent


def test_ramping_traffic_up_never_moves_an_enrolled_unit() -> None:
    units = [f"u{i}" for i in range(5_000)]
    before = {u: assign(_spec(traffic=10), "s", u) for u in units}
    after = {u: assign(_spec(traffic=60), "s", u) for u in units}
    enrolled = {u: arm for u, arm in before.items() if arm is not None}
    assert 350 < len(enrolled) < 650
    assert all(after[u] == arm for u, arm in enrolled.items())
    assert sum(a is not None for a in after.values()) > 2_700
    assert all(assign(_spec(), "s", u, stopped=("b",)) in ("a", None) for u in units[:200])


def test_experiment_specs_are_checked() -> None:
    with pytest.raises(ValidationError, match="sum to 100"):
        _spec(variants=[{"name": "a", "weight": 50}, {"name": "b", "weight": 40}])
    with pytest.raises(ValidationError, match="unique"):
        _spec(variants=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValidationError, match="at least 2"):
        _spec(variants=[{"name": "a", "weight": 100}])


def _chat(server: LiveServer, key: str, text: str, **extra: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"messages": [{"role": "user", "content": text}], **extra},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _post(server: LiveServer, key: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}{path}", headers={"Authorization": f"Bearer {key}"}, json=body, timeout=30
    )


def test_feedback_rules(server: LiveServer) -> None:
    carol = server.key(user="carol", role="user")
    dave = server.key(user="dave", role="user")
    admin = server.key()
    trace = _chat(server, carol, "hello there")["bastion"]["trace_id"]
    first = _post(server, carol, "/v1/feedback", {"trace_id": trace, "thumbs": "up"})
    assert first.status_code == 201 and first.json()["thumbs"] == 1
    again = _post(server, carol, "/v1/feedback", {"trace_id": trace, "thumbs": "up"})
    assert again.status_code == 200  # idempotent: nothing recorded twice
    changed = _post(server, carol, "/v1/feedback", {"trace_id": trace, "thumbs": "down"})
    assert changed.status_code == 409 and "cannot be changed" in changed.text
    other = _post(server, dave, "/v1/feedback", {"trace_id": trace, "rating": 2})
    assert other.status_code == 403 and "only the person" in other.text
    assert _post(server, admin, "/v1/feedback", {"trace_id": trace, "rating": 4}).status_code == 201
    unknown = _post(server, carol, "/v1/feedback", {"trace_id": "nope", "rating": 3})
    assert unknown.status_code == 404
    for bad in ({"trace_id": trace, "rating": 9}, {"trace_id": trace}, {"rating": 3}, "x"):
        assert _post(server, carol, "/v1/feedback", bad).status_code == 400, bad
    globex = server.key(tenant="globex", user="erin")
    assert (
        _post(server, globex, "/v1/feedback", {"trace_id": trace, "rating": 3}).status_code == 404
    )


LONG = " ".join(f"word{i}" for i in range(60))


def test_an_experiment_end_to_end_through_the_server(server: LiveServer) -> None:
    admin = server.key()
    created = _post(
        server,
        admin,
        "/v1/experiments",
        _spec(
            guardrails=[{"metric": "completion_tokens", "max_worsening": 1}],
            variants=[
                {"name": "a", "model": "echo", "max_tokens": 2, "weight": 50},
                {"name": "b", "model": "echo", "max_tokens": 50, "weight": 50},
            ],
        ).model_dump(exclude={"tenant"}),
    )
    assert created.status_code == 201, created.text
    arms: dict[str, str] = {}
    for i in range(40):
        key = server.key(user=f"u{i}", role="user")
        body = _chat(server, key, LONG)
        arm = body["bastion"]["experiment"]["arm"]
        arms[f"u{i}"] = arm
        assert _chat(server, key, LONG)["bastion"]["experiment"]["arm"] == arm  # sticky
        record = server.platform.audit.get(body["bastion"]["trace_id"])
        assert record["extra"]["experiment"] == {"name": "prompt-test", "arm": arm, "unit": "user"}
        rating = 5 if arm == "a" else 2
        trace = body["bastion"]["trace_id"]
        assert (
            _post(server, key, "/v1/feedback", {"trace_id": trace, "rating": rating}).status_code
            == 201
        )
    assert set(arms.values()) == {"a", "b"}
    # The background watcher stops b (its answers are longer than the guardrail allows)
    # without anyone reading the report.
    watcher = server.platform.experiments.watch_guardrails(every_seconds=0.05)
    deadline = time.monotonic() + 10
    while not server.platform.experiments.store.get("acme", "prompt-test")[1]["stopped_arms"]:
        assert time.monotonic() < deadline, "the guardrail watcher did not stop arm b"
        time.sleep(0.05)
    watcher.set()
    report = httpx.get(
        f"{server.url}/v1/experiments/prompt-test/report",
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    ).json()
    assert sum(report["requests"].values()) == 80
    tokens = report["metrics"]["completion_tokens"]["arms"]
    assert tokens["a"]["mean"] == 2 and tokens["b"]["mean"] == 50  # echoes cut at max_tokens
    assert report["metrics"]["feedback_score"]["arms"]["a"]["mean"] == 1.0
    versus = report["metrics"]["feedback_score"]["vs_control"]["b"]
    assert versus["effect"] < 0 and versus["fixed_horizon_p_value"] < 0.05
    assert report["metrics"]["error_rate"]["vs_control"]["b"]["fixed_horizon_p_value"] is not None
    # b was stopped; its users now go to the control and are counted nowhere
    assert report["stopped_arms"] == {"b": "guardrail completion_tokens worse by more than 1"}
    b_user = next(u for u, arm in arms.items() if arm == "b")
    key = server.platform.access.create_key(tenant="acme", user=b_user, role="user").secret
    server.platform.experiments.store.invalidate()
    assert "experiment" not in _chat(server, key, "after the stop")["bastion"]
    promoted = _post(server, admin, "/v1/experiments/prompt-test/promote", {"arm": "a"})
    assert promoted.status_code == 200 and promoted.json()["promoted"] == "a"
    assert _post(server, admin, "/v1/experiments/prompt-test/stop", {}).status_code == 409


def test_bad_experiments_are_refused_clearly(server: LiveServer) -> None:
    admin = server.key()
    user = server.key(user="carol", role="user")
    spec = _spec().model_dump(exclude={"tenant"})
    assert _post(server, user, "/v1/experiments", spec).status_code == 403
    premium = _spec(
        variants=[{"name": "a", "model": "echo"}, {"name": "b", "model": "echo-premium"}]
    )
    refused = _post(server, admin, "/v1/experiments", premium.model_dump(exclude={"tenant"}))
    assert refused.status_code == 403 and "role 'user' may not use" in refused.text
    uneven = {**spec, "variants": [{"name": "a", "weight": 70}, {"name": "b", "weight": 20}]}
    bad_split = _post(server, admin, "/v1/experiments", uneven)
    assert bad_split.status_code == 400 and "sum to 100" in bad_split.text
    assert _post(server, admin, "/v1/experiments", {**spec, "app": "nope"}).status_code == 404
    assert _post(server, admin, "/v1/experiments", {**spec, "tenant": "globex"}).status_code == 403
    assert _post(server, admin, "/v1/experiments", spec).status_code == 201
    duplicate = _post(server, admin, "/v1/experiments", spec)
    assert duplicate.status_code == 409
    second = _post(server, admin, "/v1/experiments", {**spec, "name": "other"})
    assert second.status_code == 409 and "already runs" in second.text
    raw = httpx.post(
        f"{server.url}/v1/experiments",
        headers={"Authorization": f"Bearer {admin}"},
        content=b"{not json",
        timeout=30,
    )
    assert raw.status_code == 400


def test_ab_simulate_prints_the_sequential_tests_error_rates() -> None:
    result = CliRunner().invoke(
        cli, ["ab", "simulate", "--effect", "0", "--experiments", "300", "--peek-every", "20"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rejection_rate"] <= 0.05 and data["experiments"] == 300


def test_ab_cli_creates_lists_reports_and_sizes(platform: Any, home: Any, tmp_path: Any) -> None:
    runner = CliRunner()
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps(_spec().model_dump()))
    created = runner.invoke(cli, ["ab", "create", str(spec)])
    assert created.exit_code == 0, created.output
    assert (
        runner.invoke(cli, ["ab", "create", str(spec)]).exit_code == 1
    )  # duplicate: a clear error
    listing = runner.invoke(cli, ["ab", "list"])
    assert "prompt-test" in listing.stdout and "running" in listing.stdout
    page = tmp_path / "report.html"
    report = runner.invoke(cli, ["ab", "report", "prompt-test", "--html", str(page)])
    assert report.exit_code == 0, report.output
    assert "keep running" in report.stdout and page.read_text().startswith("<!doctype html>")
    size = runner.invoke(cli, ["ab", "size", "--base-rate", "0.1", "--effect", "0.02"])
    assert json.loads(size.stdout)["per_arm_fixed_horizon"] == 3841
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvariants: []\n")
    refused = runner.invoke(cli, ["ab", "create", str(bad)])
    assert refused.exit_code == 1 and "not a valid experiment" in " ".join(refused.stderr.split())


def test_a_clear_winner_is_shipped_even_when_its_p_value_is_tiny() -> None:
    import random

    from bastion.experiments.metrics import ArmData
    from bastion.experiments.report import build_report

    rng = random.Random(1)
    arms = {"a": ArmData("a"), "b": ArmData("b")}
    for _ in range(300):
        arms["a"].add("feedback_score", rng.choice([0.0, 0.25, 0.25, 0.5]))
        arms["b"].add("feedback_score", rng.choice([0.5, 0.75, 0.75, 1.0]))
    report = build_report(_spec(minimum_effect=0.1), arms, {"status": "running"})
    versus = report["metrics"]["feedback_score"]["vs_control"]["b"]
    assert 0 < versus["p_value"] < 1e-6 and 0 < versus["p_holm"] < 1e-6
    assert report["decisions"]["b"]["verdict"] == "ship_b" and report["decision"] == "ship b"
