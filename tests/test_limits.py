"""Rate limits and token budgets per API key and per tenant: counted in the database,
refused with 429 and Retry-After over real HTTP, windows that turn, and what is not
counted (refused requests, operators acting without a key)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bastion.access import Principal
from bastion.access.limits import Limits
from bastion.config import LimitsConfig
from bastion.errors import RateLimited
from bastion.models import ChatMessage, GenerationParams
from bastion.pipeline import ChatRequest
from bastion.platform import Platform
from bastion.storage.tables import UsageCounter
from conftest import ECHO_CONFIG, LiveServer, write_config


def _limited(home: Path, **limits: int) -> Platform:
    config = {**ECHO_CONFIG, "access": {**ECHO_CONFIG["access"], "limits": limits}}
    return Platform.open(home, write_config(home, config))


def _ask(server: LiveServer, key: str, text: str = "hello there") -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_a_key_over_its_requests_a_minute_gets_429_with_retry_after(home: Path) -> None:
    platform = _limited(home, key_requests_per_minute=2, tenant_requests_per_minute=3)
    first = platform.access.create_key(tenant="acme", user="a", role="user").secret
    second = platform.access.create_key(tenant="acme", user="b", role="user").secret
    other = platform.access.create_key(tenant="globex", user="c", role="user").secret
    try:
        with LiveServer(platform) as server:
            answers = [_ask(server, first) for _ in range(3)]
            same_tenant = [_ask(server, second) for _ in range(2)]
            elsewhere = _ask(server, other)
            audited = platform.audit.recent("acme", 50)
    finally:
        platform.close()
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert "key's limit of 2 requests a minute is reached; it resets at" in refused.text
    assert refused.json()["error"]["type"] == "rate_limit_error"
    # The tenant's third request of the minute passes, its fourth does not.
    assert [a.status_code for a in same_tenant] == [200, 429]
    assert "tenant's limit of 3 requests a minute" in same_tenant[1].text
    assert elsewhere.status_code == 200  # another tenant's count is its own
    assert sorted(r["status"] for r in audited) == ["ok"] * 3 + ["rejected"] * 2


def test_a_tenant_over_its_tokens_a_day_is_refused_until_the_day_turns(home: Path) -> None:
    platform = _limited(home, tenant_tokens_per_day=10)
    key = platform.access.create_key(tenant="acme", user="a", role="user").secret
    try:
        with LiveServer(platform) as server:
            spent = [_ask(server, key, "four words right here") for _ in range(3)]
    finally:
        platform.close()
    # 4 prompt + 4 answer tokens a request: the second starts under 10 and overruns it.
    assert [a.status_code for a in spent] == [200, 200, 429]
    assert "tenant's limit of 10 tokens a day" in spent[2].text
    assert int(spent[2].headers["Retry-After"]) <= 86_401


def test_windows_turn_and_old_ones_are_removed(platform: Platform) -> None:
    limits = Limits(platform.db, LimitsConfig(key_requests_per_minute=2))
    ana = Principal("acme", "ana", "user", key_id="k1")

    def at(hms: str) -> datetime:
        return datetime.fromisoformat(f"2026-12-07T{hms}").replace(tzinfo=UTC)

    limits.admit(ana, at("12:00:01"))
    limits.admit(ana, at("12:00:30"))
    with pytest.raises(RateLimited) as refused:
        limits.admit(ana, at("12:00:59"))
    assert refused.value.retry_after == 2
    limits.admit(ana, at("12:01:00"))  # a new minute
    limits.admit(Principal("acme", "op", "admin"), at("12:01:01"))  # no key: no key limit
    limits.admit(ana, at("14:00:00"))  # an hour on: the 12:00 and 12:01 windows go
    with platform.db.session() as s:
        starts = sorted(row.start for row in s.query(UsageCounter).all())
    assert starts == ["2026-12-07T14:00:00"]


def test_no_limits_no_counting(platform: Platform) -> None:
    key = platform.access.create_key(tenant="acme", user="a", role="user").secret
    request = ChatRequest([ChatMessage("user", "hi")], GenerationParams(), "echo", "chat")
    platform.pipeline.complete(platform.pipeline.prepare(request, key))
    with platform.db.session() as s:
        assert s.query(UsageCounter).count() == 0
