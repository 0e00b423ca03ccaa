"""The console's models, trust-events and cost pages over real HTTP: the registry and apps as
a tenant sees them, what the guards acted on, and the capacity planner on a model whose
shape is read from a (header-only) Hugging Face folder."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.audit import AuditEntry
from bastion.capacity import PlanRequest, capacity_plan
from bastion.platform import Platform
from conftest import ECHO_CONFIG, LiveServer, hf_shaped_folder, write_config
from test_console import ConsoleClient, ask

LONG_AGO = "2000-01-01"  # `since` for traffic: every record of a test is later than this


def tiny_folder(folder: Path) -> Path:
    """A Qwen2-0.5B-shaped weights folder."""
    return hf_shaped_folder(
        folder, "qwen2", layers=24, hidden=896, heads=14, kv_heads=2, ffn=4864, vocab=151936,
        context=32768, tied=True,
    )  # fmt: skip


@pytest.fixture
def platform(home: Path) -> Iterator[Platform]:
    """ECHO_CONFIG and `tiny`, a model with weights to plan (never asked to answer)."""
    tiny = {
        "name": "tiny", "backend": "local", "path": str(tiny_folder(home / "tiny")),
        "price": {"input_per_1m": 0.1, "output_per_1m": 0.4},
    }  # fmt: skip
    config = {**ECHO_CONFIG, "models": [*ECHO_CONFIG["models"], tiny]}
    p = Platform.open(home, write_config(home, config))
    yield p
    p.close()


@pytest.fixture
def admin(server: LiveServer) -> Iterator[ConsoleClient]:
    client = ConsoleClient(server, server.key("acme", "alice", "admin"))
    yield client
    client.http.close()


def tune(platform: Platform, tmp_path: Path, name: str, tenant: str) -> None:
    """Register a tuned model of `tenant` (an adapter folder on echo's settings)."""
    adapter = tmp_path / f"{name}-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    platform.tuned.register(
        name=name, tenant=tenant, base_model="echo", method="lora", weights=adapter,
        dataset_sha256="ab" * 32, status="accepted", created_by="alice", metrics={},
        lineage={"base_model": "echo", "base_path": "/models/base",
                 "base_config": platform.registry.config("echo").model_dump(mode="json")},
    )  # fmt: skip
    platform.registry.refresh(force=True)


def record(platform: Platform, trace: str, tenant: str = "acme", **fields: Any) -> None:
    """An audit record written as the pipeline writes one."""
    entry = AuditEntry(
        trace_id=trace, tenant=tenant, user="bob", role="user", key_id=None, app="chat",
        model="echo", status="ok", prompt=[{"role": "user", "content": f"question {trace}"}],
        response=f"answer {trace}", prompt_tokens=10, completion_tokens=5,
    )  # fmt: skip
    for name, value in fields.items():
        setattr(entry, name, value)
    platform.audit.append(entry)


def flag(guard: str, stage: str, action: str = "flag", detail: str = "") -> dict[str, Any]:
    finding = {"kind": guard, "detail": detail or f"{guard} found something"}
    return {"guard": guard, "stage": stage, "action": action, "score": 0.9, "findings": [finding]}


# -- who may see the pages ---------------------------------------------------------------


def test_the_pages_are_for_admins_only(server: LiveServer) -> None:
    reviewer = ConsoleClient(server, server.key("acme", "rita", "reviewer"))
    for path in ("/models", "/trust", "/cost"):
        refused = reviewer.get(path)
        assert refused.status_code == 403 and "for admins" in refused.text, path
    assert httpx.get(server.url + "/console/trust").status_code == 303  # signed out


# -- models and apps ---------------------------------------------------------------------


