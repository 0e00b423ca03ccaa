"""Applications: multi-step programs on top of the pipeline, registered as plug-ins.

An app declares its input and output schemas (pydantic) and a `run` function. Every model
call it makes goes through `AppRun.ask`, so through identify, authorize, guards and audit
like any chat request, as the person who started the run; every retrieval goes through
`AppRun.search`, which returns only what that person may read. The audit records of a
run's model calls carry its run id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from bastion.access import Principal
from bastion.errors import BadRequest, NotFound
from bastion.grounding.retriever import Hit
from bastion.models import ChatMessage, GenerationParams
from bastion.pipeline import ChatRequest, Completion
from bastion.platform import Platform
from bastion.plugins import Part, registry


@dataclass
class AppRun:
    """One run of an app, as the person who started it."""

    platform: Platform
    principal: Principal
    app: str
    settings: Any  # the app's settings (its AppSpec's model), from apps[].settings
    model: str | None = None  # None: the app's configured model
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    calls: list[str] = field(default_factory=list)  # trace ids of its model calls

    def ask(
        self,
        messages: list[ChatMessage] | str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: tuple[str, ...] = (),
    ) -> Completion:
        """One model call through the whole pipeline (guards, audit), linked to this run."""
        if isinstance(messages, str):
            messages = [ChatMessage("user", messages)]
        params = GenerationParams(temperature=temperature, max_tokens=max_tokens, stop=stop)
        request = ChatRequest(messages, params, self.model, self.app, app_run=self.run_id)
        pipeline = self.platform.pipeline
        done = pipeline.complete(pipeline.prepare(request, None, self.principal))
        self.calls.append(done.trace_id)
        return done

    def search(self, query: str, k: int = 5, sources: list[str] | None = None) -> list[Hit]:
        """The chunks this person may read that best match `query`."""
        return self.platform.grounding.search(self.principal, query, k=k, sources=sources)


@dataclass(frozen=True, kw_only=True)
class AppSpec(Part):
    """An app as a plug-in: `apps[]` entries of the same name configure it (model,
    guard overrides, grounding sources, and `settings`, validated by `settings`)."""

    input: type[BaseModel]
    output: type[BaseModel]
    #: (the run, its validated input) -> its output
    run: Callable[[AppRun, Any], BaseModel]


@dataclass(frozen=True)
class AppResult:
    run_id: str
    output: BaseModel
    calls: list[str]  # trace ids of the model calls, in order


def app_specs() -> dict[str, AppSpec]:
    return registry.parts("app", AppSpec)


def run_app(
    platform: Platform,
    name: str,
    data: dict[str, Any],
    principal: Principal,
    *,
    model: str | None = None,
) -> AppResult:
    """Validate `data` against the app's input schema and run it as `principal`."""
    spec = app_specs().get(name)
    if spec is None:
        known = ", ".join(sorted(app_specs())) or "none"
        raise NotFound(f"no app named '{name}' is registered; registered: {known}")
    try:
        given = spec.input.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(input)'}: {e['msg']}" for e in exc.errors()
        )
        raise BadRequest(f"invalid input for app '{name}': {problems}") from None
    entry = platform.config.app(name)
    assert entry is not None  # a registered app is always configured (its defaults)
    run = AppRun(platform, principal, name, entry.settings, model)
    return AppResult(run.run_id, spec.run(run, given), run.calls)


__all__ = ["AppResult", "AppRun", "AppSpec", "app_specs", "run_app"]
