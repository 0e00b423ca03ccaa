"""The HTTP server: an OpenAI-compatible API in front of the pipeline, plus admin reads.

The server is thin: it turns HTTP into a ChatRequest, runs the pipeline in worker threads
(never on the event loop), and turns results and errors back into HTTP.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion import __version__
from bastion.access import Principal
from bastion.apps import app_specs, execute, start_run
from bastion.apps.runs import AppRuns, BackgroundRuns
from bastion.capacity import PlanRequest, capacity_plan
from bastion.config import ExperimentConfig
from bastion.console import create_console
from bastion.errors import BadRequest, BastionError, Overloaded, PermissionDenied
from bastion.models import ChatMessage, GenerationParams, JsonFormat, TokenLogprob
from bastion.models.backends import weights_path
from bastion.models.base import Tool, ToolCall, ToolUse
from bastion.observability import HTTP_LATENCY, IN_FLIGHT
from bastion.pipeline import ChatRequest, Completion, Pipeline, StreamEvent
from bastion.platform import Platform
from bastion.server.schemas import (
    EMBEDDING_MODEL,
    AppInfo,
    AppList,
    AppRunRequest,
    AppRunResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ErrorResponse,
    FeedbackRequest,
    ModelCard,
    ModelList,
    NamedToolChoice,
    PromoteRequest,
    ResponseFormat,
)
from bastion.sweep.report import SWEEPS, saved_report, saved_reports

log = logging.getLogger("bastion.server")
M = TypeVar("M", bound=BaseModel)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 503)
}


def _error(
    status: int,
    message: str,
    code: str,
    error_type: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": error_type, "code": code, "param": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class BodySizeLimit:
    """Refuses bodies over `limit` bytes with 413 before the app reads them whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = _error(
            413,
            f"request body is over {self.limit} bytes; send less or raise server.max_request_bytes",
            "request_too_large",
            "invalid_request_error",
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})


class InFlightLimit:
    """Answers 503 with Retry-After at once when `limit` requests are already being
    served, instead of letting more wait for a worker thread in a queue nobody bounds.
    (Each model's admission gate bounds its own generations behind this.) Health checks
    and metrics are always answered."""

    EXEMPT = ("/healthz", "/metrics")

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0  # touched on the event loop only: no lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            refusal = _error(
                503,
                f"the server is serving {self.limit} requests; retry shortly "
                "(server.max_in_flight sets how many)",
                "overloaded",
                "server_error",
                {"Retry-After": "1"},
            )
            await refusal(scope, receive, send)
            return
        self.in_flight += 1
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()


class RequestTimer:
    """Records each request's latency by route and status (a plain ASGI middleware:
    Starlette's BaseHTTPMiddleware costs a task and a queue per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_LATENCY.labels(route, str(status)).observe(time.perf_counter() - start)


class _BodyTooLarge(Exception):
    """Raised inside the app's receive() to abort an oversized upload."""


def _describe(errors: list[Any]) -> str:
    problems = []
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"] if p != "body") or "body"
        problems.append(f"{loc}: {err['msg']}")
    return "; ".join(problems)


_TOO_DEEP = "the body is nested too deeply; send JSON nested at most a few hundred levels"