def test_models_page_shows_the_registry_health_apps_and_policies(
    admin: ConsoleClient, server: LiveServer, tmp_path: Path
) -> None:
    tune(server.platform, tmp_path, "acme-support", "acme")
    tune(server.platform, tmp_path, "globex-secret", "globex")
    before = admin.get("/models")
    assert before.status_code == 200
    rows = dict(re.findall(r"<tr>\s*<td><code>([\w.-]+)</code>(.*?)</tr>", before.text, re.S))
    assert {"echo", "echo-premium", "tiny", "acme-support"} <= set(rows)
    assert "globex-secret" not in before.text  # another tenant's tuned model
    assert "4096" in rows["echo"] and "1.00" in rows["echo"] and "default" in rows["echo"]
    assert "30.00" in rows["echo-premium"]
    assert str(server.platform.home / "tiny") in rows["tiny"] and "0.40" in rows["tiny"]
    assert "not loaded" in rows["echo"] and "0 of 1" in rows["echo"] and "0 of 16" in rows["echo"]
    assert ask(server, server.key("acme", "bob", "user"), "hello").status_code == 200
    after = admin.get("/models").text
    echo_row = re.search(r"<code>echo</code>(.*?)</tr>", after, re.S)
    assert echo_row and 'tag ok">loaded' in echo_row.group(1)
    premium = re.search(r"<code>echo-premium</code>(.*?)</tr>", after, re.S)
    assert premium and "not loaded" in premium.group(1)  # asking never loads a model
    # Apps, their overrides, the registered programs, and the roles' reach.
    for app in ("chat", "concise", "finance"):
        assert f"<code>{app}</code>" in after
    assert "Answer briefly." in after
    assert "bastion config reference" in after
    user_row = re.search(r"<td>user</td>(.*?)</tr>", after, re.S)
    assert user_row and "<td>echo</td>" in user_row.group(1)
    assert "chat, concise" in user_row.group(1) and "finance" not in user_row.group(1)
    assert "acme-support" in after and "Tuned models served" in after


def test_models_page_says_when_no_tuned_model_is_served(admin: ConsoleClient) -> None:
    page = admin.get("/models")
    assert "No tuned model of acme is served" in page.text


def test_an_apps_guard_overrides_are_shown(home: Path) -> None:
    config = {**ECHO_CONFIG, "apps": [{"name": "chat"},
              {"name": "docs", "injection_action": "flag", "fail_open": True}]}  # fmt: skip
    platform = Platform.open(home, write_config(home, config))
    try:
        with LiveServer(platform) as server:
            page = ConsoleClient(server, server.key("acme", "alice", "admin")).get("/models")
    finally:
        platform.close()
    docs = re.search(r"<code>docs</code>(.*?)</tr>", page.text, re.S)
    assert docs and "<code>injection_action</code>: flag" in docs.group(1)
    assert "<code>fail_open</code>: True" in docs.group(1)
    chat = re.search(r"<code>chat</code>(.*?)</tr>", page.text, re.S)
    assert chat and "none (the guards section" in chat.group(1)


# -- trust events ------------------------------------------------------------------------


def test_trust_events_show_what_the_guards_did_filtered_and_counted(
    admin: ConsoleClient, server: LiveServer
) -> None:
    bob = server.key("acme", "bob", "user")
    assert ask(server, bob, "tell me about project nightingale").status_code == 400
    assert ask(server, bob, "mail me at jane.doe@example.com please").status_code == 200
    assert ask(server, bob, "hello").status_code == 200
    ask(server, server.key("globex", "gina", "user"), "globex project nightingale plans")
    page = admin.get("/trust")
    assert page.status_code == 200
    assert "globex" not in page.text  # another tenant's events
    rows = re.findall(r'<tr>\s*<td><a href="/console/audit/([^"]+)"(.*?)</tr>', page.text, re.S)
    assert len(rows) == 2  # "hello" was allowed by every guard
    by_guard = {("deny_list" if "deny_list" in r else "pii"): (t, r) for t, r in rows}
    trace, blocked = by_guard["deny_list"]
    assert 'tag block">block' in blocked and "project nightingale" in blocked
    assert "input" in blocked
    assert server.platform.audit.get(trace, "acme")["status"] == "blocked"
    _, redacted = by_guard["pii"]
    assert 'tag redact">redact' in redacted and "EMAIL_ADDRESS: masked" in redacted
    assert "&lt;EMAIL_ADDRESS_1&gt;" in redacted and "jane.doe@example.com" not in page.text
    summary = re.search(r'<table class="trust-summary">(.*?)</table>', page.text, re.S)
    assert summary
    counts = re.findall(r">([\w_]+)</a></td>((?:<td class=\"num\">\d+</td>)+)", summary.group(1))
    assert {g: re.findall(r"\d+", c) for g, c in counts} == {
        "deny_list": ["0", "0", "1", "1"],
        "pii": ["0", "1", "0", "1"],
    }
    only_pii = admin.get("/trust", guard="pii").text
    assert "EMAIL_ADDRESS" in only_pii and "project nightingale" not in only_pii
    blocks = admin.get("/trust", action="block").text
    assert "project nightingale" in blocks and "EMAIL_ADDRESS" not in blocks
    assert "No guard flagged" in admin.get("/trust", since="2999-01-01").text


