"""End-to-end: the real server on a free port, driven by the official openai client and httpx."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from conftest import LiveServer

CHAT = "/v1/chat/completions"


def client(server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def test_openai_client_chat(server: LiveServer) -> None:
    answer = client(server, server.key()).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hello there world"}]
    )
    assert answer.choices[0].message.content == "hello there world"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens == 3
    extra = answer.model_extra or {}
    assert len(extra["bastion"]["trace_id"]) == 32
    assert extra["bastion"]["trust"]["action"] == "allow"
    record = server.platform.audit.get(extra["bastion"]["trace_id"])
    assert record["status"] == "ok" and record["response"] == "hello there world"
    assert record["user"] == "alice" and record["model"] == "echo"


def test_openai_client_several_choices(server: LiveServer) -> None:
    """n choices: each a request of its own through the pipeline, audited once."""
    answer = client(server, server.key()).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "two of these"}], n=2, seed=7
    )
    assert [c.index for c in answer.choices] == [0, 1]
    assert all(c.message.content == "two of these" for c in answer.choices)
    assert answer.usage is not None and answer.usage.completion_tokens == 6
    traces = [b["trace_id"] for b in (answer.model_extra or {})["bastion"]["choices"]]
    assert len(set(traces)) == 2
    records = [server.platform.audit.get(t) for t in traces]
    assert [r["params"]["seed"] for r in records] == [7, 8]


def test_openai_client_embeddings(server: LiveServer) -> None:
    """The embedding model Bastion retrieves with, for RAG clients: the official client
    asks for base64 by default and decodes it."""
    import numpy as np

    api = client(server, server.key())
    texts = ["The gateway went offline.", "Our gateway is disconnected.", "Invoice overdue."]
    answer = api.embeddings.create(input=texts, model="all-minilm-l6-v2")
    vectors = np.array([d.embedding for d in answer.data])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # meaning, not just words
    assert answer.usage.prompt_tokens > 10 and answer.model == "all-minilm-l6-v2"
    floats = api.embeddings.create(
        input="The gateway went offline.", model="all-minilm-l6-v2", encoding_format="float"
    )
    assert np.allclose(floats.data[0].embedding, vectors[0], atol=1e-5)
    for bad in ({"input": []}, {"input": "x", "model": "text-embedding-3-small"},
                {"input": "x", "dimensions": 1536}):  # fmt: skip
        with pytest.raises(openai.BadRequestError):
            api.embeddings.create(**{"model": "all-minilm-l6-v2", **bad})
    with pytest.raises(openai.AuthenticationError):
        client(server, "bst_nope").embeddings.create(input="x", model="all-minilm-l6-v2")


def test_openai_client_streaming(server: LiveServer) -> None:
    stream = client(server, server.key()).chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "one two three four"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    trace = next(
        c.model_extra["bastion"]["trace_id"] for c in chunks if c.model_extra.get("bastion")
    )
    assert server.platform.audit.get(trace)["response"] == text


def test_parameters_reach_the_model(server: LiveServer) -> None:
    c = client(server, server.key())
    short = c.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "a b c d e"}], max_tokens=2
    )
    assert short.choices[0].message.content == "a b" and short.choices[0].finish_reason == "length"
    stopped = c.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "a b STOP c"}], stop=["STOP"]
    )
    assert stopped.choices[0].message.content == "a b "


def test_sampling_defaults_apply_when_not_given(server: LiveServer) -> None:
    """A request that leaves the sampling settings out gets the model's (here Bastion's,
    echo recommending none); the answer and its audit record show the settings used."""
    c = client(server, server.key())
    plain = c.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    sampling = plain.model_extra["bastion"]["sampling"]
    assert sampling == {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 512,
        "repetition_penalty": 1.0,
        "source": dict.fromkeys(
            ("temperature", "top_p", "max_tokens", "repetition_penalty"), "default"
        ),
    }
    chosen = c.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hi"}], temperature=0, max_tokens=7
    )
    sampling = chosen.model_extra["bastion"]["sampling"]
    assert (sampling["temperature"], sampling["max_tokens"], sampling["top_p"]) == (0, 7, 0.9)
    assert sampling["source"]["temperature"] == "request"
    params = server.platform.audit.get(chosen.model_extra["bastion"]["trace_id"])["params"]
    assert params["temperature"] == 0 and params["max_tokens"] == 7 and params["top_p"] == 0.9


def test_app_system_prompt_and_default_model(server: LiveServer) -> None:
    answer = client(server, server.key()).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hi"}], extra_body={"app": "concise"}
    )
    record = server.platform.audit.get(answer.model_extra["bastion"]["trace_id"])
    assert record["app"] == "concise"
    system = record["prompt"][0]
    assert system["role"] == "system" and system["content"].startswith("Answer briefly.")
    assert "cnry-" in system["content"]  # the canary planted for leak detection


def test_models_list_respects_policy(server: LiveServer) -> None:
    admin = [m.id for m in client(server, server.key()).models.list()]
    user = [m.id for m in client(server, server.key(user="carol", role="user")).models.list()]
    assert admin == ["echo", "echo-premium"] and user == ["echo"]


def test_policy_denies_with_403(server: LiveServer) -> None:
    c = client(server, server.key(user="carol", role="user"))
    with pytest.raises(openai.PermissionDeniedError, match="echo-premium"):
        c.chat.completions.create(model="echo-premium", messages=[{"role": "user", "content": "x"}])
    dev = client(server, server.key(user="bob", role="developer"))
    with pytest.raises(openai.PermissionDeniedError, match="finance"):
        dev.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "x"}], extra_body={"app": "finance"}
        )
    statuses = [r["status"] for r in server.platform.audit.recent()]
    assert statuses == ["rejected", "rejected"]


def test_missing_and_revoked_keys_get_401(server: LiveServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(server, "not-a-key").chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "x"}]
        )
    created = server.platform.access.create_key(tenant="acme", user="z", role="user")
    server.platform.access.revoke(created.key_id)
    response = httpx.post(
        server.url + CHAT,
        json={"messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {created.secret}"},
    )
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b'{"messages": [', 400, "not valid JSON"),
        (b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, "UTF-8"),
        (b"[1, 2]", 400, "valid dictionary"),
        (b'{"messages": []}', 400, "messages"),
        (b'{"messages": "hi"}', 400, "messages"),
        (b'{"messages": [{"role": "robot", "content": "x"}]}', 400, "role"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
            400,
            "temperature",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', 400, "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "top_p": NaN}', 400, "top_p"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 9}', 400, "n"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 2, "stream": true}', 400, "n > 1"),
        (b'{"messages": [{"role": "user", "content": "   "}]}', 400, "empty"),
        (b'{"messages": [{"role": "user", "content": "x"}], "model": "gpt-9"}', 404, "gpt-9"),
        (b'{"messages": [{"role": "user", "content": "x"}], "app": "nope"}', 404, "nope"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}',
            400,
            "tool",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "response_format": '
            b'{"type": "json_schema", "json_schema": {"schema": {"type": "nope"}}}}',
            400,
            "JSON Schema",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], '
            b'"response_format": {"type": "json_schema"}}',
            400,
            "json_schema",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}', 400, "logprobs"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),  # was a RecursionError
        *(  # $refs used to fail only once the answer was checked (a 502), or fetch a URL
            (
                b'{"messages": [{"role": "user", "content": "{}"}], "response_format": '
                b'{"type": "json_schema", "json_schema": {"schema": {"$ref": "' + ref + b'"}}}}',
                400,
                "does not point inside the schema",
            )
            for ref in (b"#/nope", b"https://example.com/schema.json")
        ),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    server: LiveServer, body: bytes, status: int, needle: str
) -> None:
    key = server.key()
    before = server.platform.audit.verify().records
    response = httpx.post(
        server.url + CHAT,
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert needle in error["message"] and error["type"] == "invalid_request_error"
    # malformed requests change nothing; valid-but-refused ones leave one audit record
    assert server.platform.audit.verify().records - before == (1 if status == 404 else 0)


def test_prompt_over_the_limit_gets_413(server: LiveServer) -> None:
    response = httpx.post(
        server.url + CHAT,
        json={"messages": [{"role": "user", "content": "x" * 2001}]},
        headers={"Authorization": f"Bearer {server.key()}"},
    )
    assert response.status_code == 413
    assert "2001 characters" in response.json()["error"]["message"]
    assert server.platform.audit.recent()[-1]["status"] == "blocked"


def test_body_over_the_byte_limit_gets_413(server: LiveServer) -> None:
    response = httpx.post(
        server.url + CHAT,
        content=b"{" + b" " * 1_100_000 + b"}",
        headers={"Authorization": f"Bearer {server.key()}"},
    )
    assert response.status_code == 413


def test_deny_list_blocks_input_and_reports_it(server: LiveServer) -> None:
    response = httpx.post(
        server.url + CHAT,
        json={"messages": [{"role": "user", "content": "Status of Project\nNightingale?"}]},
        headers={"Authorization": f"Bearer {server.key()}"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_blocked" and error["trust"]["action"] == "block"
    record = server.platform.audit.recent()[-1]
    assert record["status"] == "blocked" and record["verdicts"][-1]["guard"] == "deny_list"


def test_unknown_routes_answer_json(server: LiveServer) -> None:
    response = httpx.get(server.url + "/v1/nothing")
    assert response.status_code == 404 and "error" in response.json()
    # a wrong method: 405 naming every method of the path (GET and POST are two routes)
    response = httpx.request("DELETE", server.url + "/v1/experiments")
    assert response.status_code == 405 and "error" in response.json()
    assert response.headers["allow"] == "GET, POST"


def test_health_metrics_and_openapi(server: LiveServer) -> None:
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    client(server, server.key()).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "x"}]
    )
    metrics = httpx.get(server.url + "/metrics").text
    assert 'bastion_requests_total{app="chat",model="echo",status="ok"}' in metrics
    schema = httpx.get(server.url + "/openapi.json").json()
    post = schema["paths"]["/v1/chat/completions"]["post"]
    assert "messages" in post["requestBody"]["content"]["application/json"]["schema"]["properties"]


def test_the_published_schema_is_valid_and_every_reference_resolves(server: LiveServer) -> None:
    """Client generators and fuzzers read the bodies too: no `#/$defs/...` left dangling."""
    schema = httpx.get(server.url + "/openapi.json").json()
    validate(schema)
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    components = schema["components"]["schemas"]
    assert refs and all(r.startswith("#/components/schemas/") for r in refs)
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(components)
    for path in ("/v1/chat/completions", "/v1/experiments", "/v1/feedback"):
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert "$defs" not in body["schema"]


def test_tenants_cannot_read_each_others_audit(server: LiveServer) -> None:
    acme = client(server, server.key(tenant="acme"))
    answer = acme.chat.completions.create(model="echo", messages=[{"role": "user", "content": "q"}])
    trace = answer.model_extra["bastion"]["trace_id"]
    globex_key = server.key(tenant="globex", user="erin")
    headers = {"Authorization": f"Bearer {globex_key}"}
    assert httpx.get(f"{server.url}/v1/audit/{trace}", headers=headers).status_code == 404
    listed = httpx.get(f"{server.url}/v1/audit", headers=headers).json()["data"]
    assert all(r["tenant"] == "globex" for r in listed)
    acme_headers = {"Authorization": f"Bearer {server.key(tenant='acme')}"}
    assert (
        httpx.get(f"{server.url}/v1/audit/{trace}", headers=acme_headers).json()["trace_id"]
        == trace
    )
    user_headers = {"Authorization": f"Bearer {server.key(user='carol', role='user')}"}
    assert httpx.get(f"{server.url}/v1/audit", headers=user_headers).status_code == 403


def test_every_answered_request_is_audited_under_load(server: LiveServer) -> None:
    key = server.key()
    lock = threading.Lock()
    traces: list[str] = []

    def call(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for j in range(10):
                body = {"model": "echo", "messages": [{"role": "user", "content": f"m {i} {j}"}]}
                if j % 2:
                    body["stream"] = True
                    with http.stream(
                        "POST", CHAT, json=body, headers={"Authorization": f"Bearer {key}"}
                    ) as r:
                        assert r.status_code == 200
                        lines = list(r.iter_lines())
                    assert lines[-2] == "data: [DONE]"
                    trace = r.headers["x-bastion-trace-id"]
                else:
                    r = http.post(CHAT, json=body, headers={"Authorization": f"Bearer {key}"})
                    assert r.status_code == 200
                    trace = r.json()["bastion"]["trace_id"]
                with lock:
                    traces.append(trace)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(8)))
    report = server.platform.audit.verify()
    assert report.ok and report.records == 80
    recorded = {r["trace_id"] for r in server.platform.audit.records()}
    assert recorded == set(traces)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "robot", 3]), "content": json_values}
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"messages": st.lists(message, max_size=3)},
        optional={
            "model": json_values | st.sampled_from(["echo", "echo-premium"]),
            "temperature": json_values,
            "max_tokens": json_values,
            "stop": json_values,
            "stream": st.booleans() | json_values,
            "app": json_values | st.just("concise"),
            "n": json_values,
        },
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
def test_no_client_input_produces_a_500(server: LiveServer, body: object) -> None:
    key = server.key(user="carol", role="user")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        response = http.post(CHAT, json=body, headers={"Authorization": f"Bearer {key}"})
        response.read()
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]["message"]


def test_a_langchain_client_chats_structures_and_embeds(server: LiveServer) -> None:
    """LangChain's OpenAI integration against Bastion: plain chat, a structured answer
    through response_format json_schema, and embeddings for its vector stores."""
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings
    from pydantic import BaseModel

    key = server.key()
    llm = ChatOpenAI(base_url=server.url + "/v1", api_key=key, model="echo", max_retries=0)
    assert llm.invoke("hello from langchain").content == "hello from langchain"

    class Count(BaseModel):
        n: int

    structured = llm.with_structured_output(Count, method="json_schema")
    assert structured.invoke('{"n": 3}') == Count(n=3)
    embeddings = OpenAIEmbeddings(
        base_url=server.url + "/v1",
        api_key=key,
        model="all-minilm-l6-v2",
        check_embedding_ctx_length=False,  # it would count tokens with OpenAI's tokenizer
    )
    vectors = embeddings.embed_documents(["gateway offline", "sensor pairing"])
    assert len(vectors) == 2 and len(vectors[0]) == 384
