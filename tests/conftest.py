"""Shared fixtures: isolated BASTION_HOMEs, a real server on a free port, a real PostgreSQL."""

from __future__ import annotations

import copy
import json
import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
import yaml

from bastion.config import BastionConfig, load_config
from bastion.demo import TEMPLATE, init_demo, prepare_demo_data
from bastion.models.base import BackendSpec, Generation, StreamDelta
from bastion.platform import Platform
from bastion.plugins import hookimpl, registry
from bastion.server import create_app, uvicorn_config

#: What the `scripted` model answers next, in order: a test queues the exact answers an
#: app's model calls should get (a segment specification, ...), whatever the prompt.
SCRIPT: deque[str] = deque()


class ScriptedBackend:
    """A deterministic test double for apps whose model must answer in a given shape."""

    def __init__(self, info: Any) -> None:
        self.info = info

    def generate(self, messages: Any, params: Any) -> Generation:
        if not SCRIPT:
            raise AssertionError("the scripted model was asked more than the test queued")
        text = SCRIPT.popleft()
        return Generation(text, 10, len(text.split()))

    def stream(self, messages: Any, params: Any) -> Iterator[StreamDelta]:
        answer = self.generate(messages, params)
        yield StreamDelta(answer.text)
        yield StreamDelta("", "stop", answer.prompt_tokens, answer.completion_tokens)


class _ScriptedPlugin:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register(
            BackendSpec(
                name="scripted",
                description="a test double answering what the test queued",
                build=lambda config, setup: ScriptedBackend(setup.info),
            )
        )


SCRIPTED_PLUGIN = _ScriptedPlugin()
registry.register(SCRIPTED_PLUGIN, "tests-scripted-backend")

REPO = Path(__file__).resolve().parents[1]
# The embedded model is converted once per checkout and shared by every test run.
os.environ.setdefault("BASTION_MODEL_CACHE", str(REPO / ".cache" / "models"))

ECHO_CONFIG: dict[str, Any] = {
    "models": [
        {"name": "echo", "backend": "echo", "context_length": 4096, "price": {"input_per_1m": 1.0}},
        {"name": "echo-premium", "backend": "echo", "price": {"output_per_1m": 30.0}},
    ],
    "apps": [
        {"name": "chat"},
        {"name": "concise", "model": "echo", "system_prompt": "Answer briefly."},
        {"name": "finance"},
    ],
    "access": {
        "policies": {
            "admin": {"models": ["*"], "apps": ["*"]},
            "developer": {"models": ["*"], "apps": ["chat", "concise"]},
            "user": {"models": ["echo"], "apps": ["chat", "concise"]},
        }
    },
    "guards": {
        "max_input_chars": 2000,
        "deny_list": {"terms": ["project nightingale"], "action": "block"},
    },
}


def write_config(home: Path, data: dict[str, Any]) -> BastionConfig:
    home.mkdir(parents=True, exist_ok=True)
    (home / "bastion.yaml").write_text(yaml.safe_dump(data))
    return load_config(home / "bastion.yaml", environ={})


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("BASTION_HOME", str(path))
    return path


@pytest.fixture
def platform(home: Path) -> Iterator[Platform]:
    p = Platform.open(home, write_config(home, ECHO_CONFIG))
    yield p
    p.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(home: Path, config: dict[str, Any]) -> Iterator[LiveServer]:
    """A platform on `config` in `home`, served; closed afterwards."""
    platform = Platform.open(home, write_config(home, config))
    try:
        with LiveServer(platform) as live:
            yield live
    finally:
        platform.close()


@contextmanager
def remote_gateway(home: Path, upstream_port: int) -> Iterator[LiveServer]:
    """A Bastion server on ECHO_CONFIG with one more model, `remote`: an OpenAI-compatible
    upstream on `upstream_port`, which users may use."""
    config = copy.deepcopy(ECHO_CONFIG)
    url = f"http://127.0.0.1:{upstream_port}/v1"
    config["models"].append({"name": "remote", "backend": "openai", "base_url": url})
    config["access"]["policies"]["user"]["models"] += ["remote"]
    with serving(home, config) as live:
        yield live


def user_client(server: LiveServer) -> openai.OpenAI:
    """The official client as acme/bob, a user, without retries."""
    key = server.key("acme", "bob", "user")
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def streamed_logprobs(chunks: list[Any]) -> list[Any]:
    """The token log-probabilities a stream's chunks carried (openai client objects)."""
    return [
        token
        for chunk in chunks
        if chunk.choices and chunk.choices[0].logprobs
        for token in chunk.choices[0].logprobs.content or []
    ]


