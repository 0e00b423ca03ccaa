"""The HTTP API's request and response models (OpenAI chat-completions compatible)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import unquote

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    name: str
    arguments: str = Field(description="The arguments, a JSON object as text.")


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = Field(None, description="An assistant's earlier calls.")
    tool_call_id: str | None = Field(None, description="A tool message: the call it answers.")

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


def _checked_schema(v: dict[str, Any]) -> dict[str, Any]:
    try:
        jsonschema.validators.validator_for(v).check_schema(v)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
    # check_schema leaves $refs unresolved: one to nowhere would fail only when the
    # answer is checked (a 5xx), and one to a URL would have the server fetch it.
    for ref in _refs(v):
        if not _points_inside(v, ref):
            raise ValueError(
                f"$ref '{ref}' does not point inside the schema; refer to its own parts "
                "only, e.g. '#/$defs/name'"
            )
    return v


NAME = r"^[A-Za-z0-9_-]+$"  # OpenAI's pattern for schema and function names


class JsonSchemaFormat(BaseModel):
    name: str = Field("response", max_length=64, pattern=NAME)
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema", description="A JSON Schema.")
    strict: bool | None = Field(None, description="Always enforced on local backends.")

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _checked_schema(v)


class FunctionDefinition(BaseModel):
    name: str = Field(max_length=64, pattern=NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = Field(
        None, description="The arguments' JSON Schema; calls on local backends are held to it."
    )
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _valid_parameters(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if v is None else _checked_schema(v)


class ToolDefinition(BaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: FunctionName


def _refs(node: Any) -> Iterator[str]:
    """Every $ref in a schema (not inside values it only lists, such as `const`)."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for key, value in node.items():
            if key not in ("const", "enum", "default", "examples"):
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _points_inside(schema: dict[str, Any], ref: str) -> bool:
    """Whether `ref` is a JSON pointer ('#', '#/$defs/x') to a part of `schema`."""
    if ref != "#" and not ref.startswith("#/"):
        return False
    node: Any = schema
    for token in ref[2:].split("/") if ref != "#" else []:
        token = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True


class ResponseFormat(BaseModel):
    """`text` (the default), `json_object` (any JSON object) or `json_schema`."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("give json_schema exactly when type is 'json_schema'")
        return self


MAX_CHOICES = 8


class ChatCompletionRequest(BaseModel):
    """OpenAI's request body. Fields Bastion cannot honour are refused rather than ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, description="Registered model; default: the app's model.")
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(
        None, ge=0, le=2, description="Default: the model's (the answer's bastion.sampling)."
    )
    top_p: float | None = Field(None, gt=0, le=1, description="Default: the model's.")
    max_tokens: int | None = Field(None, ge=1, le=1_000_000, description="Default: the model's.")
    max_completion_tokens: int | None = Field(None, ge=1, le=1_000_000)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(
        1,
        ge=1,
        le=MAX_CHOICES,
        description="Choices to generate, each a request of its own through the guards and "
        "the audit trail (a given seed is advanced by one per choice); not with stream.",
    )
    seed: int | None = None
    user: str | None = None
    app: str | None = Field(None, description="Bastion app (also header X-Bastion-App).")
    account: str | None = Field(
        None,
        max_length=256,
        description="End customer's account, for account-level experiments "
        "(also header X-Bastion-Account).",
    )
    tools: list[ToolDefinition] | None = Field(
        None,
        max_length=128,
        description="Functions the model may call: passed on to OpenAI-compatible models; "
        "on llama.cpp models a call is read from the answer, and held to the function's "
        "schema while decoding when tool_choice requires one. The guards check and the audit "
        "trail keeps each call's arguments.",
    )
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = Field(
        None, description="Default: auto when tools are given."
    )
    parallel_tool_calls: bool | None = Field(
        None, description="Passed on; llama.cpp models make one call at a time."
    )
    logprobs: bool | None = Field(
        None,
        description="Each answer token's log-probability (llamacpp and openai models); "
        "withheld, with a note in `bastion.logprobs`, when a guard changed the answer.",
    )
    top_logprobs: int | None = Field(
        None, ge=0, le=20, description="The likeliest tokens at each place; needs logprobs."
    )
    response_format: ResponseFormat | None = Field(
        None, description="JSON answers: enforced while decoding on local backends."
    )

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    @model_validator(mode="after")
    def _one_choice_when_streaming(self) -> ChatCompletionRequest:
        if self.stream and self.n > 1:
            raise ValueError("n > 1 cannot be streamed; ask for one choice or set stream false")
        return self

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    @model_validator(mode="after")
    def _tool_choice_among_tools(self) -> ChatCompletionRequest:
        names = [t.function.name for t in self.tools or []]
        if len(set(names)) < len(names):
            raise ValueError("tools: each function needs a name of its own")
        if self.tool_choice is not None and not names:
            raise ValueError("tool_choice needs tools; give the functions in 'tools'")
        named = self.tool_choice
        if isinstance(named, NamedToolChoice) and named.function.name not in names:
            raise ValueError(
                f"tool_choice names '{named.function.name}', which is not among the tools "
                f"({', '.join(names)})"
            )
        return self


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = Field(description="None when the answer is tool calls.")
    tool_calls: list[ToolCall] | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob]


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: str
    logprobs: ChoiceLogprobs | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    bastion: dict[str, Any] = Field(description="Trace id, app, model and trust report.")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "bastion"
    bastion: dict[str, Any]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    code: str
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(
        min_length=1, max_length=64, description="From the answer's bastion field."
    )
    thumbs: Literal["up", "down"] | None = None
    rating: int | None = Field(None, ge=1, le=5, description="1 (bad) to 5 (excellent).")
    corrected_text: str | None = Field(
        None, max_length=100_000, description="The answer as it should have been."
    )
    comment: str | None = Field(None, max_length=10_000)


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: str = Field(min_length=1, description="The winning arm.")
    force: bool = Field(
        False, description="Promote even though the arm's model fails the bias gate."
    )


