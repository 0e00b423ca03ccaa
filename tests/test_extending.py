"""The extension points, end to end: docs/examples/bastion-example's guard, connector,
backend and app are registered in-process, configured in bastion.yaml and used through
the real server, grounding and app runner, with no change to Bastion itself."""

from __future__ import annotations

import importlib
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from bastion.apps import run_app
from bastion.config import reference_markdown
from bastion.errors import BadRequest, ConfigError
from bastion.platform import Platform
from bastion.plugins import Part, PluginError, hookimpl, registry
from bastion.plugins.hookspecs import Register
from conftest import LiveServer, write_config

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "bastion-example"
MODULES = ["ticket_guard", "faq_connector", "canned_backend", "faq_answer_app"]

FAQ = """Q: How do I pair a sensor?
Hold the pairing button for five seconds until the light blinks blue.

Q: What is the warranty?
Two years on every sensor; see ticket INC-4711 for the RMA process.

Q: Is there an answer?
"""


@pytest.fixture
def example_plugins() -> Iterator[list[ModuleType]]:
    sys.path.insert(0, str(EXAMPLE))
    modules = [importlib.import_module(f"bastion_example.{m}") for m in MODULES]
    for module in modules:
        registry.register(module)
    yield modules
    for module in modules:
        registry.unregister(module)
    sys.path.remove(str(EXAMPLE))


def example_config(home: Path) -> dict[str, Any]:
    (home / "faq.txt").write_text(FAQ)
    return {
        "models": [
            {
                "name": "helpdesk-bot",
                "backend": "canned",
                "settings": {
                    "replies": {
                        "pair": "Hold the button for five seconds [1].",
                        "warranty": "Two years; ask about INC-4711.",
                    }
                },
            }
        ],
        "apps": [
            {"name": "chat"},
            {"name": "support", "show_tickets": True},
            {"name": "faq-answer", "settings": {"entries": 2}},
        ],
        "sources": [
            {"name": "faq", "tenant": "acme", "kind": "faq", "path": "faq.txt", "acl": ["*"]}
        ],
        "guards": {"ticket_redactor": {"prefixes": ["INC", "CHG"]}},
        "grounding": {"mode": "bm25"},
    }


def test_entry_points_name_every_example_module() -> None:
    """`pip install` of the example package registers the same modules through entry points."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    targets = sorted(project["project"]["entry-points"]["bastion"].values())
    assert targets == sorted(f"bastion_example.{m}" for m in MODULES)


def test_example_parts_work_end_to_end(example_plugins: list[ModuleType], home: Path) -> None:
    platform = Platform.open(home, write_config(home, example_config(home)))
    try:
        # The guard and the backend, over HTTP: the ticket number is redacted on the way in
        # (the canned model never sees it) and out, and the guard's notice is appended.
        with LiveServer(platform) as server:
            headers = {"Authorization": f"Bearer {server.key()}"}
            url = server.url + "/v1/chat/completions"
            body = {"messages": [{"role": "user", "content": "Warranty for CHG-12?"}]}
            answer = httpx.post(url, json=body, headers=headers).json()
            text = answer["choices"][0]["message"]["content"]
            assert text == "Two years; ask about [TICKET].\n\n(Ticket numbers are hidden.)"
            redacted = {
                v["stage"]
                for v in answer["bastion"]["trust"]["verdicts"]
                if v["guard"] == "ticket_redactor" and v["action"] == "redact"
            }
            assert redacted == {"input", "output"}
            record = platform.audit.get(answer["bastion"]["trace_id"])
            assert "CHG-12" not in str(record["prompt"]) and "INC-4711" not in record["response"]
            # The per-app setting the guard added to apps[]: this app sees ticket numbers.
            body["model"], body["app"] = "helpdesk-bot", "support"
            shown = httpx.post(url, json=body, headers=headers).json()
            assert shown["choices"][0]["message"]["content"] == "Two years; ask about INC-4711."

        # The connector: one document per answered question, the unanswered one reported.
        (report,) = platform.grounding.ingest(["faq"])
        assert report.added == 2 and [s.reason for s in report.skipped] == [
            "a question with no answer"
        ]
        platform.grounding.index("acme")

        # The app: retrieval as the person, one audited model call linked to the run.
        alice = platform.access.principal("acme/alice")
        result = run_app(platform, "faq-answer", {"question": "how to pair it?"}, alice)
        assert result.output.answer == "Hold the button for five seconds [1]."  # type: ignore[attr-defined]
        (source,) = result.output.sources  # type: ignore[attr-defined]  # BM25: one match
        assert source.startswith("faq:q1#")
        (trace,) = result.calls
        assert platform.audit.get(trace)["extra"]["app_run"] == result.run_id
        with pytest.raises(BadRequest, match="question"):
            run_app(platform, "faq-answer", {"question": ""}, alice)
    finally:
        platform.close()


def test_configuration_names_and_documents_registered_parts(
    example_plugins: list[ModuleType], home: Path
) -> None:
    reference = reference_markdown()
    for key in (
        "`guards.ticket_redactor.prefixes`",
        "`apps[].show_tickets`",
        "`models[].settings.replies`",
        "`apps[].settings.entries`",
    ):
        assert key in reference
    assert "- connector `faq`: a FAQ text file" in reference
    bad = example_config(home)
    bad["guards"]["ticket_redactor"] = {"prefix": ["INC"]}
    with pytest.raises(ConfigError, match=r"guards\.ticket_redactor\.prefix: unknown key"):
        write_config(home, bad)
    bad = example_config(home)
    bad["apps"][2]["settings"] = {"entries": 50}
    with pytest.raises(ConfigError, match=r"apps\.2\.settings\.entries"):
        write_config(home, bad)


def test_unregistered_parts_are_named_with_the_registered_ones(home: Path) -> None:
    config = {"models": [{"name": "m", "backend": "canned"}]}
    with pytest.raises(
        ConfigError, match="no backend named 'canned' is registered; registered: echo"
    ):
        write_config(home, config)
    config = {"sources": [{"name": "f", "tenant": "t", "kind": "faq", "path": "x"}]}
    with pytest.raises(ConfigError, match="no connector named 'faq'"):
        write_config(home, config)
    with pytest.raises(ConfigError, match="ticket_redactor: unknown key"):
        write_config(home, {"guards": {"ticket_redactor": {}}})


class DuplicateToxicity:
    @hookimpl
    def register_guards(self, register: Register) -> None:
        from bastion.guards.toxicity.plugin import register_guards

        register_guards(register)


def test_two_parts_of_one_name_are_refused() -> None:
    plugin = DuplicateToxicity()
    registry.register(plugin, "duplicate-toxicity")
    try:
        with pytest.raises(PluginError, match="two plug-ins register a guard named 'toxicity'"):
            registry.parts("guard", Part)
    finally:
        registry.unregister(plugin)
