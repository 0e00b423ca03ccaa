"""The request pipeline: the one place that says in which order a request is handled.

    identify -> authorize -> app template -> input guards -> route
             -> generate (or stream) -> output guards -> audit

Each stage before generation is a small object with `run(ctx)`; later parts (grounding,
more guards, experiments) add stages to `default_stages` without touching the server.
The pipeline is synchronous: the server runs it in worker threads, off its event loop.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

from bastion.access import AccessStore, Policy, Principal
from bastion.audit import AuditEntry, AuditLog
from bastion.config import AppConfig, BastionConfig
from bastion.errors import BackendError, BastionError, NotFound
from bastion.guards import Guard, GuardContext, Verdict, input_guards, output_guards
from bastion.guards.base import merge, strongest
from bastion.models import ChatMessage, GenerationParams, ModelRegistry
from bastion.models.base import FinishReason
from bastion.observability import REQUESTS, TOKENS

log = logging.getLogger("bastion.pipeline")


@dataclass
class ChatRequest:
    """A chat request as the pipeline sees it, whatever surface it came from."""

    messages: list[ChatMessage]
    params: GenerationParams
    model: str | None = None
    app: str = "chat"
    stream: bool = False


@dataclass
class RequestContext:
    """Everything known about one request as it moves through the stages."""

    request: ChatRequest
    api_key: str | None
    trace_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None
    app: AppConfig | None = None
    model: str | None = None
    messages: list[ChatMessage] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def trust_report(self) -> dict[str, Any]:
        action = "allow"
        for v in self.verdicts:
            action = strongest(action, v.action)  # type: ignore[arg-type]
        return {"action": action, "verdicts": [v.to_dict() for v in self.verdicts]}


@dataclass
class Completion:
    trace_id: str
    model: str
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    bastion: dict[str, Any]


@dataclass
class StreamEvent:
    """Text to send; the last event also carries the finish reason, usage and trust report."""

    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    bastion: dict[str, Any] | None = None


class Stage(Protocol):
    name: str

    def run(self, ctx: RequestContext) -> None: ...


class Identify:
    """API key -> Principal (401 otherwise)."""

    name = "identify"

    def __init__(self, access: AccessStore) -> None:
        self._access = access

    def run(self, ctx: RequestContext) -> None:
        ctx.principal = self._access.resolve(ctx.api_key)


class Authorize:
    """Resolve the app and model, then check the role's policy (403 otherwise)."""

    name = "authorize"

    def __init__(self, config: BastionConfig, policy: Policy, registry: ModelRegistry) -> None:
        self._config = config
        self._policy = policy
        self._registry = registry

    def run(self, ctx: RequestContext) -> None:
        app = self._config.app(ctx.request.app)
        if app is None:
            known = ", ".join(a.name for a in self._config.apps)
            raise NotFound(f"app '{ctx.request.app}' is not configured; available: {known}")
        ctx.app = app
        ctx.model = ctx.request.model or app.model or self._config.resolved_default_model
        self._registry.config(ctx.model)  # unknown model -> 404 naming the known ones
        assert ctx.principal is not None
        self._policy.authorize(ctx.principal, app=app.name, model=ctx.model)


class ApplyAppTemplate:
    """Put the app's system prompt in front of the conversation."""

    name = "app_template"

    def run(self, ctx: RequestContext) -> None:
        ctx.messages = list(ctx.request.messages)
        if ctx.app and ctx.app.system_prompt:
            ctx.messages.insert(0, ChatMessage("system", ctx.app.system_prompt))


class InputGuards:
    """Run each input guard over every message; redact in place, block with its error."""

    name = "input_guards"

    def __init__(self, guards: list[Guard]) -> None:
        self._guards = guards

    def run(self, ctx: RequestContext) -> None:
        assert ctx.app is not None
        gctx = GuardContext(
            ctx.trace_id,
            ctx.principal,
            ctx.app.name,
            "input",
            sum(len(m.content) for m in ctx.messages),
        )
        for guard in self._guards:
            verdicts = [guard.check(m.content, gctx) for m in ctx.messages]
            ctx.messages = [
                ChatMessage(m.role, v.text) if v.action == "redact" and v.text is not None else m
                for m, v in zip(ctx.messages, verdicts, strict=True)
            ]
            verdict = merge(verdicts)
            ctx.verdicts.append(verdict)
            if verdict.action == "block":
                reasons = "; ".join(f.detail for f in verdict.findings) or guard.name
                raise guard.block_error(
                    f"input blocked by guard '{guard.name}': {reasons}",
                    details={"trust": ctx.trust_report()},
                )


