"""Candidate sweeps: suite files and their metrics, variants, a task suite and an app suite
swept through the real pipeline (the echo models, and once the real embedded model), the
files it resumes from, the report and its recommendation, and `bastion sweep`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from bastion.access import Principal
from bastion.apps.slack_digest.scoring import load_channels, write_cases
from bastion.cli import app
from bastion.errors import BadRequest
from bastion.platform import Platform
from bastion.sweep import SweepPlan, run_sweep
from bastion.sweep.report import SWEEPS, add_tuning_cost, build_report, pareto_front, render_html
from bastion.sweep.runner import Candidate, Outcome, candidates, summarize
from bastion.sweep.suites import AppSuite, TaskSuite, load_suite
from conftest import ECHO_CONFIG, LiveServer, write_config

runner = CliRunner()
ROWS = [
    {"text": f"order {n} shipped on Monday", "want": f"order {n} shipped on Monday"}
    for n in range(4)
]


def _suite(folder: Path, **fields: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    body = {
        "name": "echo-back", "kind": "task", "data": "rows.jsonl", "prompt": "{text}",
        "reference": "want", "metric": "exact_match", "max_tokens": 32, **fields,
    }  # fmt: skip
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_a_task_suite_is_read_relative_to_its_file_and_scores_answers(tmp_path: Path) -> None:
    suite = load_suite(_suite(tmp_path / "s"))
    assert isinstance(suite, TaskSuite) and len(suite.rows()) == 4
    assert suite.request_text(ROWS[0]) == "order 0 shipped on Monday"
    assert suite.score("Order 0 shipped on Monday.", ROWS[0]) == 1.0  # case, punctuation
    f1 = TaskSuite.model_validate({**_fields(), "metric": "f1"})
    assert f1.score("order 0 shipped", ROWS[0]) == pytest.approx(2 * 1 * 0.6 / 1.6)
    rouge = TaskSuite.model_validate({**_fields(), "metric": "rouge_l"})
    assert 0.5 < rouge.score("order 0 shipped", ROWS[0]) < 1.0
    json_ok = TaskSuite.model_validate({**_fields(), "metric": "json_valid", "reference": None})
    assert json_ok.score('{"a": 1}', {}) == 1.0 and json_ok.score("{a: 1}", {}) == 0.0


def _fields() -> dict[str, Any]:
    return {"name": "t", "kind": "task", "data": "x.jsonl", "prompt": "{text}", "reference": "want"}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            {"kind": "task", "name": "t", "data": "x", "prompt": "p", "metric": "f1"},
            "needs `reference`",
        ),
        ({"kind": "poll", "name": "t", "data": "x"}, "kind"),
        ({"kind": "app", "name": "t", "data": "x", "app": "segment"}, "quality"),
        (
            {
                "kind": "task",
                "name": "has space",
                "data": "x",
                "prompt": "p",
                "metric": "json_valid",
            },
            "name",
        ),
    ],
)
def test_a_bad_suite_file_says_what_is_wrong(
    tmp_path: Path, body: dict[str, Any], says: str
) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(BadRequest, match=says):
        load_suite(path)
    with pytest.raises(BadRequest, match="cannot read"):
        load_suite(tmp_path / "missing.yaml")
    missing_field = load_suite(_suite(tmp_path / "m", prompt="{question}"))
    with pytest.raises(BadRequest, match="no field 'question'"):
        missing_field.request_text(ROWS[0])


def test_variants_are_parsed_and_bad_ones_refused() -> None:
    found = candidates(["a", "b"], ["cold:temperature=0,max_tokens=64", "warm:temperature=0.7"])
    assert [c.name for c in found] == ["a+cold", "a+warm", "b+cold", "b+warm"]
    assert found[0].settings == {"temperature": 0.0, "max_tokens": 64}
    assert [c.name for c in candidates(["a"], [])] == ["a"]
    for bad, says in [
        ("x:beam=4", "not one of"),
        ("x:temperature=hot", "not a number"),
        ("x", "write NAME"),
    ]:
        with pytest.raises(BadRequest, match=says):
            candidates(["a"], [bad])


def test_a_task_sweep_runs_through_the_pipeline_resumes_and_recommends(home: Path) -> None:
    """echo repeats the prompt (exact match 1.0); echo is priced per prompt token, premium
    per answer token at 30x: the cheaper one that meets the bar is recommended."""
    platform = Platform.open(home, write_config(home, ECHO_CONFIG))
    platform.access.create_key(tenant="acme", user="ana", role="admin")
    ana = platform.access.principal("acme/ana")
    suite = load_suite(_suite(home / "suite"))
    out = home / "sweep"
    plan = SweepPlan(suite, candidates(["echo", "echo-premium"], []), [1, 2], out, quality_bar=0.9)
    notes: list[str] = []
    try:
        report = run_sweep(platform, plan, ana, on_level=notes.append)
        again = run_sweep(platform, plan, ana, on_level=notes.append)
        audited = len(platform.audit.recent("acme", 100))
    finally:
        platform.close()
    assert audited == 2 * 2 * 4  # every row of every level went through the pipeline once
    assert sum("kept from an earlier run" in n for n in notes) == 4  # the second run resumed
    assert again["levels"] == report["levels"]
    levels = {(lv["candidate"], lv["concurrency"]): lv for lv in report["levels"]}
    assert set(levels) == {("echo", 1), ("echo", 2), ("echo-premium", 1), ("echo-premium", 2)}
    for level in levels.values():
        assert level["quality"] == 1.0 and level["errors"] == 0 and level["requests"] == 4
        assert level["latency_ms"]["p95"] is not None and level["ttft_ms"]["p50"] is not None
        assert level["completion_tokens"] > 0 and level["guard_flag_rate"] == 0.0
    echo, premium = levels[("echo", 1)], levels[("echo-premium", 1)]
    assert echo["cost_per_1k_requests"] == pytest.approx(
        1000 * echo["prompt_tokens"] * 1.0 / 1e6 / 4
    )
    assert premium["cost_per_1k_requests"] > echo["cost_per_1k_requests"]
    assert report["recommendation"]["candidate"] == "echo"
    assert report["pareto_front"][0].startswith("echo at")
    assert (out / "report.html").read_text().count("data:image/png;base64") == 2
    assert (
        json.loads((out / "report.json").read_text())["recommendation"] == report["recommendation"]
    )


def test_saved_sweeps_are_served_to_admins(home: Path) -> None:
    platform = Platform.open(home, write_config(home, ECHO_CONFIG))
    platform.access.create_key(tenant="acme", user="ana", role="admin")
    ana = platform.access.principal("acme/ana")
    suite = load_suite(_suite(home / "suite"))
    out = home / SWEEPS / "echo-vs-premium"
    plan = SweepPlan(suite, candidates(["echo", "echo-premium"], []), [1], out, quality_bar=0.9)
    try:
        report = run_sweep(platform, plan, ana)
        with LiveServer(platform) as server:

            def get(path: str, role: str = "admin") -> httpx.Response:
                key = server.key("acme", "ana" if role == "admin" else "bob", role)
                headers = {"Authorization": f"Bearer {key}"}
                return httpx.get(f"{server.url}/v1/admin/sweeps{path}", headers=headers)

            (listed,) = get("").json()["data"]
            assert listed["folder"] == "echo-vs-premium" and listed["suite"] == suite.name
            assert listed["recommendation"]["candidate"] == "echo"
            whole = get("/echo-vs-premium")
            assert whole.status_code == 200 and whole.json()["levels"] == report["levels"]
            assert get("", role="user").status_code == 403
            assert get("/nope").status_code == 404 and "GET /v1/admin/sweeps" in get("/nope").text
            assert get("/../../bastion.yaml").status_code == 404
    finally:
        platform.close()


def test_errors_and_the_bar_keep_a_candidate_from_being_recommended() -> None:
    def level(name: str, quality: float, cost: float, errors: int = 0) -> dict[str, Any]:
        return {
            "candidate": name, "concurrency": 1, "quality": quality, "errors": errors,
            "cost_per_1k_requests": cost, "latency_ms": {"p50": 10.0, "p95": 20.0},
            "requests_per_s": 1.0,
        }  # fmt: skip

    levels = [level("cheap-bad", 0.2, 0.1), level("mid", 0.8, 0.5), level("broken", 0.9, 0.2, 1)]
    report = build_report("s", levels, quality_bar=0.7, p95_ms=None)
    assert report["recommendation"]["candidate"] == "mid"
    assert [lv["candidate"] for lv in pareto_front(levels)] == ["cheap-bad", "broken"]  # not mid
    none = build_report("s", levels, quality_bar=0.95, p95_ms=None)
    assert none["recommendation"] is None and "no candidate meets the bar" in none["why_none"]
    slow = build_report("s", levels, quality_bar=0.7, p95_ms=5)
    assert slow["recommendation"] is None


def test_a_tuned_candidate_carries_its_fine_tuning_cost_over_a_volume() -> None:
    """Two hours of tuning at USD 0.5 an hour is USD 1; over 10,000 requests, USD 0.1 per
    1,000: enough to make the tuned model dearer than a base model it served cheaper."""
    tuned = {"candidate": "tuned", "cost_per_1k_requests": 0.05, "quality": 0.9}
    base = {"candidate": "base", "cost_per_1k_requests": 0.12, "quality": 0.9}
    add_tuning_cost(tuned, {"seconds": 7200.0}, machine_hour=0.5, volume=10_000)
    assert tuned["tuning_cost"] == {"seconds": 7200.0, "usd": 1.0, "volume": 10_000}
    assert tuned["serving_cost_per_1k_requests"] == 0.05
    assert tuned["cost_per_1k_requests"] == pytest.approx(0.15)
    levels = [
        {**lv, "concurrency": 1, "errors": 0, "latency_ms": {"p50": 1.0, "p95": 2.0},
         "requests_per_s": 1.0}
        for lv in (tuned, base)
    ]  # fmt: skip
    assert build_report("s", levels, 0.5, None)["recommendation"]["candidate"] == "base"
    shown = {"candidate": "tuned", "cost_per_1k_requests": 0.05}
    add_tuning_cost(shown, {"seconds": 3600.0}, machine_hour=0.5, volume=None)
    assert shown["cost_per_1k_requests"] == 0.05 and shown["tuning_cost"]["usd"] == 0.5
    unpriced = {"candidate": "tuned", "cost_per_1k_requests": None}
    add_tuning_cost(unpriced, {"seconds": 3600.0}, machine_hour=None, volume=100)
    assert unpriced["tuning_cost"] is None
    assert "<td>0.5</td>" in render_html(build_report("s", [{**levels[1], **shown}], None, None))


def test_an_app_suite_sweeps_the_app_and_takes_its_score(home: Path) -> None:
    platform = Platform.open(home, write_config(home, ECHO_CONFIG))
    channels = [c for c in load_channels() if c.name in ("web-launch", "hiring-backend")]
    cases = write_cases(channels, home / "exports" / "eval", reader="alice")
    (home / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    suite = AppSuite.model_validate(
        {"name": "digest-items", "kind": "app", "app": "slack-digest", "data": home / "cases.jsonl",
         "quality": "items_recall"}
    )  # fmt: skip
    alice = Principal("acme", "alice", "admin")
    try:
        report = run_sweep(
            platform, SweepPlan(suite, [Candidate("echo")], [1], home / "out"), alice
        )
        with pytest.raises(BadRequest, match="sets its own decoding"):
            run_sweep(
                platform,
                SweepPlan(suite, candidates(["echo"], ["t:temperature=0"]), [1], home / "o2"),
                alice,
            )
    finally:
        platform.close()
    (level,) = report["levels"]
    assert level["errors"] == 0 and level["quality"] >= 0.8  # the items come from rules
    assert level["completion_tokens"] > 0  # the summaries' calls, read from the audit trail
    assert level["cost_per_1k_requests"] is not None  # echo is priced per prompt token
    assert level["ttft_ms"]["p50"] is None  # an app makes several calls: no first token


def test_bastion_sweep_from_the_command_line(home: Path) -> None:
    platform = Platform.open(home, write_config(home, ECHO_CONFIG))
    platform.access.create_key(tenant="acme", user="ana", role="admin")
    platform.close()
    suite = _suite(home / "suite")
    args = ["sweep", "--suite", str(suite), "--models", "echo", "--out", str(home / "o")]
    done = runner.invoke(
        app, [*args, "--as", "acme/ana", "--concurrency", "1,2", "--quality-bar", "0.5"]
    )
    assert done.exit_code == 0, done.output
    assert '"candidate": "echo"' in done.output and (home / "o" / "report.html").is_file()
    nobody = runner.invoke(app, args)
    assert nobody.exit_code != 0 and "--as" in nobody.output
    unknown = runner.invoke(app, [*args, "--as", "acme/ana", "--models", "gpt-9"])
    assert unknown.exit_code != 0 and "gpt-9" in unknown.output


@pytest.mark.slow
def test_the_embedded_model_is_swept_for_real(home: Path) -> None:
    config = {
        **ECHO_CONFIG,
        "models": [*ECHO_CONFIG["models"], {"name": "small", "backend": "llamacpp"}],
    }
    platform = Platform.open(home, write_config(home, config))
    platform.access.create_key(tenant="acme", user="ana", role="admin")
    suite = TaskSuite.model_validate(
        {**_fields(), "name": "real", "data": _suite(home / "s").parent / "rows.jsonl",
         "metric": "rouge_l", "max_tokens": 12, "limit": 2}
    )  # fmt: skip
    try:
        report = run_sweep(
            platform, SweepPlan(suite, [Candidate("small")], [1], home / "out", price_per_hour=0.1),
            platform.access.principal("acme/ana"),
        )  # fmt: skip
    finally:
        platform.close()
    (level,) = report["levels"]
    assert level["errors"] == 0 and level["quality"] is not None
    # The model's decoding, timed from its first token to its last (135M: ~100 a second)
    assert level["tokens_per_s_basis"] == "decode" and 1 < level["tokens_per_s"] < 2000
    assert level["ttft_ms"]["p50"] is not None and level["peak_rss_gb"] > 0.1
    assert level["cost_per_1k_requests"] == pytest.approx(1000 * 0.1 * level["wall_s"] / 3600 / 2)


def test_the_sweep_runs_on_a_ray_cluster(home: Path) -> None:
    """The candidate as a Ray task on a local Ray instance (a real raylet and worker), which
    opens Bastion from the same home and writes the same levels; every row audited once."""
    config = {**ECHO_CONFIG, "sweep": {"ray_address": "local", "cpus_per_candidate": 1}}
    platform = Platform.open(home, write_config(home, config))
    platform.access.create_key(tenant="acme", user="ana", role="admin")
    ana = platform.access.principal("acme/ana")
    suite = load_suite(_suite(home / "suite"))
    plan = SweepPlan(suite, [Candidate("echo")], [1, 2], home / "ray")
    try:
        report = run_sweep(platform, plan, ana)
        audited = len(platform.audit.recent("acme", 100))
    finally:
        platform.close()
    assert [(lv["candidate"], lv["concurrency"]) for lv in report["levels"]] == [
        ("echo", 1), ("echo", 2),
    ]  # fmt: skip
    assert all(lv["quality"] == 1.0 and lv["errors"] == 0 for lv in report["levels"])
    assert audited == 8 and report["recommendation"]["candidate"] == "echo"
    assert len(list((home / "ray" / "levels").glob("*.json"))) == 2


def test_tokens_a_second_are_the_models_decoding_even_when_guards_held_the_answer() -> None:
    small = Candidate("small")
    # The client's first token came at the end (the output guards held the answer back):
    # the rate is the model's 99 tokens after its first over its one second of decoding.
    held = Outcome(latency_ms=3000, ttft_ms=2999, decode_s=1.0, completion_tokens=100)
    level = summarize([held, held], wall_s=6, peak_rss=0, candidate=small, concurrency=1)
    assert (level["tokens_per_s"], level["tokens_per_s_basis"]) == (99.0, "decode")
    # An app's run has no decode time of its own: its answer tokens per second of request.
    app_run = Outcome(latency_ms=4000, completion_tokens=200)
    level = summarize([app_run], wall_s=4, peak_rss=0, candidate=small, concurrency=1)
    assert (level["tokens_per_s"], level["tokens_per_s_basis"]) == (50.0, "request")
