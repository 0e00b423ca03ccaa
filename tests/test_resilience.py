"""An upstream model server that fails: retries and timeouts end in a clear error, the
circuit breaker fails fast and lets one trial through after a while, and an app with
fallback models answers from the next one, streaming or not. Through the real server,
against a real (local) OpenAI-compatible upstream."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from sqlalchemy import event

from bastion.audit import AuditQuery
from bastion.errors import BackendError, BadRequest, ModelUnavailable
from bastion.models.breaker import CircuitBreaker
from bastion.platform import Platform
from conftest import ECHO_CONFIG, LiveServer, ServedApp, serving, write_config


class Upstream:
    """A real OpenAI-compatible server whose behaviour a test sets: ok, fail (500), hang,
    garbage (a 200 that is not JSON) or broken (a stream that breaks after one chunk)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            self.calls += 1
            body = await request.json()
            if self.mode == "fail":
                return JSONResponse({"error": "boom"}, status_code=500)
            if self.mode == "hang":
                time.sleep(3)  # longer than the model's timeout_s
            if self.mode == "garbage":
                return PlainTextResponse("<html>gateway error</html>")
            if body.get("stream"):
                return StreamingResponse(self._chunks(), media_type="text/event-stream")
            return JSONResponse(
                {
                    "choices": [
                        {"message": {"content": "remote says hi"}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 3},
                }
            )

        self.served = ServedApp(app)
        self.port = self.served.port

    async def _chunks(self) -> Any:
        first = {"choices": [{"delta": {"content": "remote "}, "finish_reason": None}]}
        yield f"data: {json.dumps(first)}\n\n"
        if self.mode == "broken":
            yield "data: {not json\n\n"
            return
        last = {"choices": [{"delta": {"content": "says hi"}, "finish_reason": "stop"}]}
        yield f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n"

    def __enter__(self) -> Upstream:
        self.served.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.served.__exit__(*exc)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture
def gateway(home: Path, upstream: Upstream) -> Iterator[LiveServer]:
    config = copy.deepcopy(ECHO_CONFIG)
    config["models"].append(
        {
            "name": "remote", "backend": "openai", "base_url": f"http://127.0.0.1:{upstream.port}/v1",
            "timeout_s": 1.0, "retries": 1, "breaker_failures": 2, "breaker_reset_s": 1.0,
        }
    )  # fmt: skip
    config["apps"] += [
        {"name": "direct", "model": "remote"},
        {"name": "resilient", "model": "remote", "fallback_models": ["echo"]},
        {"name": "premium-only", "model": "remote", "fallback_models": ["echo-premium"]},
    ]
    config["access"]["policies"]["user"]["apps"] += ["direct", "resilient", "premium-only"]
    config["access"]["policies"]["user"]["models"] += ["remote"]
    platform = Platform.open(home, write_config(home, config))
    with LiveServer(platform) as live:
        yield live
    platform.close()


def ask(server: LiveServer, app: str, stream: bool = False) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/chat/completions",
        json={"app": app, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
        headers={"Authorization": f"Bearer {server.key('acme', 'bob', 'user')}"},
        timeout=30,
    )


def last_record(server: LiveServer) -> dict[str, Any]:
    return server.platform.audit.search(AuditQuery(tenant="acme", limit=1)).records[0]


def test_a_failing_upstream_is_retried_then_reported_then_failed_fast(
    gateway: LiveServer, upstream: Upstream
) -> None:
    upstream.mode = "fail"
    for _ in range(2):  # two failed requests in a row (each tried twice) open the circuit
        answer = ask(gateway, "direct")
        assert answer.status_code == 502 and "failed after 2 attempts" in answer.text
    assert upstream.calls == 4 and last_record(gateway)["status"] == "error"
    fast = ask(gateway, "direct")
    assert fast.status_code == 503 and fast.json()["error"]["code"] == "model_unavailable"
    assert 1 <= int(fast.headers["retry-after"]) <= 1 and upstream.calls == 4  # not called
    upstream.mode = "ok"
    time.sleep(1.1)  # the circuit half-opens: one trial request decides
    assert ask(gateway, "direct").json()["choices"][0]["message"]["content"] == "remote says hi"
    assert gateway.platform.registry.breaker("remote").state == "closed"


def test_a_hanging_upstream_times_out_with_a_clear_error(
    gateway: LiveServer, upstream: Upstream
) -> None:
    upstream.mode = "hang"
    started = time.monotonic()
    answer = ask(gateway, "direct")
    assert answer.status_code == 502 and "Timeout" in answer.text
    assert time.monotonic() - started < 10  # 2 attempts of 1 s and a backoff, not forever


def test_a_malformed_answer_and_a_broken_stream_are_errors_not_garbage(
    gateway: LiveServer, upstream: Upstream
) -> None:
    upstream.mode = "garbage"
    answer = ask(gateway, "direct")
    assert answer.status_code == 502 and "invalid answer" in answer.text
    upstream.mode = "broken"
    streamed = ask(gateway, "direct", stream=True)
    assert "broke" in streamed.text and "[DONE]" not in streamed.text  # an error event
    assert last_record(gateway)["status"] == "error"


def test_an_app_with_fallbacks_answers_from_the_next_model(
    gateway: LiveServer, upstream: Upstream
) -> None:
    upstream.mode = "fail"
    answer = ask(gateway, "resilient")
    assert answer.status_code == 200
    body = answer.json()
    assert body["choices"][0]["message"]["content"] == "hi"  # the echo model's answer
    assert body["bastion"]["model"] == "echo"
    assert body["bastion"]["fallback"][0]["model"] == "remote"
    record = last_record(gateway)
    assert record["model"] == "echo" and record["extra"]["fallback"][0]["model"] == "remote"
    streamed = ask(gateway, "resilient", stream=True)
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    assert '"fallback"' in streamed.text and last_record(gateway)["model"] == "echo"
    # The circuit is open now: the fallback answers without waiting on the upstream.
    calls = upstream.calls
    assert ask(gateway, "resilient").status_code == 200 and upstream.calls == calls


def test_a_fallback_the_person_may_not_use_is_not_tried(
    gateway: LiveServer, upstream: Upstream
) -> None:
    upstream.mode = "fail"
    answer = ask(gateway, "premium-only")  # ECHO_CONFIG's users may not use echo-premium
    assert answer.status_code == 502 and "fallback" not in answer.text


def test_the_circuit_opens_half_opens_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker("m", failures=2, reset_s=10, clock=lambda: now[0])

    def fail() -> None:
        with pytest.raises(BackendError), breaker.guard():
            raise BackendError("down")

    fail()
    assert breaker.state == "closed"
    fail()
    assert breaker.state == "open"
    with pytest.raises(ModelUnavailable, match="retry in 10 s") as refused:
        breaker.before()
    assert refused.value.retry_after == 10
    now[0] = 10.0
    assert breaker.state == "half-open"
    breaker.before()  # the one trial
    with pytest.raises(ModelUnavailable):
        breaker.before()  # everyone else waits for it
    breaker.failed()  # the trial failed: open again, for another reset_s
    assert breaker.state == "open"
    now[0] = 20.0
    with pytest.raises(BadRequest), breaker.guard():  # the server answered: not a failure
        raise BadRequest("400 from the server")
    assert breaker.state == "half-open"
    with breaker.guard():
        pass
    assert breaker.state == "closed"


def test_a_circuit_that_never_opens() -> None:
    breaker = CircuitBreaker("m", failures=0, reset_s=1)
    for _ in range(20):
        breaker.failed()
    assert breaker.state == "closed"


def test_requests_beyond_the_servers_limit_are_refused_at_once(
    home: Path, upstream: Upstream
) -> None:
    """Two requests wait on a hanging model; with server.max_in_flight 2, a third is told
    to come back (503, Retry-After) at once instead of queueing for a worker thread."""
    upstream.mode = "hang"
    config = copy.deepcopy(ECHO_CONFIG)
    config["server"] = {"max_in_flight": 2}
    url = f"http://127.0.0.1:{upstream.port}/v1"
    config["models"].append({"name": "remote", "backend": "openai", "base_url": url,
                             "timeout_s": 5.0, "retries": 0})  # fmt: skip
    config["apps"].append({"name": "direct", "model": "remote"})
    config["access"]["policies"]["user"]["apps"] += ["direct"]
    config["access"]["policies"]["user"]["models"] += ["remote"]
    with serving(home, config) as server, ThreadPoolExecutor(2) as pool:
        held = [pool.submit(ask, server, "direct") for _ in range(2)]
        deadline = time.monotonic() + 10
        while in_flight(server) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        refused = ask(server, "direct")
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert time.monotonic() - started < 1.0  # at once, not after the others
        assert "server.max_in_flight" in refused.json()["error"]["message"]
        assert httpx.get(server.url + "/healthz").status_code == 200  # always answered
        for request in held:  # they end their own way (answered, or the model timed out)
            request.result()


def in_flight(server: LiveServer) -> float:
    metrics = httpx.get(server.url + "/metrics").text
    line = next(x for x in metrics.splitlines() if x.startswith("bastion_http_requests_in_flight "))
    return float(line.split()[1])


def ask_until_refused(server: LiveServer, key: str) -> list[httpx.Response]:
    answers = []
    for n in range(60):
        answers.append(
            httpx.post(
                server.url + "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": f"question {n} " * 40}]},
                headers={"Authorization": f"Bearer {key}"},
            )
        )
        if answers[-1].status_code != 200:
            break
    return answers