class Route:
    """Pick the model that answers. Experiments replace this stage with arm assignment."""

    name = "route"

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def run(self, ctx: RequestContext) -> None:
        assert ctx.model is not None
        info = self._registry.info(ctx.model)
        ctx.extra["route"] = {"model": info.name, "backend": info.backend}


def default_stages(
    config: BastionConfig, access: AccessStore, registry: ModelRegistry
) -> list[Stage]:
    """The stages before generation, in order."""
    return [
        Identify(access),
        Authorize(config, Policy(config.access), registry),
        ApplyAppTemplate(),
        InputGuards(input_guards(config.guards)),
        Route(registry),
    ]


class OutputGuardStream:
    """Checks streamed output, holding back only the last `window` characters.

    Every character released has been checked together with everything that could
    complete a match through it, so no unchecked text reaches the client.
    """

    def __init__(self, guards: list[Guard], gctx: GuardContext, max_holdback: int) -> None:
        self._guards = guards
        self._gctx = gctx
        self.window = min(max((g.window_chars for g in guards), default=0), max_holdback)
        self._pending = ""
        self.verdicts = {g.name: Verdict(g.name, stage="output") for g in guards}
        self.blocked = False

    def _check(self) -> None:
        for guard in self._guards:
            verdict = guard.check(self._pending, self._gctx)
            if verdict.action == "redact" and verdict.text is not None:
                self._pending = verdict.text
            self.verdicts[guard.name] = merge([self.verdicts[guard.name], verdict])
            if verdict.action == "block":
                self.blocked = True
                self._pending = ""
                return

    def feed(self, text: str) -> str:
        """Add model output; return the text now safe to send."""
        if self.blocked:
            return ""
        self._pending += text
        self._check()
        cut = max(len(self._pending) - self.window, 0)
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out

    def finish(self) -> str:
        out, self._pending = self._pending, ""
        return out


