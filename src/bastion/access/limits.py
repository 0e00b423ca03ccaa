"""Rate limits and token budgets per API key and per tenant (`access.limits`).

Counters live in the database (`usage_counters`), one row per subject and window, so
every replica enforces the same totals. A request takes its place in the minute's count
before it runs (refused with 429 once the limit is reached, the count unchanged); its
tokens are added to the day's count when it is done, and a request starts only while the
day's budget is not spent (so one answer may overrun it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from bastion.access.principal import Principal
from bastion.config import LimitsConfig
from bastion.errors import RateLimited
from bastion.storage import Database
from bastion.storage.tables import UsageCounter

WINDOWS = {"minute": timedelta(minutes=1), "day": timedelta(days=1)}


@dataclass(frozen=True)
class Limit:
    scope: str  # key or tenant
    window: str  # minute or day
    kind: str  # requests or tokens
    most: int


class Limits:
    def __init__(self, db: Database, config: LimitsConfig) -> None:
        self._db = db
        self._pruned = ""  # the minute this process last removed finished windows
        self._limits = [
            Limit(scope, window, kind, most)
            for scope, window, kind, most in (
                ("key", "minute", "requests", config.key_requests_per_minute),
                ("tenant", "minute", "requests", config.tenant_requests_per_minute),
                ("key", "day", "tokens", config.key_tokens_per_day),
                ("tenant", "day", "tokens", config.tenant_tokens_per_day),
            )
            if most is not None
        ]

    @property
    def active(self) -> bool:
        return bool(self._limits)

    def admit(self, principal: Principal, now: datetime | None = None) -> None:
        """Count the request, or refuse it (429) when a limit of its key or tenant is spent."""
        now = now or datetime.now(UTC)
        with self._db.transaction(write_lock=True) as conn:
            self._prune(conn, now)
            for limit in self._limits:
                subject = _subject(principal, limit.scope)
                if subject is None:
                    continue  # an operator acting as a user (--as) has no key
                start, ends = _window(limit.window, now)
                row = conn.execute(
                    select(UsageCounter.requests, UsageCounter.tokens)
                    .where(*_key(limit.scope, subject, limit.window, start))
                    .with_for_update()
                ).one_or_none()
                used = (
                    0 if row is None else (row.requests if limit.kind == "requests" else row.tokens)
                )
                if used >= limit.most:
                    raise RateLimited(
                        f"the {limit.scope}'s limit of {limit.most:,} {limit.kind} a "
                        f"{limit.window} is reached; it resets at {ends.isoformat()} "
                        "(access.limits)",
                        retry_after=max(1, int((ends - now).total_seconds()) + 1),
                    )
            for scope in {limit.scope for limit in self._limits if limit.window == "minute"}:
                subject = _subject(principal, scope)
                if subject is not None:
                    _add(conn, self._db.is_sqlite, scope, subject, "minute", now, requests=1)

    def _prune(self, conn: Connection, now: datetime) -> None:
        """Once a minute: drop minute windows over an hour old and days over two."""
        minute, _ = _window("minute", now)
        if minute == self._pruned:
            return
        self._pruned = minute
        for window, keep in (("minute", timedelta(hours=1)), ("day", timedelta(days=2))):
            oldest, _ = _window(window, now - keep)
            conn.execute(
                delete(UsageCounter).where(
                    UsageCounter.window == window, UsageCounter.start < oldest
                )
            )

    def spend(self, principal: Principal, tokens: int, now: datetime | None = None) -> None:
        """Add a finished request's tokens to its key's and tenant's day."""
        now = now or datetime.now(UTC)
        scopes = {limit.scope for limit in self._limits if limit.kind == "tokens"}
        if not scopes or tokens <= 0:
            return
        with self._db.transaction(write_lock=True) as conn:
            for scope in scopes:
                subject = _subject(principal, scope)
                if subject is not None:
                    _add(conn, self._db.is_sqlite, scope, subject, "day", now, tokens=tokens)


def _subject(principal: Principal, scope: str) -> str | None:
    return principal.key_id if scope == "key" else principal.tenant


def _window(window: str, now: datetime) -> tuple[str, datetime]:
    """The window's start (as stored) and when it ends."""
    start = now.replace(second=0, microsecond=0)
    if window == "day":
        start = start.replace(hour=0, minute=0)
    return start.strftime("%Y-%m-%dT%H:%M:%S"), start + WINDOWS[window]


def _key(scope: str, subject: str, window: str, start: str) -> list[ColumnElement[bool]]:
    return [
        UsageCounter.scope == scope,
        UsageCounter.subject == subject,
        UsageCounter.window == window,
        UsageCounter.start == start,
    ]


def _add(
    conn: Connection,
    is_sqlite: bool,
    scope: str,
    subject: str,
    window: str,
    now: datetime,
    *,
    requests: int = 0,
    tokens: int = 0,
) -> None:
    """Add to a counter, creating it (an upsert: two replicas may start a window at once)."""
    start, _ = _window(window, now)
    insert = (sqlite.insert if is_sqlite else postgresql.insert)(UsageCounter).values(
        scope=scope, subject=subject, window=window, start=start, requests=requests, tokens=tokens
    )
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["scope", "subject", "window", "start"],
            set_={
                "requests": UsageCounter.requests + requests,
                "tokens": UsageCounter.tokens + tokens,
            },
        )
    )
