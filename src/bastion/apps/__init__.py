"""Applications: multi-step programs on top of the pipeline, registered as plug-ins.

An app declares its input and output schemas (pydantic) and a `run` function. Every model
call it makes goes through `AppRun.ask`, so through identify, authorize, guards and audit
like any chat request, as the person who started the run; every retrieval goes through
`AppRun.search`, which returns only what that person may read. The audit records of a
run's model calls carry its run id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from bastion.access import Principal
from bastion.apps.runs import AppRuns
from bastion.errors import BadRequest, BastionError, NotFound, PermissionDenied
from bastion.grounding.retriever import Hit
from bastion.grounding.stores import Chunk
from bastion.models import ChatMessage, GenerationParams, JsonFormat
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
    #: Told how far a long run has got: (steps done, steps in all if known, what it does).
    on_progress: Callable[[int, int | None, str], None] | None = None

    def progress(self, done: int, total: int | None = None, note: str = "") -> None:
        """Report progress (the CLI's progress bar, a background run's status)."""
        if self.on_progress is not None:
            self.on_progress(done, total, note)

    def ask(
        self,
        messages: list[ChatMessage] | str,
        *,
        instructions: str | None = None,
        sources: Sequence[Chunk] = (),
        score_support: bool = False,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: tuple[str, ...] = (),
        json_format: JsonFormat | None = None,
    ) -> Completion:
        """One model call through the whole pipeline (guards, audit), linked to this run.
        `instructions` are the app's own (trusted like an app's system prompt); `messages`
        what the person said (checked by the input guards); `sources` material for the
        model (messages, records, `material(...)`): the input guards check it as retrieved
        text (a poisoned one is withheld) and it is shown numbered and marked as data;
        `score_support` has the answer's support by them scored (`bastion.support`);
        `json_format` holds the answer to JSON (of a schema), enforced while decoding."""
        if isinstance(messages, str):
            messages = [ChatMessage("user", messages)]
        params = GenerationParams(
            temperature=temperature, max_tokens=max_tokens, stop=stop, json_format=json_format
        )
        request = ChatRequest(
            messages,
            params,
            self.model,
            self.app,
            app_run=self.run_id,
            sources=list(sources),
            instructions=instructions,
            score_support=score_support,
        )
        pipeline = self.platform.pipeline
        done = pipeline.complete(pipeline.prepare(request, None, self.principal))
        self.calls.append(done.trace_id)
        return done

    def search(self, query: str, k: int = 5, sources: list[str] | None = None) -> list[Hit]:
        """The chunks this person may read that best match `query`."""
        return self.platform.grounding.search(self.principal, query, k=k, sources=sources)

    def material(self, key: str, title: str, text: str, source: str | None = None) -> Chunk:
        """Text the app read itself (a Slack message, a case), to hand to `ask` as a
        source; `key` names it in citations and the audit trail, `source` where it came
        from (default: the app)."""
        return Chunk(
            id=f"{source or self.app}:{key}",
            tenant=self.principal.tenant,
            source=source or self.app,
            source_id=key,
            record_hash="",
            entity="document",
            title=title,
            text=text,
            acl=(),
        )


@dataclass(frozen=True, kw_only=True)
class AppSpec(Part):
    """An app as a plug-in: `apps[]` entries of the same name configure it (model,
    guard overrides, grounding sources, and `settings`, validated by `settings`)."""

    input: type[BaseModel]
    output: type[BaseModel]
    #: (the run, its validated input) -> its output
    run: Callable[[AppRun, Any], BaseModel]
    #: How `bastion app run --format markdown` shows an output; None: a generic rendering.
    markdown: Callable[[Any], str] | None = None
    #: (an output, the case's `expected`) -> named scores in 0-1 (None: not applicable), for
    #: `bastion eval app`; None: the app has no evaluation yet.
    score: Callable[[Any, dict[str, Any]], dict[str, float | None]] | None = None
    #: An output as records, one JSON line each, for `bastion app run --out FILE.jsonl`;
    #: None: the whole output is one line.
    jsonl: Callable[[Any], list[dict[str, Any]]] | None = None


@dataclass(frozen=True)
class AppResult:
    run_id: str
    output: BaseModel
    calls: list[str]  # trace ids of the model calls, in order


def app_specs() -> dict[str, AppSpec]:
    return registry.parts("app", AppSpec)


@dataclass
class PendingRun:
    """A validated, authorized and recorded run, ready to execute (now or in the background)."""

    spec: AppSpec
    given: BaseModel
    run: AppRun


def require_app(platform: Platform, principal: Principal, name: str) -> None:
    """PermissionDenied unless the person's role may use app `name`."""
    if not platform.policy.allows_app(principal, name):
        raise PermissionDenied(
            f"role '{principal.role}' may not use app '{name}'; ask an admin to extend "
            f"access.policies.{principal.role}.apps"
        )


def start_run(
    platform: Platform,
    name: str,
    data: dict[str, Any],
    principal: Principal,
    *,
    model: str | None = None,
    on_progress: Callable[[int, int | None, str], None] | None = None,
) -> PendingRun:
    """Check that the app exists, that the person's role may use it and that `data` fits
    its input schema; record the run."""
    spec = app_specs().get(name)
    if spec is None:
        known = ", ".join(sorted(app_specs())) or "none"
        raise NotFound(f"no app named '{name}' is registered; registered: {known}")
    require_app(platform, principal, name)
    try:
        given = spec.input.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(input)'}: {e['msg']}" for e in exc.errors()
        )
        raise BadRequest(f"invalid input for app '{name}': {problems}") from None
    entry = platform.config.app(name)
    assert entry is not None  # a registered app is always configured (its defaults)
    runs = AppRuns(platform.db)
    run = AppRun(platform, principal, name, entry.settings, model)
    write = runs.progress_writer(run.run_id)

    def progress(done: int, total: int | None, note: str) -> None:
        write(done, total, note)
        if on_progress is not None:
            on_progress(done, total, note)

    run.on_progress = progress
    runs.start(run.run_id, principal, name, model, given.model_dump(mode="json"))
    return PendingRun(spec, given, run)


def execute(pending: PendingRun) -> AppResult:
    """Run the app; its result or error is recorded with the run either way."""
    run, runs = pending.run, AppRuns(pending.run.platform.db)
    try:
        output = pending.spec.run(run, pending.given)
        if not isinstance(output, pending.spec.output):
            raise TypeError(f"app '{run.app}' returned {type(output).__name__}, not its output")
    except BastionError as exc:
        runs.fail(run.run_id, exc.message, run.calls)
        raise
    except Exception as exc:
        runs.fail(run.run_id, f"{type(exc).__name__}: {exc}", run.calls)
        raise
    runs.finish(run.run_id, output.model_dump(mode="json"), run.calls)
    return AppResult(run.run_id, output, run.calls)


def run_app(
    platform: Platform,
    name: str,
    data: dict[str, Any],
    principal: Principal,
    *,
    model: str | None = None,
    on_progress: Callable[[int, int | None, str], None] | None = None,
) -> AppResult:
    """Validate `data` against the app's input schema and run it as `principal`."""
    return execute(start_run(platform, name, data, principal, model=model, on_progress=on_progress))


__all__ = [
    "AppResult",
    "AppRun",
    "AppSpec",
    "PendingRun",
    "app_specs",
    "execute",
    "require_app",
    "run_app",
    "start_run",
]