class AppRunRequest(BaseModel):
    """Start a run of a registered app (`GET /v1/apps` lists them with their input schemas)."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(default_factory=dict, description="The app's input.")
    model: str | None = Field(None, description="Registered model; default: the app's model.")
    background: bool = Field(
        False,
        description="Answer at once with the run's id (202) and run it in the background; "
        "poll GET /v1/apps/{name}/runs/{id} for progress and the result.",
    )


class AppRunProgress(BaseModel):
    done: int
    total: int | None
    note: str


class AppRunResponse(BaseModel):
    id: str = Field(description="The run id; the audit records of its model calls name it.")
    app: str
    user: str
    model: str | None
    status: Literal["running", "done", "failed"]
    progress: AppRunProgress
    input: dict[str, Any]
    output: dict[str, Any] | None = Field(description="The app's output schema, when done.")
    error: str | None
    calls: list[str] = Field(description="Trace ids of the run's model calls, in order.")
    created_at: str
    finished_at: str | None


class AppInfo(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class AppList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AppInfo]


EMBEDDING_MODEL = "all-minilm-l6-v2"


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings body: text in, the embedded model's unit vectors out."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[str] = Field(
        description="A text or up to 256 texts (token arrays are not supported)."
    )
    model: str | None = Field(None, description=f"'{EMBEDDING_MODEL}' (the only one).")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, description="384, the model's; others are refused.")

    @field_validator("input")
    @classmethod
    def _texts(cls, v: str | list[str]) -> str | list[str]:
        texts = [v] if isinstance(v, str) else v
        if not 1 <= len(texts) <= 256:
            raise ValueError("give 1 to 256 texts")
        if any(not t.strip() for t in texts):
            raise ValueError("texts must not be empty")
        if any(len(t) > 20_000 for t in texts):
            raise ValueError("a text is over 20,000 characters; split it")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        if v not in (None, EMBEDDING_MODEL):
            raise ValueError(f"the embedding model is '{EMBEDDING_MODEL}'; got '{v}'")
        return v

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, v: int | None) -> int | None:
        if v not in (None, 384):
            raise ValueError(f"{EMBEDDING_MODEL} gives 384 dimensions; got {v}")
        return v


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of float32 (LE).")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
