"""The request pipeline: the one place that says in which order a request is handled.

    identify -> authorize -> assign arm -> app template -> retrieve -> input guards
             -> prepare prompt (guards' hooks) -> route
             -> generate (or stream) -> output guards -> groundedness
             -> reveal (guards' hooks) -> audit

Each stage before generation is a small object with `run(ctx)`; later parts (grounding,
more guards, experiments) add stages to `default_stages` without touching the server.
Guards are plug-ins: the pipeline knows only their interface (`bastion.guards.base`),
calling every guard's hooks alike. It is synchronous: the server runs it in worker
threads, off its event loop.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol, cast

from opentelemetry import trace

from bastion.access import AccessStore, Policy, Principal
from bastion.access.limits import Limits
from bastion.audit import AuditEntry, AuditLog
from bastion.config import AppConfig, BastionConfig
from bastion.errors import (
    BackendError,
    BastionError,
    GuardUnavailable,
    NotFound,
)
from bastion.experiments.service import Experiments
from bastion.grounding.groundedness import GroundednessScorer
from bastion.grounding.nli import load_nli
from bastion.grounding.service import Grounding
from bastion.grounding.stores import Chunk
from bastion.guards import Guard, GuardChain, GuardContext, Verdict, build_chain
from bastion.guards.base import (
    GUARD_FAILED,
    Action,
    DataBlock,
    Finding,
    Prompt,
    PromptMessage,
    RequestHooks,
    RequestState,
    StreamReveal,
    merge,
    run_guard,
    strongest,
)
from bastion.models import ChatMessage, GenerationParams, ModelRegistry
from bastion.models.admission import AdmissionGate
from bastion.models.base import (
    FinishReason,
    Generation,
    Role,
    StreamDelta,
    TokenLogprob,
    ToolCall,
)
from bastion.observability import REQUESTS, TOKENS, TRACER

log = logging.getLogger("bastion.pipeline")


@dataclass
class ChatRequest:
    """A chat request as the pipeline sees it, whatever surface it came from."""

    messages: list[ChatMessage]
    params: GenerationParams
    model: str | None = None
    app: str = "chat"
    stream: bool = False
    account: str | None = None  # the end customer's account, for account-level experiments
    app_run: str | None = None  # the app run this call belongs to (its audit records say so)
    sources: list[Chunk] = field(default_factory=list)  # material an app's program supplies
    #: An app program's own instructions: trusted like the app's system prompt (the guards
    #: check what the person and the sources say, not what the platform's code says).
    instructions: str | None = None
    #: Score the answer's support by supplied sources (retrieved ones always are; scoring
    #: costs an embedding of every source sentence, so an app asks for it where it uses it).
    score_support: bool = False


@dataclass
class RetrievedSource:
    """A retrieved chunk as the model will see it: guards may mask it or withhold it."""

    n: int  # the number the model cites it by, [n]
    chunk: Chunk
    text: str
    withheld: str | None = None  # why a guard kept it from the model

    def citation(self, reveal: Callable[[str], str], snippet_chars: int) -> dict[str, Any]:
        body = self.text.split("\n", 1)[-1]  # the indexed text starts with the title line
        return {
            "n": self.n,
            "source": self.chunk.source,
            "record_id": self.chunk.source_id,
            "chunk_id": self.chunk.id,
            "title": self.chunk.title,
            "snippet": reveal(body)[:snippet_chars],
        }


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
    state: RequestState = field(default_factory=dict)  # what guards keep for this request
    trusted_prefix: int = 0  # leading messages the platform itself wrote (the app's prompt)
    sources: list[RetrievedSource] = field(default_factory=list)  # grounding, in rank order
    system_prompt: str | None = None  # an experiment arm's, instead of the app's
    span: trace.Span = trace.INVALID_SPAN  # the request's span; its stages' spans are children

    @property
    def shown_sources(self) -> list[RetrievedSource]:
        return [s for s in self.sources if s.withheld is None]

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
    logprobs: list[TokenLogprob] | None = None  # asked for, and the answer is the model's
    tool_calls: list[ToolCall] = field(default_factory=list)  # checked, names restored


@dataclass
class StreamEvent:
    """Text to send; the last event also carries the finish reason, usage and trust report
    (and the answer's token log-probabilities, when asked for and not withheld)."""

    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    bastion: dict[str, Any] | None = None
    logprobs: list[TokenLogprob] | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Seconds from the model's first token to its last: its decoding, however much of the
    # answer the output guards held back before the client saw it.
    decode_s: float | None = None


class Stage(Protocol):
    name: str

    def run(self, ctx: RequestContext) -> None: ...


class Identify:
    """API key -> Principal (401 otherwise)."""

    name = "identify"

    def __init__(self, access: AccessStore) -> None:
        self._access = access

    def run(self, ctx: RequestContext) -> None:
        if ctx.principal is None:  # set already when an operator acts as a user (CLI --as)
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
        assert ctx.principal is not None
        # unknown model (or another tenant's tuned one) -> 404 naming the known ones
        self._registry.config(ctx.model, ctx.principal.tenant)
        self._policy.authorize(ctx.principal, app=app.name, model=ctx.model)


class Limit:
    """Count the request against its key's and tenant's limits (429 once one is spent)."""

    name = "limit"

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    def run(self, ctx: RequestContext) -> None:
        if self._limits.active:
            assert ctx.principal is not None
            self._limits.admit(ctx.principal)


class AssignArm:
    """When an experiment splits this app: the request's arm (sticky per user, account or
    request) sets the model, system prompt and parameters. Others keep the app's."""

    name = "assign_arm"

    def __init__(self, experiments: Experiments, policy: Policy) -> None:
        self._experiments = experiments
        self._policy = policy

    def run(self, ctx: RequestContext) -> None:
        assert ctx.principal is not None and ctx.app is not None
        found = self._experiments.assign(
            ctx.principal, ctx.app.name, ctx.request.account, ctx.trace_id
        )
        if found is None:
            return
        spec, variant, unit = found
        if variant.model is not None:
            self._policy.authorize(ctx.principal, app=ctx.app.name, model=variant.model)
            ctx.model = variant.model
        ctx.system_prompt = variant.system_prompt
        params = ctx.request.params
        ctx.request.params = replace(
            params,
            temperature=params.temperature if variant.temperature is None else variant.temperature,
            max_tokens=params.max_tokens if variant.max_tokens is None else variant.max_tokens,
        )
        ctx.extra["experiment"] = {"name": spec.name, "arm": variant.name, "unit": unit}


class ApplyAppTemplate:
    """Put the app's system prompt (or the experiment arm's), and an app program's own
    instructions, in front of the conversation."""

    name = "app_template"

    def run(self, ctx: RequestContext) -> None:
        ctx.messages = list(ctx.request.messages)
        parts = [ctx.system_prompt or (ctx.app.system_prompt if ctx.app else None)]
        prompt = "\n\n".join(p for p in [*parts, ctx.request.instructions] if p)
        if prompt:
            ctx.messages.insert(0, ChatMessage("system", prompt))
            ctx.trusted_prefix = 1


class Retrieve:
    """For a grounded app: the chunks the principal may read that best match the question.
    An app's program may supply its material instead (Slack messages, a case); either way
    the sources are guarded, withheld when poisoned, and marked as data like any other.

    The question is the last user message; the ACL filter runs inside the search."""

    name = "retrieve"

    def __init__(self, grounding: Grounding) -> None:
        self._grounding = grounding

    def run(self, ctx: RequestContext) -> None:
        supplied = ctx.request.sources
        if supplied:
            ctx.sources = [RetrievedSource(n, c, c.text) for n, c in enumerate(supplied, 1)]
            ctx.extra["grounding"] = {"supplied": [c.id for c in supplied]}
            return
        if ctx.app is None or not ctx.app.sources:
            return
        assert ctx.principal is not None
        question = next((m.content for m in reversed(ctx.messages) if m.role == "user"), "")
        if not question.strip():
            return
        started = time.perf_counter()
        hits = self._grounding.search(
            ctx.principal, question, k=ctx.app.top_k, sources=ctx.app.sources
        )
        ctx.sources = [RetrievedSource(n, h.chunk, h.chunk.text) for n, h in enumerate(hits, 1)]
        ctx.extra["grounding"] = {
            "retrieve_ms": round((time.perf_counter() - started) * 1000, 2),
            "retrieved": [h.chunk.id for h in hits],
        }


class InputGuards:
    """Run each input guard over every message; redact in place, block with its error."""

    name = "input_guards"

    def __init__(
        self, guards: list[Guard], *, fail_open: Callable[[str], bool] = lambda app: False
    ) -> None:
        self.guards = guards
        self._fail_open = fail_open

    def run(self, ctx: RequestContext) -> None:
        assert ctx.app is not None
        prompt_chars = sum(len(m.content) for m in ctx.messages[ctx.trusted_prefix :])
        gctx = GuardContext(ctx.trace_id, ctx.app.name, "input", prompt_chars, ctx.state)
        trusted, checked = ctx.messages[: ctx.trusted_prefix], ctx.messages[ctx.trusted_prefix :]
        fail_open = self._fail_open(ctx.app.name)
        for guard in self.guards:
            if ctx.sources:
                self._check_sources(guard, ctx, gctx)
            # A message's text, and the arguments of the tool calls it made earlier.
            readings = [
                [run_guard(guard, text, gctx, fail_open=fail_open) for text in _texts(m)]
                for m in checked
            ]
            checked = [
                _rewritten(m, vs, _redacted) for m, vs in zip(checked, readings, strict=True)
            ]
            ctx.messages = trusted + checked
            verdicts = [v for vs in readings for v in vs]
            if not verdicts:
                continue
            verdict = merge(verdicts)
            ctx.verdicts.append(verdict)
            if verdict.action == "block":
                # What was refused must not reach the audit trail either.
                ctx.messages = trusted + [
                    _rewritten(m, vs, _struck) for m, vs in zip(checked, readings, strict=True)
                ]
                reasons = "; ".join(f.detail for f in verdict.findings) or guard.name
                if any(f.kind == GUARD_FAILED for f in verdict.findings):
                    raise GuardUnavailable(
                        f"guard '{guard.name}' failed, so the request was refused; "
                        "the server log has the details"
                    )
                raise guard.block_error(
                    f"input blocked by guard '{guard.name}': {reasons}",
                    details={"trust": ctx.trust_report()},
                )

    def _check_sources(self, guard: Guard, ctx: RequestContext, gctx: GuardContext) -> None:
        """Retrieved text is checked like the prompt, but a source a guard would block is
        withheld from the model (and named in the trust report) instead of failing the
        request: one poisoned document must not deny service to every question near it."""
        assert ctx.app is not None
        gctx = replace(gctx, stage="retrieved")
        verdicts = []
        for source in ctx.sources:
            if source.withheld is not None:
                continue
            verdict = run_guard(guard, source.text, gctx, fail_open=self._fail_open(ctx.app.name))
            if verdict.action == "redact" and verdict.text is not None:
                source.text = verdict.text
            elif verdict.action == "block":
                source.withheld = guard.name
                verdict = Verdict(
                    guard.name,
                    "flag",
                    verdict.score,
                    [Finding("withheld_source", f"source [{source.n}] {source.chunk.id} withheld")],
                )
            verdicts.append(verdict)
        if verdicts:
            merged = merge(verdicts)
            merged.stage = "retrieved"
            ctx.verdicts.append(merged)


def _audited(text: str, calls: list[ToolCall] | None) -> str:
    """What the audit record keeps of an answer: its text, then its tool calls."""
    if not calls:
        return text
    laid_out = json.dumps([c.openai() for c in calls])
    return f"{text}\n{laid_out}" if text else laid_out


def _texts(message: ChatMessage) -> list[str]:
    """What the input guards read of a message: its text, then each string in the
    arguments of the tool calls it made earlier (JSON syntax would read as an injection)."""
    return [message.content, *(s for call in message.tool_calls for s in _strings(_args(call)))]


def _rewritten(
    message: ChatMessage, verdicts: list[Verdict], rewrite: Callable[[str, Verdict], str]
) -> ChatMessage:
    """`message` with each of its texts (as `_texts` lists them) rewritten by its verdict."""
    before = _texts(message)
    after = [rewrite(t, v) for t, v in zip(before, verdicts, strict=True)]
    if after == before:
        return message
    texts = iter(after)
    content = next(texts)
    calls = []
    for call in message.tool_calls:
        value = _args(call)
        arguments = _with_strings(value, texts)
        laid_out = arguments if value == call.arguments else json.dumps(arguments)
        calls.append(replace(call, arguments=laid_out))
    return replace(message, content=content, tool_calls=tuple(calls))


def _args(call: ToolCall) -> Any:
    """A call's arguments as JSON values; arguments that are not JSON: the text itself."""
    try:
        return json.loads(call.arguments)
    except ValueError:
        return call.arguments


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _with_strings(value: Any, strings: Iterator[str]) -> Any:
    """`value` with its strings, in `_strings` order, replaced by the next of `strings`."""
    if isinstance(value, str):
        return next(strings)
    if isinstance(value, dict):
        return {key: _with_strings(item, strings) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_strings(item, strings) for item in value]
    return value


def _redacted(text: str, verdict: Verdict) -> str:
    return verdict.text if verdict.action == "redact" and verdict.text is not None else text


def _struck(text: str, verdict: Verdict) -> str:
    """`text` with each finding of a blocking verdict replaced by its kind, e.g. <US_SSN>;
    unchanged when the verdict does not block."""
    if verdict.action != "block":
        return text
    for f in sorted(verdict.findings, key=lambda f: f.start or 0, reverse=True):
        if f.start is not None and f.end is not None:
            text = f"{text[: f.start]}<{f.kind.upper()}>{text[f.end :]}"
    return text


class PreparePrompt:
    """Let every guard shape the prompt (a canary note, data markers), then assemble it:
    retrieved sources go into the last user turn, numbered for citation, and the guards'
    notes into the system prompt. Runs after the input guards, which read the text as it
    was sent."""

    name = "prepare_prompt"

    def __init__(self, hooks: list[RequestHooks]) -> None:
        self._hooks = hooks

    def run(self, ctx: RequestContext) -> None:
        grounded = "grounding" in ctx.extra
        shown = ctx.shown_sources
        # Hooks see role and text; a message they keep keeps its tool calls.
        given = [(PromptMessage(m.role, m.content), m) for m in ctx.messages]
        prompt = Prompt(
            messages=[pm for pm, _ in given],
            sources=[DataBlock(f"source [{s.n}]: {s.chunk.source}", s.text) for s in shown],
            grounded=grounded,
            notes=[GROUNDING_RULE] if grounded else [],
            state=ctx.state,
        )
        for part in self._hooks:
            part.before_generation(prompt)
        kept = {id(pm): m for pm, m in given}
        messages = [
            replace(kept[id(pm)], role=cast(Role, pm.role), content=pm.content)
            if id(pm) in kept
            else ChatMessage(cast(Role, pm.role), pm.content)
            for pm in prompt.messages
        ]
        if grounded:
            ctx.extra["grounding"]["shown"] = [s.chunk.id for s in shown]
            context = "\n\n".join(b.text for b in prompt.sources) or "(no sources matched)"
            last = max(i for i, m in enumerate(messages) if m.role == "user")
            question = messages[last].content
            messages[last] = ChatMessage("user", f"Sources:\n{context}\n\nQuestion: {question}")
        if prompt.notes:
            notes = "\n\n".join(prompt.notes)
            if messages and messages[0].role == "system":
                messages[0] = ChatMessage("system", f"{messages[0].content}\n\n{notes}")
            else:
                messages.insert(0, ChatMessage("system", notes))
                ctx.trusted_prefix += 1
        ctx.messages = messages


UNSUPPORTED_ANSWER = (
    "I could not give an answer that the sources support, so none is shown. "
    "Try rephrasing the question or ask someone with access to more sources."
)
GROUNDING_RULE = (
    "Answer from the numbered sources only and cite them like [1]. If they do not hold "
    "the answer, say that you do not know."
)


class Route:
    """Pick the model that answers, and fill in the sampling settings the request left out
    with that model's (so the answer and its audit record show the settings used)."""

    name = "route"

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def run(self, ctx: RequestContext) -> None:
        assert ctx.model is not None
        info = self._registry.info(ctx.model)
        ctx.extra["route"] = {"model": info.name, "backend": info.backend}
        ctx.request.params, sources = self._registry.sampling_params(ctx.model, ctx.request.params)
        used = ctx.request.params.sampling()
        ctx.extra["sampling"] = {**asdict(used), "source": sources}


def default_stages(
    config: BastionConfig,
    access: AccessStore,
    registry: ModelRegistry,
    grounding: Grounding,
    experiments: Experiments,
    guards: GuardChain,
    limits: Limits,
) -> list[Stage]:
    """The stages before generation, in order."""
    policy = Policy(config.access)
    return [
        Identify(access),
        Authorize(config, policy, registry),
        Limit(limits),
        AssignArm(experiments, policy),
        ApplyAppTemplate(),
        Retrieve(grounding),
        InputGuards(guards.input, fail_open=config.fail_open_for),
        PreparePrompt(guards.hooks),
        Route(registry),
    ]


class RevealChain:
    """The guards' stream reveals one after another: each feeds the next."""

    def __init__(self, reveals: list[StreamReveal]) -> None:
        self._reveals = reveals

    def feed(self, text: str) -> str:
        for reveal in self._reveals:
            text = reveal.feed(text)
        return text

    def flush(self) -> str:
        text = ""
        for reveal in self._reveals:
            text = reveal.feed(text) + reveal.flush()
        return text


class OutputGuardStream:
    """Checks model output as it streams, holding back at most `max_holdback` characters.

    Every guard sees the raw text not yet released, so a match is always whole; text is
    released only up to a point that splits no finding, with the redactions of the
    findings before it applied. No unchecked text reaches the client. The guards run once
    per `chunk` characters of new text rather than once per token, so a fast model is not
    slowed to the guards' pace.
    """

    CHUNK = 32

    def __init__(
        self, guards: list[Guard], gctx: GuardContext, max_holdback: int, *, fail_open: bool = False
    ) -> None:
        self._guards = guards
        self._fail_open = fail_open
        self._gctx = gctx
        self.chunk = max(1, min(self.CHUNK, max_holdback))
        needed = max((g.window_chars for g in guards), default=0)
        self.window = max(0, min(needed, max_holdback - self.chunk + 1))
        self._lookback = max((g.lookback_chars for g in guards), default=0)
        self._sent = ""  # the end of the raw text already released, for lookback guards
        self._raw = ""
        self._released = 0
        self.verdicts = {g.name: Verdict(g.name, stage="output") for g in guards}
        self.blocked = False

    def feed(self, text: str) -> str:
        """Add model output; return the text now safe to send."""
        self._raw += text
        cut = len(self._raw) - self.window
        return self._release(cut) if cut >= self.chunk else ""

    def finish(self) -> str:
        return self._release(len(self._raw))

    def _release(self, cut: int) -> str:
        if cut <= 0 or self.blocked:
            return ""
        results = [(g, self._run(g)) for g in self._guards]
        for guard, verdict in results:
            if verdict.action == "block":
                self.verdicts[guard.name] = merge([self.verdicts[guard.name], verdict])
                self.blocked, self._raw = True, ""
                return ""
        for guard, verdict in results:
            if guard.lookback_chars and verdict.action == "flag":
                self._note(guard, verdict)
        edits = [
            (guard, f)
            for guard, verdict in results
            if verdict.action in ("redact", "flag") and not guard.lookback_chars
            for f in verdict.findings
            if f.start is not None and f.end is not None
        ]
        for _, f in edits:  # never release part of a finding
            assert f.start is not None and f.end is not None
            if f.start < cut < f.end:
                cut = f.start
        out, pos = [], 0
        for guard, f in sorted(edits, key=lambda e: e[1].start or 0):
            assert f.start is not None and f.end is not None
            if f.end > cut or f.start < pos:
                continue
            kind = "redact" if f.replacement is not None else "flag"
            if f.replacement is not None:
                out.append(self._raw[pos : f.start] + f.replacement)
                pos = f.end
            moved = replace(f, start=f.start + self._released, end=f.end + self._released)
            score = next(v.score for g, v in results if g is guard)
            found = Verdict(guard.name, kind, score, [moved], stage="output")  # type: ignore[arg-type]
            self.verdicts[guard.name] = merge([self.verdicts[guard.name], found])
        out.append(self._raw[pos:cut])
        if self._lookback:
            self._sent = (self._sent + self._raw[:cut])[-self._lookback :]
        self._raw, self._released = self._raw[cut:], self._released + cut
        return "".join(out)

    def _run(self, guard: Guard) -> Verdict:
        """Run one guard on the unreleased text, with the sent text it asks to see again;
        finding offsets come back relative to the unreleased text."""
        seen = self._sent[len(self._sent) - guard.lookback_chars :] if guard.lookback_chars else ""
        verdict = run_guard(guard, seen + self._raw, self._gctx, fail_open=self._fail_open)
        if seen:
            verdict.findings = [
                replace(f, start=f.start - len(seen), end=f.end - len(seen))
                if f.start is not None and f.end is not None
                else f
                for f in verdict.findings
            ]
        return verdict

    def _note(self, guard: Guard, verdict: Verdict) -> None:
        """Record a lookback guard's flags in whole-answer offsets. The same passage is
        found again as it grows, so a finding overlapping an earlier one with the same
        detail widens that one instead of adding another."""
        kept = self.verdicts[guard.name]
        kept.action = strongest(kept.action, verdict.action)
        kept.score = max(kept.score, verdict.score)
        for f in verdict.findings:
            if f.start is None or f.end is None:
                continue
            start, end = max(0, f.start + self._released), f.end + self._released
            for i, old in enumerate(kept.findings):
                if (
                    old.detail == f.detail
                    and old.start is not None
                    and old.end is not None
                    and old.start <= end
                    and start <= old.end
                ):
                    wider = replace(f, start=min(old.start, start), end=max(old.end, end))
                    kept.findings[i] = wider
                    break
            else:
                kept.findings.append(replace(f, start=start, end=end))


class Pipeline:
    """Runs requests through the stages, the model, the output guards and the audit log."""

    def __init__(
        self,
        config: BastionConfig,
        stages: list[Stage],
        registry: ModelRegistry,
        guards: GuardChain,
        audit: AuditLog,
        grounding: Grounding | None = None,
        limits: Limits | None = None,
        nli_model: Path | None = None,
    ) -> None:
        self.grounding = grounding
        self.limits = limits
        self.nli_model = nli_model  # read by the groundedness check for contradictions
        self._support_scorer: GroundednessScorer | None = None
        self.config = config
        self.stages = stages
        self.registry = registry
        self.guards = guards
        self.audit = audit

    @classmethod
    def build(
        cls,
        config: BastionConfig,
        access: AccessStore,
        registry: ModelRegistry,
        audit: AuditLog,
        grounding: Grounding,
        experiments: Experiments,
        home: Path,
        limits: Limits,
    ) -> Pipeline:
        guards = build_chain(config.guards, config.apps, home)
        stages = default_stages(config, access, registry, grounding, experiments, guards, limits)
        nli_model = config.grounding.nli_folder(home)
        return cls(config, stages, registry, guards, audit, grounding, limits, nli_model)

    def load_guards(self) -> None:
        """Load every guard's models now, so the first request does not wait for them."""
        for part in self.guards.hooks:
            part.load()
        if self.grounding is not None and any(a.sources for a in self.config.apps):
            self.grounding.load()
        if self.nli_model is not None:
            load_nli(self.nli_model)

    def prepare(
        self, request: ChatRequest, api_key: str | None, principal: Principal | None = None
    ) -> RequestContext:
        """Run every stage before generation; failures are audited and re-raised."""
        ctx = RequestContext(request, api_key, principal=principal)
        ctx.span = TRACER.start_span(
            "bastion.request",
            attributes={"bastion.trace_id": ctx.trace_id, "bastion.stream": request.stream},
        )
        if request.app_run:
            ctx.extra["app_run"] = request.app_run
        for stage in self.stages:
            try:
                with _child_span(ctx, f"bastion.{stage.name}"):
                    stage.run(ctx)
            except BastionError as exc:
                status = "blocked" if stage.name == "input_guards" else "rejected"
                self._record(ctx, status, error=exc.message)
                raise
        return ctx

    def _candidates(self, ctx: RequestContext) -> list[str]:
        """The request's model, then the app's fallbacks that the person may use."""
        assert ctx.model is not None and ctx.principal is not None
        models = [ctx.model]
        if ctx.app is not None and ctx.app.fallback_models:
            usable = set(self.registry.names(ctx.principal.tenant))
            policy = Policy(self.config.access)
            models += [
                m
                for m in ctx.app.fallback_models
                if m not in models and m in usable and policy.allows_model(ctx.principal, m)
            ]
        return models

    def _failed_over(self, ctx: RequestContext, model: str, exc: BackendError) -> None:
        """Note a model that failed before any output; the next candidate answers."""
        ctx.extra.setdefault("fallback", []).append({"model": model, "error": exc.message})

    def _generate(self, ctx: RequestContext) -> Generation:
        """The answer of the first candidate model that gives one: a model whose circuit
        is open is skipped at once, one that fails counts against its circuit."""
        candidates = self._candidates(ctx)
        for n, model in enumerate(candidates):
            try:
                with (
                    self.registry.breaker(model).guard(),
                    self.registry.gate(model).slot(),
                    _child_span(ctx, "bastion.generate") as span,
                ):
                    try:
                        generation = self.registry.backend(model).generate(
                            ctx.messages, ctx.request.params
                        )
                    except BastionError:
                        raise
                    except Exception as exc:
                        raise BackendError(f"model '{model}' failed: {exc}") from exc
                    span.set_attribute("gen_ai.usage.output_tokens", generation.completion_tokens)
            except BackendError as exc:  # ModelUnavailable too: its circuit is open
                if n == len(candidates) - 1:
                    raise
                self._failed_over(ctx, model, exc)
            else:
                ctx.model = model
                return generation
        raise AssertionError("the request's own model is always a candidate")

    def complete(self, ctx: RequestContext) -> Completion:
        """Generate a whole answer, check it, audit it."""
        assert ctx.model is not None
        try:
            generation = self._generate(ctx)
        except BastionError as exc:
            self._record(ctx, "error", error=exc.message)
            raise
        checker = self._checker(ctx, max_holdback=0)  # nothing to hold back: one pass
        text = checker.feed(generation.text) + checker.finish()
        ctx.verdicts.extend(checker.verdicts.values())
        calls = self._checked_calls(ctx, generation.tool_calls)
        blocked = checker.blocked or calls is None
        finish: FinishReason = "content_filter" if blocked else generation.finish_reason
        answer = text
        if not blocked and not calls:
            answer, finish = self._check_support(ctx, text, finish)
            answer += self._notices(ctx)
        self._record(
            ctx,
            "ok",
            response=_audited(text, calls),
            usage=(generation.prompt_tokens, generation.completion_tokens),
        )
        shown = self._reveal(ctx, answer)
        logprobs = self._logprobs(ctx, generation.logprobs, generation.text, shown)
        return Completion(
            ctx.trace_id,
            ctx.model,
            shown,
            finish,
            generation.prompt_tokens,
            generation.completion_tokens,
            self.bastion_field(ctx),
            logprobs,
            self._revealed_calls(ctx, calls),
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
        return self._stream(ctx, [gate])

    def _deltas(self, ctx: RequestContext, held: list[AdmissionGate]) -> Iterator[StreamDelta]:
        """The first candidate model's stream that starts: before its first delta a model
        may fail (or have its circuit open) and the next takes over; after it, a failure
        is the stream's. `held` is the slot taken, moved to the model that answers."""
        candidates = self._candidates(ctx)
        for n, model in enumerate(candidates):
            started = False
            try:
                if n > 0:
                    gate = self.registry.gate(model)
                    gate.admit()  # before letting the last one go: one slot always held
                    held[0].release()
                    held[0] = gate
                with self.registry.breaker(model).guard():
                    backend = self.registry.backend(model)
                    try:
                        for delta in backend.stream(ctx.messages, ctx.request.params):
                            if not started:
                                started, ctx.model = True, model
                            yield delta
                    except BastionError:
                        raise
                    except Exception as exc:  # a backend's own failure: the client's error event
                        raise BackendError(f"model '{model}' failed: {exc}") from exc
                return
            except BackendError as exc:  # ModelUnavailable too: its circuit is open
                if started or n == len(candidates) - 1:
                    raise
                self._failed_over(ctx, model, exc)

    def _stream(
        self, ctx: RequestContext, held: list[AdmissionGate]
    ) -> Generator[StreamEvent, None, None]:
        assert ctx.model is not None
        checker = self._checker(ctx, self.config.guards.stream_holdback_chars)
        reveal = self._stream_reveal(ctx)
        # An app that blocks unsupported answers cannot show any of one before it is whole.
        hold_all = bool(ctx.app and ctx.app.sources and ctx.app.min_support is not None) and (
            ctx.app is not None and ctx.app.support_action == "block"
        )
        sent: list[str] = []  # what the model's answer became, masked (for the audit)
        generated: list[str] = []  # what the model said; `shown`: what the client got
        shown_all: list[str] = []
        logprobs: list[TokenLogprob] = []
        called: list[ToolCall] = []
        usage = (0, 0)
        finish: FinishReason = "stop"
        status, error = "cancelled", None
        generating = TRACER.start_span(
            "bastion.generate", context=trace.set_span_in_context(ctx.span)
        )
        first_at = last_at = 0.0
        try:
            for delta in self._deltas(ctx, held):
                last_at = time.perf_counter()
                first_at = first_at or last_at
                generated.append(delta.text)
                logprobs.extend(delta.logprobs)
                called.extend(delta.tool_calls)
                out = checker.feed(delta.text)
                if out:
                    sent.append(out)
                    shown = "" if hold_all else reveal.feed(out)
                    if shown:
                        shown_all.append(shown)
                        yield StreamEvent(shown)
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
            calls = self._checked_calls(ctx, called)
            if checker.blocked or calls is None:
                finish = "content_filter"
            answer = "".join(sent)
            final = answer if hold_all else tail
            if finish != "content_filter" and not calls:
                checked, finish = self._check_support(ctx, answer, finish)
                final = (checked if hold_all else tail) + self._notices(ctx)
            status = "ok"
            self._record(ctx, status, response=_audited(answer, calls), usage=usage)
            shown = reveal.feed(final) + reveal.flush()
            shown_all.append(shown)
            asked = logprobs if ctx.request.params.logprobs is not None else None
            kept = self._logprobs(ctx, asked, "".join(generated), "".join(shown_all))
            bastion = self.bastion_field(ctx)
            revealed = self._revealed_calls(ctx, calls)
            yield StreamEvent(
                shown, finish, usage[0], usage[1], bastion, kept, revealed, last_at - first_at
            )
        except GeneratorExit:
            raise  # the client went away: recorded as cancelled below
        except Exception as exc:
            status, error = "error", getattr(exc, "message", str(exc))
            raise
        finally:
            held[0].release()  # the slot of the model that answered, or last tried
            generating.set_attribute("gen_ai.usage.output_tokens", usage[1])
            generating.end()
            if status != "ok":
                self._record(ctx, status, response="".join(sent), usage=usage, error=error)

    def _check_support(
        self, ctx: RequestContext, answer: str, finish: FinishReason
    ) -> tuple[str, FinishReason]:
        """Score a grounded answer against the sources it was shown; flag or block it when
        the app sets min_support. Returns the answer to send and its finish reason."""
        app = ctx.app
        if app is None or "grounding" not in ctx.extra:
            return answer, finish
        supplied = bool(ctx.request.sources)
        if supplied and not ctx.request.score_support and app.min_support is None:
            return answer, finish
        if self._support_scorer is None:
            self._support_scorer = GroundednessScorer(
                self.grounding.embedder if self.grounding else None,
                nli=load_nli(self.nli_model) if self.nli_model else None,
            )
        result = self._support_scorer.score(answer, [s.text for s in ctx.shown_sources])
        action: Action = "allow"
        if app.min_support is not None and result.score < app.min_support:
            action = app.support_action
        # A blocked answer is not shown, so its sentences are named by position only.
        findings = [
            Finding(
                "contradicted_sentence" if s.contradicted else "unsupported_sentence",
                f"sentence {n} of {len(result.sentences)}" if action == "block" else s.sentence,
            )
            for n, s in enumerate(result.sentences, 1)
            if not s.supported
        ]
        ctx.verdicts.append(
            Verdict("groundedness", action, round(1 - result.score, 3), findings, stage="output")
        )
        ctx.extra["grounding"]["support"] = round(result.score, 3)
        # Which source backs each supported sentence: apps place citations the model left
        # out from it (service-reply), and the caller sees what rests on what.
        shown = ctx.shown_sources
        ctx.extra["grounding"]["attribution"] = [
            {"sentence": s.sentence, "source": shown[s.passage].n, "support": s.support}
            for s in result.sentences
            if s.passage is not None and s.supported and action != "block"
        ]
        if action == "block":
            return UNSUPPORTED_ANSWER, "content_filter"
        return answer, finish

    def _checked_calls(self, ctx: RequestContext, calls: list[ToolCall]) -> list[ToolCall] | None:
        """The model's tool calls with their arguments checked by the output guards as
        answer text is (a redaction applies inside them); None when a guard blocked one, or
        left its arguments no longer JSON."""
        checked = []
        for call in calls:
            checker = self._checker(ctx, max_holdback=0)
            arguments = checker.feed(call.arguments) + checker.finish()
            ctx.verdicts.extend(checker.verdicts.values())
            try:
                json.loads(arguments)
            except ValueError:
                return None
            if checker.blocked:
                return None
            checked.append(replace(call, arguments=arguments))
        return checked

    def _revealed_calls(self, ctx: RequestContext, calls: list[ToolCall] | None) -> list[ToolCall]:
        """Tool calls as the caller gets them: names and numbers the PII guard masked
        restored in the arguments, so that the tool acts on the real ones."""
        return [replace(c, arguments=self._reveal(ctx, c.arguments)) for c in calls or []]

    def _logprobs(
        self,
        ctx: RequestContext,
        logprobs: list[TokenLogprob] | None,
        generated: str,
        shown: str,
    ) -> list[TokenLogprob] | None:
        """The answer's token log-probabilities when the client sees the model's own words:
        once a guard redacted, restored or blocked any of it, its tokens could show what
        was taken out (or a placeholder put in), so they are withheld, and the bastion
        field says so."""
        if logprobs is None:
            return None
        if shown != generated:
            ctx.extra["logprobs"] = "withheld: the guards changed the answer"
            return None
        return logprobs

    def bastion_field(self, ctx: RequestContext) -> dict[str, Any]:
        """The `bastion` field of a response: trace id, app, route and trust report."""
        field: dict[str, Any] = {
            "trace_id": ctx.trace_id,
            "app": ctx.app.name if ctx.app else ctx.request.app,
            "model": ctx.model,
            "trust": ctx.trust_report(),
        }
        if "sampling" in ctx.extra:
            field["sampling"] = ctx.extra["sampling"]
        if "experiment" in ctx.extra:
            field["experiment"] = ctx.extra["experiment"]
        if "fallback" in ctx.extra:  # the models that failed before this one answered
            field["fallback"] = ctx.extra["fallback"]
        if "logprobs" in ctx.extra:
            field["logprobs"] = ctx.extra["logprobs"]
        if "grounding" in ctx.extra:
            chars = self.config.grounding.snippet_chars
            reveal = partial(self._reveal, ctx)
            field["citations"] = [s.citation(reveal, chars) for s in ctx.shown_sources]
            field["support"] = ctx.extra["grounding"].get("support")
            field["attribution"] = [
                {**a, "sentence": reveal(a["sentence"])}
                for a in ctx.extra["grounding"].get("attribution", [])
            ]
        return field

    def _checker(self, ctx: RequestContext, max_holdback: int) -> OutputGuardStream:
        app = ctx.app.name if ctx.app else ""
        gctx = GuardContext(ctx.trace_id, app, "output", state=ctx.state)
        return OutputGuardStream(
            self.guards.output, gctx, max_holdback, fail_open=self.config.fail_open_for(app)
        )

    def _reveal(self, ctx: RequestContext, text: str) -> str:
        """What the caller sees of checked text: each guard's `reveal` (PII restored)."""
        for part in self.guards.hooks:
            text = part.reveal(text, ctx.state)
        return text

    def _stream_reveal(self, ctx: RequestContext) -> StreamReveal:
        return RevealChain([r for p in self.guards.hooks if (r := p.stream_reveal(ctx.state))])

    def _notices(self, ctx: RequestContext) -> str:
        """What guards add to an allowed answer (citations of protected works drawn on)."""
        return "".join(part.notice(ctx.verdicts, ctx.state) for part in self.guards.hooks)

    def _trace_outcome(
        self, ctx: RequestContext, status: str, usage: tuple[int, int], error: str | None
    ) -> None:
        p = ctx.principal
        ctx.span.set_attributes(
            {
                "bastion.status": status,
                "bastion.app": ctx.app.name if ctx.app else ctx.request.app or "",
                "bastion.tenant": p.tenant if p else "",
                "gen_ai.request.model": ctx.model or "",
                "gen_ai.usage.input_tokens": usage[0],
                "gen_ai.usage.output_tokens": usage[1],
                "bastion.guard_action": ctx.trust_report()["action"],
            }
        )
        if status == "error":
            ctx.span.set_status(trace.Status(trace.StatusCode.ERROR, error or ""))

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
                    "repetition_penalty": params.repetition_penalty,
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
        if ctx.span.is_recording():
            self._trace_outcome(ctx, status, usage, error)
        ctx.span.end()
        # /metrics is read without a key: it names only the installation's configured
        # models, never a tenant's tuned one (or a made-up name, a new series each).
        shared = {m.name for m in self.config.models}
        model = ctx.model if ctx.model in shared else ("-" if ctx.model is None else "other")
        REQUESTS.labels(ctx.app.name if ctx.app else "-", model, status).inc()
        if self.limits is not None and self.limits.active and p is not None:
            self.limits.spend(p, sum(usage))
        if usage != (0, 0):
            TOKENS.labels(model, "prompt").inc(usage[0])
            TOKENS.labels(model, "completion").inc(usage[1])
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


def _child_span(ctx: RequestContext, name: str) -> Any:
    """A span under the request's, current while its block runs."""
    return TRACER.start_as_current_span(name, context=trace.set_span_in_context(ctx.span))