def test_trust_events_page_and_show_output_verdicts(
    admin: ConsoleClient, server: LiveServer
) -> None:
    platform = server.platform
    for n in range(55):
        record(platform, f"t{n}", verdicts=[flag("toxicity", "output", detail=f"rude {n}")])
    allowed = {"guard": "pii", "stage": "input", "action": "allow"}
    record(
        platform, "both", verdicts=[flag("injection", "input"), flag("toxicity", "output"), allowed]
    )
    record(platform, "g", tenant="globex", verdicts=[flag("toxicity", "output")])
    first = admin.get("/trust")
    assert "57 in all" in first.text  # 55 + the two of "both", not its allow, not globex's
    assert first.text.count('class="tag flag"') == 50  # "both" (two), then 48 more
    assert "question both" in first.text and "answer both" in first.text
    assert "rude 54" in first.text and "rude 5<" not in first.text
    older = re.search(r'href="/console/trust\?before=(\d+)"', first.text)
    assert older and 'rel="prev"' not in first.text
    second = admin.get("/trust", before=older.group(1))
    assert second.text.count('class="tag flag"') == 7 and "rude 0" in second.text
    assert 'rel="next"' not in second.text
    newer = re.search(r'href="/console/trust\?after=(\d+)"', second.text)
    assert newer
    back = admin.get("/trust", after=newer.group(1))
    assert back.text.count('class="tag flag"') == 50 and "rude 54" in back.text


def test_trust_events_come_back_escaped(admin: ConsoleClient, server: LiveServer) -> None:
    payload = "<script>alert(1)</script>"
    record(server.platform, "hostile", user=payload, app=payload,
           prompt=[{"role": "user", "content": payload}],
           verdicts=[flag(payload, "input", detail=payload)])  # fmt: skip
    for page in (admin.get("/trust"), admin.get("/trust", guard=payload)):
        assert page.status_code == 200
        assert payload not in page.text and "&lt;script&gt;" in page.text


def test_trust_filters_refuse_bad_values_with_what_to_use(admin: ConsoleClient) -> None:
    unknown = admin.get("/trust", guard="nosuch")
    assert unknown.status_code == 400 and "guard &#39;nosuch&#39; is unknown" in unknown.text
    assert "deny_list" in unknown.text  # the configured guards are offered
    action = admin.get("/trust", action="allow")
    assert action.status_code == 400 and "use one of flag, redact, block" in action.text
    assert admin.get("/trust", since="yesterday").status_code == 400
    assert admin.get("/trust", before="-1").status_code == 400
    empty = admin.get("/trust")
    assert empty.status_code == 200 and "No guard flagged" in empty.text


# -- cost and sizing ---------------------------------------------------------------------


def plan(admin: ConsoleClient, **params: Any) -> httpx.Response:
    return admin.http.get("/console/cost", params=params)


def test_the_planner_sizes_a_model_and_highlights_the_cheapest_that_meets_the_target(
    admin: ConsoleClient, server: LiveServer
) -> None:
    hardware = ["nvidia-l4-24gb", "nvidia-t4-16gb", "nvidia-h100-sxm-80gb"]
    page = plan(admin, model="tiny", qps="3", p95_ms="4000", hardware=hardware,
                prompt_tokens="400", answer_tokens="100", since="")  # fmt: skip
    assert page.status_code == 200, page.text
    expected = capacity_plan(
        "tiny", server.platform.home / "tiny",
        PlanRequest(qps=3, p95_ms=4000, hardware=hardware, prompt_tokens=400, answer_tokens=100),
    )  # fmt: skip
    met = [r for r in expected["hardware"] if r["replicas"] is not None]
    cheapest = min(met, key=lambda r: r["monthly_cost"])
    highlighted = re.search(r'<tr class="recommended">\s*<td>([\w-]+)', page.text)
    assert highlighted and highlighted.group(1) == cheapest["name"]
    assert f"Recommended: {cheapest['name']}" in page.text
    for row in expected["hardware"]:
        assert f"<td>{row['name']}" in page.text
    assert "{:,.2f}".format(cheapest["monthly_cost"]) in page.text
    assert "400 prompt + 100 answer tokens" in page.text
    assert "Bought per token" in page.text  # tiny has a per-token price too