def assert_refused_and_nothing_lost(server: LiveServer, answers: list[httpx.Response]) -> None:
    refused = answers[-1]
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "audit_unavailable"
    assert "nothing of it kept" in refused.text
    answered = [a.json()["bastion"]["trace_id"] for a in answers if a.status_code == 200]
    for trace_id in answered:  # every answer a client got has its record
        assert server.platform.audit.get(trace_id)["status"] == "ok"
    assert server.platform.audit.verify().ok


def answers_again(server: LiveServer, key: str) -> bool:
    after = httpx.post(
        server.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "room again"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    return after.status_code == 200 and server.platform.audit.verify().ok


def test_a_full_disk_refuses_requests_and_corrupts_nothing(server: LiveServer) -> None:
    """SQLite stopped from growing (max_page_count) stands in for a full disk."""
    engine = server.platform.db.engine
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    def full_disk(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(engine, "connect", full_disk)
    engine.dispose()  # every connection from now on sees the full disk
    key = server.key("acme", "bob", "user")  # made before the disk fills
    try:
        answers = ask_until_refused(server, key)
    finally:
        event.remove(engine, "connect", full_disk)
        engine.dispose()
    assert_refused_and_nothing_lost(server, answers)
    assert answers_again(server, key)


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 4 MB tmpfs: a real file system that runs out of space (mounting needs root). Not
    under pytest's private tmp_path: PostgreSQL's own user must reach it."""
    disk = Path(tempfile.mkdtemp(prefix="bastion-disk-"))
    disk.chmod(0o755)
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(disk)]
    if subprocess.run(mount, capture_output=True).returncode:
        disk.rmdir()
        pytest.skip("mounting a small tmpfs needs root")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)
    disk.rmdir()


def test_a_full_disk_under_postgresql_refuses_requests_and_corrupts_nothing(
    postgres_url: str, small_disk: Path, tmp_path: Path
) -> None:
    """The audit table in a PostgreSQL tablespace on a small file system that fills up:
    the server's own "could not extend file: No space left on device"."""
    from sqlalchemy import create_engine, make_url, text

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        data_directory = conn.execute(text("SHOW data_directory")).scalar_one()
    owner = Path(data_directory).stat()
    room = small_disk / "tablespace"
    room.mkdir()
    os.chown(room, owner.st_uid, owner.st_gid)
    name = f"full{os.getpid()}"  # a database of its own (others' tables live in public)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
        conn.execute(text(f"CREATE TABLESPACE {name} LOCATION '{room}'"))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    home = tmp_path / "home"
    config = copy.deepcopy(ECHO_CONFIG) | {"storage": {"url": url}}
    platform = Platform.open(home, write_config(home, config))
    try:
        with platform.db.engine.begin() as conn:  # the audit trail and its indexes move there
            conn.execute(text(f"ALTER TABLE audit_records SET TABLESPACE {name}"))
            indexes = conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_records'")
            ).scalars()
            for index in list(indexes):
                conn.execute(text(f'ALTER INDEX "{index}" SET TABLESPACE {name}'))
        with LiveServer(platform) as server:
            key = server.key("acme", "bob", "user")
            assert answers_again(server, key)
            filler = small_disk / "filler"
            with filler.open("wb") as f:  # leave about 16 KB: two or three pages
                free = os.statvfs(small_disk)
                f.write(b"\0" * (free.f_bavail * free.f_frsize - 16_384))
            answers = ask_until_refused(server, key)
            assert_refused_and_nothing_lost(server, answers)
            assert "No space left on device" in answers[-1].text
            filler.unlink()
            assert answers_again(server, key)
    finally:
        platform.close()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
            conn.execute(text(f"DROP TABLESPACE {name}"))
        admin.dispose()


def test_an_idle_connection_stays_open_for_keep_alive_s(home: Path) -> None:
    """A client may reuse an idle connection until the server's keep-alive ends; the server
    closes it only after that (clients and balancers expire theirs sooner by default)."""
    config = copy.deepcopy(ECHO_CONFIG) | {"server": {"keep_alive_s": 2}}
    platform = Platform.open(home, write_config(home, config))
    request = b"GET /healthz HTTP/1.1\r\nHost: bastion\r\n\r\n"
    try:
        with (
            LiveServer(platform) as server,
            socket.create_connection(("127.0.0.1", server.port)) as s,
        ):
            s.settimeout(5)
            for _ in range(2):  # the same connection, idle 1 s in between
                s.sendall(request)
                assert s.recv(4096).startswith(b"HTTP/1.1 200")
                time.sleep(1)
            time.sleep(2)  # 3 s idle: past keep_alive_s, the server has closed it
            assert s.recv(4096) == b""
    finally:
        platform.close()