def _parse_body(raw: bytes, model: type[M]) -> M:
    """Parse a JSON body whatever its declared content type, with errors that say what to fix."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("the body is not valid UTF-8; send JSON encoded as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"the body is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:  # arrays or objects nested thousands deep
        raise BadRequest(_TOO_DEEP) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(_describe(exc.errors())) from None
    except RecursionError:  # a validator walking a deep value (a response_format schema)
        raise BadRequest(_TOO_DEEP) from None


# The models that hand-parsed bodies refer to, added to the schema's components (see
# `_openapi`): a body's own `#/$defs/...` would not resolve inside the OpenAPI document.
_BODY_DEFINITIONS: dict[str, Any] = {}


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI request-body entry for a body parsed by hand (see `_parse_body`)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    _BODY_DEFINITIONS.update(schema.pop("$defs", {}))
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's schema with the hand-parsed bodies' definitions among its components."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in _BODY_DEFINITIONS.items():
                components.setdefault(name, definition)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def _json_format(fmt: ResponseFormat | None) -> JsonFormat | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.json_schema is None:
        return JsonFormat()
    return JsonFormat(fmt.json_schema.schema_, fmt.json_schema.name)


def _tool_use(body: ChatCompletionRequest) -> ToolUse | None:
    if not body.tools:
        return None
    tools = tuple(
        Tool(t.function.name, t.function.description or "", t.function.parameters)
        for t in body.tools
    )
    if isinstance(body.tool_choice, NamedToolChoice):
        return ToolUse(tools, "required", body.tool_choice.function.name)
    return ToolUse(tools, body.tool_choice or "auto")


def _to_chat_request(
    body: ChatCompletionRequest, app_header: str | None, account_header: str | None = None
) -> ChatRequest:
    messages = [
        ChatMessage(
            "system" if m.role == "developer" else m.role,
            m.text(),
            tuple(
                ToolCall(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or []
            ),
            m.tool_call_id,
        )
        for m in body.messages
    ]
    if not any(m.content.strip() for m in messages):
        raise BadRequest("messages are all empty; send at least one message with text")
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    params = GenerationParams(
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        stop=stop,
        seed=body.seed,
        json_format=_json_format(body.response_format),
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        tools=_tool_use(body),
    )
    app = body.app or app_header or "chat"
    account = body.account or account_header
    return ChatRequest(messages, params, body.model, app, body.stream, account)


def _answer(pipeline: Pipeline, request: ChatRequest, key: str | None) -> Completion:
    return pipeline.complete(pipeline.prepare(request, key))


def _choices(request: ChatRequest, n: int) -> list[ChatRequest]:
    """The request once per choice; a seed is advanced so that the choices can differ."""
    seed = request.params.seed
    return [
        request
        if i == 0 or seed is None
        else replace(request, params=replace(request.params, seed=seed + i))
        for i in range(n)
    ]


def _completion_json(done: list[Completion]) -> dict[str, Any]:
    """The OpenAI response body (its schema is ChatCompletionResponse, for the docs): one
    choice per completion; `bastion` is the first's, with every choice's under `choices`
    when there are several (each has its own trace id and trust report)."""
    first = done[0]
    prompt = sum(d.prompt_tokens for d in done)
    completion = sum(d.completion_tokens for d in done)
    return {
        "id": f"chatcmpl-{first.trace_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": first.model,
        "choices": [
            {
                "index": i,
                "message": ChatMessage("assistant", d.text, tuple(d.tool_calls)).openai(),
                "finish_reason": d.finish_reason,
                "logprobs": _logprobs_json(d.logprobs),
            }
            for i, d in enumerate(done)
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
        "bastion": first.bastion
        if len(done) == 1
        else {**first.bastion, "choices": [d.bastion for d in done]},
    }


def _logprobs_json(logprobs: list[TokenLogprob] | None) -> dict[str, Any] | None:
    """OpenAI's `logprobs` of a choice (ChoiceLogprobs)."""
    if logprobs is None:
        return None

    def token(text: str, logprob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    return {
        "content": [
            {**token(t.token, t.logprob), "top_logprobs": [token(*top) for top in t.top]}
            for t in logprobs
        ]
    }


def _sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


async def _sse_stream(
    events: Generator[StreamEvent, None, None], trace_id: str, model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    """Render pipeline events as OpenAI chunks; always close the event iterator,
    so the model slot is released and the audit record written even on disconnect."""
    base = {
        "id": f"chatcmpl-{trace_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    sentinel = object()
    try:
        yield _sse(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            }
        )
        while True:
            event = await run_in_threadpool(next, events, sentinel)
            if event is sentinel:
                break
            assert isinstance(event, StreamEvent)
            delta: dict[str, Any] = {"content": event.text} if event.text else {}
            if event.tool_calls:  # each call whole, in one piece
                delta["tool_calls"] = [
                    {"index": i, **call.openai()} for i, call in enumerate(event.tool_calls)
                ]
            chunk: dict[str, Any] = {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "finish_reason": event.finish_reason,
                        # all of them at the end: only a whole answer shows whether a guard
                        # changed it (and so whether they may be sent)
                        "logprobs": _logprobs_json(event.logprobs),
                    }
                ],
            }
            if event.bastion is not None:
                chunk["bastion"] = event.bastion
            yield _sse(chunk)
            if event.finish_reason is not None and include_usage:
                usage = {
                    "prompt_tokens": event.prompt_tokens,
                    "completion_tokens": event.completion_tokens,
                    "total_tokens": event.prompt_tokens + event.completion_tokens,
                }
                yield _sse({**base, "choices": [], "usage": usage})
        yield _sse("[DONE]")
    except BastionError as exc:
        yield _sse(
            {
                "error": {
                    "message": exc.message,
                    "type": exc.error_type,
                    "code": exc.code,
                }
            }
        )
    finally:
        await run_in_threadpool(events.close)


