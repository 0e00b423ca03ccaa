"""Fuzzing: schemathesis drives every operation of the server's own OpenAPI schema, as each
role and with no key, and checks that no answer is a 5xx and that every answer keeps to the
schema (its status codes, content type, headers and body).

`make test` runs a small budget; `make fuzz` sets BASTION_FUZZ_EXAMPLES to a big one.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from bastion.apps import app_specs
from bastion.config import ExperimentConfig
from bastion.platform import Platform
from conftest import ECHO_CONFIG, LiveServer, hf_shaped_folder, write_config

#: Fuzzed examples per operation and role (the coverage phase's boundary cases come on top).
EXAMPLES = int(os.environ.get("BASTION_FUZZ_EXAMPLES", "3"))
ROLES = ["admin", "developer", "reviewer", "user", "no key"]
REFUSALS = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, Any]]]:
    """The server with the echo models, a model whose shape the capacity planner can read,
    one answered request and one experiment, and the names the fuzzer should try besides
    random ones (so that requests get past "not found" to the code behind it)."""
    home = tmp_path_factory.mktemp("fuzz") / "home"
    config = copy.deepcopy(ECHO_CONFIG)
    shaped = hf_shaped_folder(
        tmp_path_factory.mktemp("weights") / "tiny", "llama", layers=2, hidden=64, heads=4,
        kv_heads=2, ffn=128, vocab=256, context=2048, tied=True,
    )  # fmt: skip
    config["models"].append({"name": "shaped", "backend": "echo", "path": str(shaped)})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BASTION_HOME", str(home))
        platform = Platform.open(home, write_config(home, config))
        try:
            with LiveServer(platform) as server:
                keys = {role: server.key(user=f"fuzz-{role}", role=role) for role in ROLES[:-1]}
                answer = httpx.post(
                    server.url + "/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": "hello"}]},
                    headers={"Authorization": f"Bearer {keys['admin']}"},
                    timeout=30,
                ).json()
                experiment = ExperimentConfig(
                    name="fuzz-test", tenant="acme", app="concise",
                    variants=[{"name": "a", "model": "echo"}, {"name": "b", "model": "echo"}],
                )  # fmt: skip
                platform.experiments.store.create(experiment)
                known = {
                    "names": [*sorted(app_specs()), "chat", "concise", experiment.name],
                    "traces": [answer["bastion"]["trace_id"]],
                    "models": ["echo", "echo-premium", "shaped", "all-minilm-l6-v2"],
                    "arms": ["a", "b"],
                    "tenants": ["acme", "globex"],
                }
                yield server, {"keys": keys, "known": known}
        finally:
            platform.close()


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api_schema(live: tuple[LiveServer, dict[str, Any]], role: str) -> schemathesis.BaseSchema:
    server, data = live
    known: dict[str, list[str]] = data["known"]
    bind = {
        "path.name": "names", "path.trace_id": "traces", "query.model": "models",
        "header.x-bastion-app": "names", "body.trace_id": "traces", "body.model": "models",
        "body.app": "names", "body.arm": "arms", "body.tenant": "tenants",
        "body.variants[*].model": "models",
    }  # fmt: skip
    config: dict[str, Any] = {
        "cache": {"enabled": False},  # nothing written into the checkout
        "generation": {"max-examples": EXAMPLES, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # The server refuses some schema-valid bodies for reasons JSON Schema cannot say
            # (every message empty, feedback with neither rating nor thumbs, an app's own
            # input schema): a clear 400 is right there.
            "positive_data_acceptance": {"enabled": False},
            # schemathesis' statuses for refusing invalid data, and 413: a body over
            # server.max_request_bytes is refused before it is read
            "negative_data_rejection": {"expected-statuses": REFUSALS},
        },
        "dictionaries": {name: {"values": values} for name, values in known.items()},
        "parameters": {key: {"dictionary": name, "probability": 0.5} for key, name in bind.items()},
    }
    if role != "no key":  # without one: no header, or whatever schemathesis makes up
        config["headers"] = {"Authorization": f"Bearer {data['keys'][role]}"}
    return schemathesis.openapi.from_url(
        server.url + "/openapi.json", config=schemathesis.Config.from_dict(config)
    )


@pytest.fixture(autouse=True)
def _legacy_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32 names each operation's subtest through `node._nodeid`, which
    pytest 9.2 no longer has (it keeps `_id`): give it a plain attribute to read and write."""
    request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@settings(deadline=None, suppress_health_check=list(HealthCheck))
@schema.parametrize()
def test_every_operation_answers_within_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(timeout=30)