def test_the_plan_reads_the_tenants_traffic_from_the_audit_trail(
    admin: ConsoleClient, server: LiveServer
) -> None:
    for n in range(3):
        record(server.platform, f"a{n}", model="tiny", prompt_tokens=100 + n, completion_tokens=50)
    record(server.platform, "g", tenant="globex", model="tiny", prompt_tokens=9000,
           completion_tokens=9000)  # fmt: skip
    page = plan(admin, model="tiny", qps="1", p95_ms="5000", hardware="nvidia-l4-24gb",
                since=LONG_AGO)  # fmt: skip
    assert page.status_code == 200, page.text
    assert "102 prompt + 50 answer tokens" in page.text  # acme's p95, not globex's
    assert "the p95 of 3 answered requests" in page.text


def test_a_model_without_weights_gets_a_clear_message(admin: ConsoleClient) -> None:
    page = plan(admin, model="echo", qps="1", p95_ms="5000")
    assert page.status_code == 400
    assert "model &#39;echo&#39; (echo backend) has no local weights" in page.text
    assert "set its path in bastion.yaml" in page.text
    assert '<form method="get" action="/console/cost"' in page.text  # the form stays


def test_bad_plan_input_is_refused_with_what_to_type(
    admin: ConsoleClient, server: LiveServer, tmp_path: Path
) -> None:
    for params, message in [
        ({"qps": "fast"}, "requests per second &#39;fast&#39; is not a number"),
        ({"qps": "-2"}, "requests per second must be more than 0"),
        ({"p95_ms": ""}, "give the requests per second and the p95 latency"),
        ({"hardware": "nvidia-z9"}, "no hardware named &#39;nvidia-z9&#39;"),
        ({"precision": "int3"}, "precision &#39;int3&#39; is unknown"),
        ({"prompt_tokens": "1.5"}, "prompt tokens &#39;1.5&#39; is not a whole number"),
        ({"since": "last week"}, "since &#39;last week&#39; is not a date; use YYYY-MM-DD"),
    ]:
        page = plan(admin, **{"model": "tiny", "qps": "1", "p95_ms": "5000", **params})
        assert page.status_code == 400 and message in page.text, params
        assert 'value="' + params.get("qps", "1") + '"' in page.text  # what was typed is kept
    assert plan(admin, model="gpt-9", qps="1", p95_ms="5000").status_code == 404
    tune(server.platform, tmp_path, "globex-secret", "globex")
    other = plan(admin, model="globex-secret", qps="1", p95_ms="5000")
    assert other.status_code == 404 and "is not registered" in other.text


def test_saved_sweep_reports_are_listed_with_their_recommendation(
    admin: ConsoleClient, server: LiveServer, tmp_path: Path
) -> None:
    first = admin.get("/cost")
    assert first.status_code == 200 and "No sweep report yet" in first.text
    assert "Pick a model and a target" in first.text
    sweeps = server.platform.home / "sweeps"
    level = {"model": "echo", "candidate": "echo", "concurrency": 4}
    pick = {"candidate": "echo", "concurrency": 4, "quality": 0.91,
            "cost_per_1k_requests": 0.0123, "latency_p95_ms": 850.0, "why": "cheapest"}  # fmt: skip
    for folder, model, chosen in [("support", "echo", pick), ("theirs", "globex-secret", None)]:
        (sweeps / folder).mkdir(parents=True)
        report = {"suite": f"suite-{folder}", "levels": [{**level, "model": model}],
                  "recommendation": chosen, "why_none": None if chosen else "none"}  # fmt: skip
        (sweeps / folder / "report.json").write_text(json.dumps(report))
    (sweeps / "broken").mkdir()
    (sweeps / "broken" / "report.json").write_text("{not json")
    tune(server.platform, tmp_path, "globex-secret", "globex")
    page = admin.get("/cost").text
    assert "suite-support" in page and "<strong>echo</strong> at 4 in flight" in page
    assert "quality 0.91" in page and "0.0123" in page
    assert "suite-theirs" not in page  # it names another tenant's tuned model
    assert "No sweep report yet" not in page