class Pipeline:
    """Runs requests through the stages, the model, the output guards and the audit log."""

    def __init__(
        self,
        config: BastionConfig,
        stages: list[Stage],
        registry: ModelRegistry,
        outputs: list[Guard],
        audit: AuditLog,
    ) -> None:
        self.config = config
        self.stages = stages
        self.registry = registry
        self.output_guards = outputs
        self.audit = audit

    @classmethod
    def build(
        cls,
        config: BastionConfig,
        access: AccessStore,
        registry: ModelRegistry,
        audit: AuditLog,
    ) -> Pipeline:
        return cls(
            config,
            default_stages(config, access, registry),
            registry,
            output_guards(config.guards),
            audit,
        )

    def prepare(self, request: ChatRequest, api_key: str | None) -> RequestContext:
        """Run every stage before generation; failures are audited and re-raised."""
        ctx = RequestContext(request, api_key)
        for stage in self.stages:
            try:
                stage.run(ctx)
            except BastionError as exc:
                status = "blocked" if stage.name == "input_guards" else "rejected"
                self._record(ctx, status, error=exc.message)
                raise
        return ctx

    def complete(self, ctx: RequestContext) -> Completion:
        """Generate a whole answer, check it, audit it."""
        assert ctx.model is not None
        try:
            with self.registry.gate(ctx.model).slot():
                generation = self.registry.backend(ctx.model).generate(
                    ctx.messages, ctx.request.params
                )
        except BastionError as exc:
            self._record(ctx, "error", error=exc.message)
            raise
        except Exception as exc:
            self._record(ctx, "error", error=str(exc))
            raise BackendError(f"model '{ctx.model}' failed: {exc}") from exc
        checker = OutputGuardStream(self.output_guards, self._output_ctx(ctx), max_holdback=10**9)
        text = checker.feed(generation.text) + checker.finish()
        ctx.verdicts.extend(checker.verdicts.values())
        finish: FinishReason = "content_filter" if checker.blocked else generation.finish_reason
        self._record(
            ctx,
            "ok",
            response=text,
            usage=(generation.prompt_tokens, generation.completion_tokens),
        )
        return Completion(
            ctx.trace_id,
            ctx.model,
            text,
            finish,
            generation.prompt_tokens,
            generation.completion_tokens,
            self.bastion_field(ctx),
        )

    def open_stream(self, ctx: RequestContext) -> Generator[StreamEvent, None, None]:
        """Take a slot on the model now (so a full queue is a 503, not a broken stream),
        then return the event iterator."""
        assert ctx.model is not None
        gate = self.registry.gate(ctx.model)
        try:
            gate.admit()
        except BastionError as exc:
            self._record(ctx, "error", error=exc.message)
            raise
        return self._stream(ctx, gate.release)

    def _stream(
        self, ctx: RequestContext, release: Callable[[], None]
    ) -> Generator[StreamEvent, None, None]:
        assert ctx.model is not None
        checker = OutputGuardStream(
            self.output_guards,
            self._output_ctx(ctx),
            self.config.guards.stream_holdback_chars,
        )
        sent: list[str] = []
        usage = (0, 0)
        finish: FinishReason = "stop"
        status, error = "cancelled", None
        try:
            for delta in self.registry.backend(ctx.model).stream(ctx.messages, ctx.request.params):
                out = checker.feed(delta.text)
                if out:
                    sent.append(out)
                    yield StreamEvent(out)
                if checker.blocked:
                    finish = "content_filter"
                    break
                if delta.finish_reason is not None:
                    finish = delta.finish_reason
                    usage = (delta.prompt_tokens or 0, delta.completion_tokens or 0)
            tail = checker.finish()
            if tail:
                sent.append(tail)
            ctx.verdicts.extend(checker.verdicts.values())
            status = "ok"
            self._record(ctx, status, response="".join(sent), usage=usage)
            yield StreamEvent(tail, finish, usage[0], usage[1], self.bastion_field(ctx))
        except GeneratorExit:
            raise  # the client went away: recorded as cancelled below
        except Exception as exc:
            status, error = "error", getattr(exc, "message", str(exc))
            raise
        finally:
            release()
            if status != "ok":
                self._record(ctx, status, response="".join(sent), usage=usage, error=error)

    def bastion_field(self, ctx: RequestContext) -> dict[str, Any]:
        """The `bastion` field of a response: trace id, app, route and trust report."""
        return {
            "trace_id": ctx.trace_id,
            "app": ctx.app.name if ctx.app else ctx.request.app,
            "model": ctx.model,
            "trust": ctx.trust_report(),
        }

    def _output_ctx(self, ctx: RequestContext) -> GuardContext:
        return GuardContext(ctx.trace_id, ctx.principal, ctx.app.name if ctx.app else "", "output")

    def _record(
        self,
        ctx: RequestContext,
        status: str,
        *,
        response: str | None = None,
        usage: tuple[int, int] = (0, 0),
        error: str | None = None,
    ) -> None:
        latency_ms = (time.perf_counter() - ctx.started) * 1000
        p = ctx.principal
        params = ctx.request.params
        self.audit.append(
            AuditEntry(
                trace_id=ctx.trace_id,
                tenant=p.tenant if p else None,
                user=p.user if p else None,
                role=p.role if p else None,
                key_id=p.key_id if p else None,
                app=ctx.app.name if ctx.app else ctx.request.app,
                model=ctx.model,
                status=status,
                params={
                    "temperature": params.temperature,
                    "top_p": params.top_p,
                    "max_tokens": params.max_tokens,
                    "stop": list(params.stop),
                    "seed": params.seed,
                },
                # Unauthenticated requests leave no text behind.
                prompt=[
                    {"role": m.role, "content": m.content}
                    for m in (ctx.messages or ctx.request.messages)
                ]
                if p
                else None,
                response=response,
                prompt_tokens=usage[0],
                completion_tokens=usage[1],
                latency_ms=round(latency_ms, 3),
                stream=ctx.request.stream,
                verdicts=[v.to_dict() for v in ctx.verdicts],
                error=error,
                extra=ctx.extra,
            )
        )
        REQUESTS.labels(ctx.app.name if ctx.app else "-", ctx.model or "-", status).inc()
        if usage != (0, 0):
            TOKENS.labels(ctx.model or "-", "prompt").inc(usage[0])
            TOKENS.labels(ctx.model or "-", "completion").inc(usage[1])
        log.info(
            "request",
            extra={
                "trace_id": ctx.trace_id,
                "tenant": p.tenant if p else None,
                "app": ctx.app.name if ctx.app else None,
                "model": ctx.model,
                "status": status,
                "latency_ms": round(latency_ms, 2),
            },
        )