def create_app(platform: Platform) -> FastAPI:
    """Build the FastAPI application around an opened Platform."""

    runs = AppRuns(platform.db)
    background = BackgroundRuns()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Guardrails stop a bad arm even when nobody is reading the report.
        watcher = platform.experiments.watch_guardrails()
        runs.interrupt_orphans()  # runs a stopped server left behind
        try:
            yield
        finally:
            watcher.set()
            background.shutdown()

    app = FastAPI(
        title="Bastion",
        version=__version__,
        description="OpenAI-compatible gateway with access control, guards and an audit trail.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.mount("/console", create_console(platform))
    pipeline = platform.pipeline
    app.add_middleware(BodySizeLimit, limit=platform.config.server.max_request_bytes)
    app.add_middleware(InFlightLimit, limit=platform.config.server.max_in_flight)

    app.add_middleware(RequestTimer)

    @app.exception_handler(BastionError)
    async def _bastion_error(_: Request, exc: BastionError) -> JSONResponse:
        retry = getattr(exc, "retry_after", None)  # Overloaded, RateLimited
        headers = {"Retry-After": str(retry)} if retry is not None else None
        response = _error(exc.status_code, exc.message, exc.code, exc.error_type, headers)
        if exc.details:
            body = json.loads(bytes(response.body))
            body["error"].update(exc.details)
            response = JSONResponse(body, status_code=exc.status_code, headers=headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(
            400, _describe(list(exc.errors())), "invalid_request", "invalid_request_error"
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:  # RFC 9110: a 405 says which methods the path takes
            headers = {"Allow": _allowed_methods(app, request.scope)}
        return _error(
            exc.status_code, str(exc.detail), "http_error", "invalid_request_error", headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return _error(
            500,
            "internal error; the server log has the details",
            "internal_error",
            "server_error",
        )

    def principal_of(authorization: str | None) -> Principal:
        return platform.access.resolve(_bearer(authorization))

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, Any]:
        with platform.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {
            "status": "ok",
            "version": __version__,
            "models": platform.registry.names(),
        }

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=ModelList, responses=_ERRORS, tags=["openai"])
    def list_models(authorization: str | None = Header(None)) -> ModelList:
        principal = principal_of(authorization)
        cards = []
        for name in platform.registry.names(principal.tenant):
            if not platform.policy.allows_model(principal, name):
                continue
            info = platform.registry.info(name)
            cards.append(
                ModelCard(
                    id=name,
                    bastion={
                        "backend": info.backend,
                        "parameters": info.parameters,
                        "context_length": info.context_length,
                        "price": {
                            "input_per_1m": info.price.input_per_1m,
                            "output_per_1m": info.price.output_per_1m,
                            "gpu_hour": info.price.gpu_hour,
                        },
                    },
                )
            )
        return ModelList(data=cards)

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletionResponse,
        # with `stream: true` the answer is server-sent events (chat.completion.chunk JSON)
        responses={**_ERRORS, 200: {"content": {"text/event-stream": {"schema": {}}}}},
        tags=["openai"],
        openapi_extra=_json_body(ChatCompletionRequest),
    )
    async def chat_completions(
        http_request: Request,
        authorization: str | None = Header(None),
        x_bastion_app: str | None = Header(None),
        x_bastion_account: str | None = Header(None),
    ) -> Any:
        body = _parse_body(await http_request.body(), ChatCompletionRequest)
        request = _to_chat_request(body, x_bastion_app, x_bastion_account)
        key = _bearer(authorization)
        if not request.stream:
            done = [
                await run_in_threadpool(_answer, pipeline, choice, key)
                for choice in _choices(request, body.n)
            ]
            return JSONResponse(_completion_json(done))
        ctx = await run_in_threadpool(pipeline.prepare, request, key)
        events = await run_in_threadpool(pipeline.open_stream, ctx)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        assert ctx.model is not None
        return StreamingResponse(
            _sse_stream(events, ctx.trace_id, ctx.model, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Bastion-Trace-Id": ctx.trace_id},
        )

    @app.post(
        "/v1/embeddings",
        response_model=EmbeddingResponse,
        responses=_ERRORS,
        tags=["openai"],
        openapi_extra=_json_body(EmbeddingRequest),
    )
    async def embeddings(
        http_request: Request, authorization: str | None = Header(None)
    ) -> EmbeddingResponse:
        """The embedding model Bastion retrieves with (all-MiniLM-L6-v2, 384 dimensions,
        unit length), for RAG clients; any key may use it. Texts are not audited: they
        are not sent to a generative model."""
        body = _parse_body(await http_request.body(), EmbeddingRequest)
        await run_in_threadpool(principal_of, authorization)
        texts = [body.input] if isinstance(body.input, str) else body.input
        embedder = platform.grounding.embedder
        vectors, tokens = await run_in_threadpool(
            lambda: (embedder.embed(texts), embedder.count_tokens(texts))
        )
        data = [
            Embedding(
                index=i,
                embedding=base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
                if body.encoding_format == "base64"
                else [float(x) for x in v],
            )
            for i, v in enumerate(vectors)
        ]
        return EmbeddingResponse(
            data=data,
            model=EMBEDDING_MODEL,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )

    @app.get("/v1/audit", responses=_ERRORS, tags=["admin"])
    def audit_recent(limit: int = 20, authorization: str | None = Header(None)) -> dict[str, Any]:
        """The caller's tenant's latest audit records (admins only)."""
        principal = _admin(principal_of(authorization))
        limit = max(1, min(limit, 500))
        return {"data": platform.audit.recent(principal.tenant, limit)}

    @app.get("/v1/audit/{trace_id}", responses=_ERRORS, tags=["admin"])
    def audit_record(trace_id: str, authorization: str | None = Header(None)) -> dict[str, Any]:
        """One audit record of the caller's tenant (admins only)."""
        principal = _admin(principal_of(authorization))
        return platform.audit.get(trace_id, principal.tenant)

    @app.get("/v1/admin/plan", responses=_ERRORS, tags=["admin"])
    def admin_plan(
        model: str,
        qps: float,
        p95_ms: float,
        hardware: str | None = None,
        precision: str | None = None,
        prompt_tokens: int | None = None,
        answer_tokens: int | None = None,
        since: date | None = None,
        authorization: str | None = Header(None),
    ) -> dict[str, Any]:
        """What serving a registered model takes for a request rate and a p95 latency, per
        GPU type or `hardware=this-machine` (admins only; `bastion plan` in JSON). With
        `since`, the prompt and answer lengths not given are the p95 of the tenant's
        audited requests to the model since that day."""
        principal = _admin(principal_of(authorization), "capacity planning")
        request = PlanRequest(
            qps=qps,
            p95_ms=p95_ms,
            hardware=hardware.split(",") if hardware else None,
            precision=precision,
            prompt_tokens=prompt_tokens,
            answer_tokens=answer_tokens,
            audit_since=datetime.combine(since, datetime.min.time(), UTC) if since else None,
            prices=platform.config.capacity.prices,
        )
        config = platform.registry.config(model, principal.tenant)
        return capacity_plan(
            model, weights_path(config), request, platform.audit, principal.tenant, config.price
        )

    @app.get("/v1/admin/sweeps", responses=_ERRORS, tags=["admin"])
    def admin_sweeps(authorization: str | None = Header(None)) -> dict[str, Any]:
        """The saved sweep reports (`bastion sweep --out` folders under BASTION_HOME/sweeps),
        newest first, with each one's recommendation (admins only; those that name a model
        of another tenant are left out)."""
        principal = _admin(principal_of(authorization), "sweep reports")
        usable = set(platform.registry.names(principal.tenant))
        return {"data": saved_reports(platform.home / SWEEPS, usable)}

    @app.get("/v1/admin/sweeps/{folder:path}", responses=_ERRORS, tags=["admin"])
    def admin_sweep(folder: str, authorization: str | None = Header(None)) -> dict[str, Any]:
        """One saved sweep report whole: every candidate at every concurrency with its
        quality, latency, throughput, memory and cost, the Pareto front and the
        recommendation (admins only)."""
        principal = _admin(principal_of(authorization), "sweep reports")
        usable = set(platform.registry.names(principal.tenant))
        return saved_report(platform.home / SWEEPS, folder, usable)

    @app.post(
        "/v1/feedback",
        # the same feedback again answers 200: it is idempotent, not a conflict
        responses={**_ERRORS, 200: {"description": "This feedback was recorded already"}},
        tags=["experiments"],
        status_code=201,
        openapi_extra=_json_body(FeedbackRequest),
    )
    async def feedback(
        http_request: Request, authorization: str | None = Header(None)
    ) -> JSONResponse:
        """Rate an answer (thumbs or 1-5, a corrected text, a comment). Only its requester or
        an admin may; the same feedback again is a no-op (200), different feedback a 409."""
        body = _parse_body(await http_request.body(), FeedbackRequest)
        principal = await run_in_threadpool(principal_of, authorization)
        thumbs = None if body.thumbs is None else (1 if body.thumbs == "up" else -1)
        stored, new = await run_in_threadpool(
            lambda: platform.experiments.feedback.record(
                principal,
                body.trace_id,
                thumbs=thumbs,
                rating=body.rating,
                corrected_text=body.corrected_text,
                comment=body.comment,
            )
        )
        return JSONResponse(stored, status_code=201 if new else 200)

    @app.get("/v1/experiments", responses=_ERRORS, tags=["experiments"])
    def experiments_list(authorization: str | None = Header(None)) -> dict[str, Any]:
        """The caller's tenant's experiments (admins only)."""
        principal = _admin(principal_of(authorization), "experiments")
        return {"data": platform.experiments.store.list(principal.tenant)}

    @app.post(
        "/v1/experiments",
        responses=_ERRORS,
        tags=["experiments"],
        status_code=201,
        openapi_extra=_json_body(ExperimentConfig),
    )
    async def experiments_create(
        http_request: Request, authorization: str | None = Header(None)
    ) -> dict[str, Any]:
        """Start an experiment in the caller's tenant (admins only)."""
        principal = _admin(await run_in_threadpool(principal_of, authorization), "experiments")
        try:
            raw = json.loads(await http_request.body())
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadRequest("the body is not valid JSON; send an experiment as JSON") from None
        except RecursionError:
            raise BadRequest(_TOO_DEEP) from None
        if isinstance(raw, dict):
            raw.setdefault("tenant", principal.tenant)
            if raw["tenant"] != principal.tenant:
                raise PermissionDenied("an admin may create experiments in their own tenant only")
        spec = _parse_body(json.dumps(raw).encode(), ExperimentConfig)
        return await run_in_threadpool(platform.experiments.store.create, spec)

    @app.get("/v1/experiments/{name}/report", responses=_ERRORS, tags=["experiments"])
    def experiments_report(name: str, authorization: str | None = Header(None)) -> dict[str, Any]:
        """Metrics per arm, always-valid comparisons, guardrails and the decision."""
        principal = _admin(principal_of(authorization), "experiments")
        return platform.experiments.report(principal.tenant, name)[0]

    @app.post("/v1/experiments/{name}/stop", responses=_ERRORS, tags=["experiments"])
    def experiments_stop(name: str, authorization: str | None = Header(None)) -> dict[str, Any]:
        principal = _admin(principal_of(authorization), "experiments")
        platform.experiments.stop(principal.tenant, name)
        return platform.experiments.store.get(principal.tenant, name)[1]

    @app.post(
        "/v1/experiments/{name}/promote",
        responses=_ERRORS,
        tags=["experiments"],
        openapi_extra=_json_body(PromoteRequest),
    )
    async def experiments_promote(
        name: str, http_request: Request, authorization: str | None = Header(None)
    ) -> dict[str, Any]:
        principal = _admin(await run_in_threadpool(principal_of, authorization), "experiments")
        body = _parse_body(await http_request.body(), PromoteRequest)
        return await run_in_threadpool(
            platform.experiments.promote, principal.tenant, name, body.arm, body.force
        )

    @app.get("/v1/apps", response_model=AppList, responses=_ERRORS, tags=["apps"])
    def apps_list(authorization: str | None = Header(None)) -> AppList:
        """The registered apps the caller's role may run, with their input and output schemas."""
        principal = principal_of(authorization)
        return AppList(
            data=[
                AppInfo(
                    name=name,
                    description=spec.description,
                    input_schema=spec.input.model_json_schema(),
                    output_schema=spec.output.model_json_schema(),
                )
                for name, spec in sorted(app_specs().items())
                if platform.policy.allows_app(principal, name)
            ]
        )

    @app.post(
        "/v1/apps/{name}/runs",
        response_model=AppRunResponse,
        responses={**_ERRORS, 202: {"model": AppRunResponse}},
        tags=["apps"],
        openapi_extra=_json_body(AppRunRequest),
    )
    async def apps_run(
        name: str, http_request: Request, authorization: str | None = Header(None)
    ) -> JSONResponse:
        """Run an app as the caller: the result (200), or with `background` the run's id at
        once (202). Every model call of the run goes through the pipeline and the audit."""
        body = _parse_body(await http_request.body(), AppRunRequest)
        principal = await run_in_threadpool(principal_of, authorization)
        pending = await run_in_threadpool(
            lambda: start_run(platform, name, body.input, principal, model=body.model)
        )
        if body.background:
            try:
                background.submit(lambda: execute(pending))
            except Overloaded as exc:
                runs.fail(pending.run.run_id, exc.message, [])
                raise
        else:
            await run_in_threadpool(execute, pending)
        run = await run_in_threadpool(runs.get, pending.run.run_id, principal, name)
        return JSONResponse(run, status_code=202 if body.background else 200)

    @app.get(
        "/v1/apps/{name}/runs/{run_id}",
        response_model=AppRunResponse,
        responses=_ERRORS,
        tags=["apps"],
    )
    def apps_run_status(
        name: str, run_id: str, authorization: str | None = Header(None)
    ) -> dict[str, Any]:
        """A run's progress and, once done, its output (its starter, or an admin)."""
        return runs.get(run_id, principal_of(authorization), name)

    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app


def _allowed_methods(app: FastAPI, scope: Scope) -> str:
    """Every method a path answers: Starlette's own 405 names its first route's only, and
    a path may have several (GET and POST /v1/experiments)."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Route) and route.matches(scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def _admin(principal: Principal, what: str = "the audit trail") -> Principal:
    if not principal.is_admin:
        raise PermissionDenied(f"{what}: admins only")
    return principal