class ServedApp:
    """Any ASGI app served by uvicorn on a free port in a background thread (a test's own
    upstream model server, say)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self._server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ServedApp:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(5)


class LiveServer:
    """The real app served by uvicorn on a free port, in a background thread."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn_config(
            create_app(platform), platform.config.server, "127.0.0.1", self.port
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.platform.pipeline.load_guards()  # as `bastion serve` does before listening
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def key(self, tenant: str = "acme", user: str = "alice", role: str = "admin") -> str:
        return self.platform.access.create_key(tenant=tenant, user=user, role=role).secret


def ask_default_and_app(
    home: Path, app: dict[str, Any], text: str
) -> tuple[httpx.Response, httpx.Response]:
    """The responses to `text` from the default app and from `app` (ECHO_CONFIG's apps plus
    it, e.g. one that overrides a guard's action), through the real server."""
    config = copy.deepcopy(ECHO_CONFIG)
    config["apps"].append(app)
    platform = Platform.open(home, write_config(home, config))
    try:
        with LiveServer(platform) as server:
            headers = {"Authorization": f"Bearer {server.key()}"}
            url = server.url + "/v1/chat/completions"
            messages = [{"role": "user", "content": text}]
            default = httpx.post(url, json={"messages": messages}, headers=headers)
            overridden = httpx.post(
                url, json={"app": app["name"], "messages": messages}, headers=headers
            )
    finally:
        platform.close()
    return default, overridden


@pytest.fixture
def server(platform: Platform) -> Iterator[LiveServer]:
    with LiveServer(platform) as live:
        yield live


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL 16 (from the pgserver wheel) on a unix socket."""
    pgserver = pytest.importorskip("pgserver")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("xdg")))
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    server.psql("CREATE DATABASE bastion_test;")
    uri = server.get_uri("bastion_test")
    yield uri.replace("postgresql://", "postgresql+psycopg://", 1)
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on SQLite and on PostgreSQL (a fresh schema each time)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    from sqlalchemy import create_engine, text

    schema = f"t{os.getpid()}_{time.monotonic_ns()}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    # public stays on the path: extensions such as pgvector live there once created.
    yield f"{base}{sep}options=-csearch_path%3D{schema},public"
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Training tests run faster on one thread than on two of a shared, busy 2-core VM."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, dict[str, Any]]]:
    """The demo company (scale 0.3) ingested, linked and indexed once for the whole run,
    with the echo model: the demo users' keys, the setup summary and BASTION_HOME."""
    home = tmp_path_factory.mktemp("demo")
    config = yaml.safe_load(TEMPLATE.read_text())
    config["models"] = [  # the model is not under test
        {"name": "echo", "backend": "echo"},
        {"name": "scripted", "backend": "scripted"},
    ]
    config["access"]["policies"]["user"]["models"] = ["*"]
    config["apps"].append(
        {"name": "strict", "sources": ["kb"], "min_support": 0.6, "support_action": "block"}
    )
    config["access"]["policies"]["user"]["apps"].append("strict")
    (home / "bastion.yaml").write_text(yaml.safe_dump(config))
    platform = Platform.open(home, load_config(home / "bastion.yaml", environ={}))
    keys = init_demo(home, platform.access)
    summary = prepare_demo_data(platform, scale=0.3)
    yield platform, {"keys": keys, "summary": summary, "home": home}
    platform.close()


def hf_shaped_folder(
    folder: Path, model_type: str, layers: int, hidden: int, heads: int, kv_heads: int,
    ffn: int, vocab: int, context: int, tied: bool,
) -> Path:  # fmt: skip
    """A Hugging Face weights folder of a model's shape: its config.json and a safetensors
    header only (the planner reads the header, so no weights are written)."""
    folder.mkdir()
    kv = kv_heads * (hidden // heads)
    config = {
        "model_type": model_type, "num_hidden_layers": layers, "hidden_size": hidden,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "intermediate_size": ffn,
        "max_position_embeddings": context, "vocab_size": vocab,
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    shapes = {"embed": [vocab, hidden]} | ({} if tied else {"head": [vocab, hidden]})
    for n in range(layers):
        shapes |= {
            f"{n}.q": [hidden, hidden], f"{n}.k": [kv, hidden], f"{n}.v": [kv, hidden],
            f"{n}.o": [hidden, hidden], f"{n}.gate": [ffn, hidden], f"{n}.up": [ffn, hidden],
            f"{n}.down": [hidden, ffn],
        }  # fmt: skip
    header = {n: {"dtype": "BF16", "shape": s, "data_offsets": [0, 0]} for n, s in shapes.items()}
    raw = json.dumps(header).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    return folder
