"""The console's experiments pages over real HTTP: create an A/B experiment over the echo
models, watch its report fill in as requests are rated, stop it, promote an arm (and be
refused by the bias gate), tenant scoping, roles and bad input."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from bastion.config import ExperimentConfig
from conftest import LiveServer
from test_console import ConsoleClient

LONG = " ".join(f"word{i}" for i in range(30))

# The create form as an admin fills it in: two arms over the echo model, one cut shorter.
FORM = {
    "name": "prompt-test",
    "app": "chat",
    "unit": "user",
    "traffic": "100",
    "primary_metric": "feedback_score",
    "minimum_effect": "0.05",
    "arm0_name": "a",
    "arm0_model": "echo",
    "arm0_weight": "50",
    "arm0_max_tokens": "2",
    "arm1_name": "b",
    "arm1_model": "echo",
    "arm1_weight": "50",
    "arm1_max_tokens": "20",
    "arm1_system_prompt": "Be terse.",
    "guardrail0_metric": "error_rate",
    "guardrail0_max_worsening": "0.1",
}


@pytest.fixture
def admin(server: LiveServer) -> Iterator[ConsoleClient]:
    client = ConsoleClient(server, server.key("acme", "alice", "admin"))
    yield client
    client.http.close()


def _chat_and_rate(server: LiveServer, users: int) -> dict[str, int]:
    """Each user asks once and rates the answer: arm a's short answers 5, b's 2."""
    per_arm = {"a": 0, "b": 0}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i in range(users):
            headers = {"Authorization": f"Bearer {server.key('acme', f'u{i}', 'user')}"}
            body = http.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": LONG}]},
                headers=headers,
            ).json()
            arm = body["bastion"]["experiment"]["arm"]
            per_arm[arm] += 1
            rating = {"trace_id": body["bastion"]["trace_id"], "rating": 5 if arm == "a" else 2}
            assert http.post("/v1/feedback", json=rating, headers=headers).status_code == 201
    return per_arm


def _spec(name: str, tenant: str = "acme", app: str = "concise") -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"name": name, "tenant": tenant, "app": app,
         "variants": [{"name": "a", "model": "echo"}, {"name": "b", "model": "echo"}]}
    )  # fmt: skip


def test_an_admin_creates_watches_and_promotes_an_experiment(
    admin: ConsoleClient, server: LiveServer
) -> None:
    experiments = server.platform.experiments
    empty = admin.get("/experiments")
    assert empty.status_code == 200 and "No experiments yet" in empty.text
    forged = admin.http.post("/console/experiments", data=FORM)
    assert forged.status_code == 403 and "security token" in forged.text
    assert experiments.store.list("acme") == []

    # a tenant smuggled into the form is ignored: the admin's own is used
    created = admin.post("/experiments", {**FORM, "tenant": "globex"}, page="/experiments")
    assert created.status_code == 303
    assert created.headers["location"] == "/console/experiments/prompt-test"
    spec, state = experiments.store.get("acme", "prompt-test")
    assert state["status"] == "running" and spec.tenant == "acme"
    assert [(v.name, v.max_tokens, v.system_prompt) for v in spec.variants] == [
        ("a", 2, None),
        ("b", 20, "Be terse."),
    ]
    assert [(g.metric, g.max_worsening) for g in spec.guardrails] == [("error_rate", 0.1)]
    waiting = admin.get("/experiments/prompt-test")
    assert waiting.status_code == 200 and "No request has been assigned an arm yet" in waiting.text

    per_arm = _chat_and_rate(server, 30)
    assert per_arm["a"] > 1 and per_arm["b"] > 1
    listing = admin.get("/experiments").text
    assert "prompt-test" in listing and "running" in listing and "a, b" in listing
    report = admin.get("/experiments/prompt-test")
    assert report.status_code == 200
    # the effect over time, the primary metric per arm and latency: three inline plots
    assert report.text.count('src="data:image/png;base64,') == 3
    assert "always-valid" in report.text
    assert f'<td class="num">{per_arm["a"]}</td>' in report.text  # requests of arm a
    assert f'<td class="num">1 ({per_arm["a"]})</td>' in report.text  # a's mean score: 1
    assert f'<td class="num">0.25 ({per_arm["b"]})</td>' in report.text  # b's: (2-1)/4

    # The bias gate refuses b's model: the report says why and the experiment runs on.
    experiments.bias_gate = lambda model: [f"{model}: sentiment gap 0.8 above 0.5"]
    refused = admin.post("/experiments/prompt-test/promote", {"arm": "b"}, page="/experiments")
    assert refused.status_code == 409
    assert "Not promoted:" in refused.text and "fails the bias gate" in refused.text
    assert experiments.store.get("acme", "prompt-test")[1]["status"] == "running"
    unknown = admin.post("/experiments/prompt-test/promote", {"arm": "z"}, page="/experiments")
    assert unknown.status_code == 400 and "no arm &#39;z&#39;" in unknown.text
    forced = admin.post(
        "/experiments/prompt-test/promote", {"arm": "b", "force": "on"}, page="/experiments"
    )
    assert forced.status_code == 303
    state = experiments.store.get("acme", "prompt-test")[1]
    assert state["status"] == "promoted" and state["outcome"]["promoted"] == "b"
    ended = admin.get("/experiments/prompt-test").text
    assert "promoted" in ended and "winner <strong>b</strong>" in ended
    assert 'action="/console/experiments/prompt-test/stop"' not in ended  # nothing to end
    again = admin.post("/experiments/prompt-test/stop", {}, page="/experiments")
    assert again.status_code == 409 and "promoted already" in again.text


def test_an_experiment_is_stopped_and_needs_the_csrf_token(
    admin: ConsoleClient, server: LiveServer
) -> None:
    store = server.platform.experiments.store
    store.create(_spec("short-answers"))
    forged = admin.http.post("/console/experiments/short-answers/stop", data={})
    assert forged.status_code == 403
    assert store.get("acme", "short-answers")[1]["status"] == "running"
    page = "/experiments/short-answers"
    assert admin.post("/experiments/short-answers/stop", {}, page=page).status_code == 303
    assert store.get("acme", "short-answers")[1]["status"] == "stopped"
    assert "stopped" in admin.get("/experiments").text


def test_bad_experiments_come_back_with_what_to_fix(
    admin: ConsoleClient, server: LiveServer
) -> None:
    def create(**changes: str) -> httpx.Response:
        return admin.post("/experiments", {**FORM, **changes}, page="/experiments")

    uneven = create(arm1_weight="20")
    assert uneven.status_code == 400
    assert "variant weights must sum to 100" in uneven.text
    assert 'value="prompt-test"' in uneven.text  # the form keeps what was typed
    assert "<details open>" in uneven.text  # with the guardrail it had
    assert "arm 2 weight" in create(arm1_weight="half").text
    assert "traffic: Input should be a valid number" in create(traffic="lots").text
    assert create(traffic="lots").status_code == 400
    bad_name = create(name="Prompt Test")
    assert bad_name.status_code == 400 and "name: String should match pattern" in bad_name.text
    one_arm = create(arm1_name="")
    assert one_arm.status_code == 400 and "at least 2" in one_arm.text
    nowhere = create(app="nowhere")
    assert nowhere.status_code == 400 and "pick one of chat, concise, finance" in nowhere.text
    late = create(start="next week")
    assert late.status_code == 400 and "YYYY-MM-DDTHH:MM" in late.text
    premium = create(arm1_model="echo-premium")
    assert premium.status_code == 403 and "may not use" in premium.text
    assert server.platform.experiments.store.list("acme") == []
    assert create().status_code == 303
    duplicate = create(app="finance")
    assert duplicate.status_code == 409 and "exists" in duplicate.text
    assert admin.get("/experiments", page="0").status_code == 400
    beyond = admin.get("/experiments", page="7")
    assert beyond.status_code == 400 and "there are 1" in beyond.text
    assert admin.get("/experiments/no-such").status_code == 404


def test_another_tenants_experiment_is_not_found_and_reviewers_are_refused(
    admin: ConsoleClient, server: LiveServer
) -> None:
    store = server.platform.experiments.store
    store.create(_spec("globex-test", tenant="globex"))
    store.create(_spec("acme-test"))
    assert "globex-test" not in admin.get("/experiments").text
    assert admin.get("/experiments/globex-test").status_code == 404
    for action, data in (("stop", {}), ("promote", {"arm": "a"})):
        answer = admin.post(f"/experiments/globex-test/{action}", data, page="/experiments")
        assert answer.status_code == 404, action
    assert store.get("globex", "globex-test")[1]["status"] == "running"
    reviewer = ConsoleClient(server, server.key("acme", "rita", "reviewer"))
    for path in ("/experiments", "/experiments/acme-test"):
        refused = reviewer.get(path)
        assert refused.status_code == 403 and "for admins" in refused.text, path
    stop = reviewer.post("/experiments/acme-test/stop", {}, page="/experiments")
    assert stop.status_code == 403 and store.get("acme", "acme-test")[1]["status"] == "running"
    assert re.search(r"<option>a</option>", admin.get("/experiments/acme-test").text)
