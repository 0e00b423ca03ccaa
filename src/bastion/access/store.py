"""Tenants, users and API keys in the metadata database.

A key looks like `bst_<id>_<secret>`. Only a salted SHA-256 of the secret is stored: the
secret holds 256 random bits, so a slow password hash would add latency to every request
without adding protection. The id lets us find the row without scanning.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bastion.access.principal import ROLES, Principal
from bastion.errors import AuthenticationFailed, BadRequest, NotFound
from bastion.storage import Database
from bastion.storage.tables import ApiKey, Tenant, User

KEY_PREFIX = "bst"
_KEY_RE = re.compile(r"^bst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_RESOLVE = (
    select(
        ApiKey.id.label("key_id"),
        ApiKey.salt,
        ApiKey.hash,
        ApiKey.revoked_at,
        ApiKey.expires_at,
        User.tenant_id,
        User.name,
        User.role,
        User.groups,
    )
    .join(User, ApiKey.user_id == User.id)
    .where(ApiKey.id == bindparam("key_id"))
)


@dataclass(frozen=True)
class CreatedKey:
    """A new key; `secret` is shown once and never stored."""

    key_id: str
    secret: str
    principal: Principal


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant: str
    user: str
    role: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None


def _hash(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def _utc(moment: datetime) -> datetime:
    """SQLite gives stored datetimes back without their zone; they were stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _check_name(kind: str, value: str) -> None:
    if not _NAME_RE.match(value):
        raise BadRequest(
            f"{kind} '{value}' is not valid: use 1-64 letters, digits, '.', '_', '@' or '-'"
        )


class AccessStore:
    """Creates, resolves and revokes API keys; keeps tenants and users.

    Resolved keys are remembered for `cache_seconds` (a database read per request is
    a third of the gateway's own cost). Revoking through this store takes effect at
    once; a revocation made by another replica takes effect within `cache_seconds`.
    """

    def __init__(
        self, db: Database, *, cache_seconds: float = 5.0, cache_size: int = 10_000
    ) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._cache_lock = threading.Lock()

    def create_key(
        self,
        *,
        tenant: str,
        user: str,
        role: str,
        groups: list[str] | None = None,
        label: str | None = None,
        expires_at: datetime | None = None,
    ) -> CreatedKey:
        """Create a key for `user` in `tenant`, creating both if they do not exist yet; it
        stops working at `expires_at` when one is given."""
        _check_name("tenant", tenant)
        _check_name("user", user)
        if role not in ROLES:
            raise BadRequest(f"role '{role}' is unknown; use one of {', '.join(ROLES)}")
        now = datetime.now(UTC)
        with self._db.session(write_lock=True) as s:
            if s.get(Tenant, tenant) is None:
                s.add(Tenant(id=tenant, created_at=now))
                s.flush()
            row = s.scalar(select(User).where(User.tenant_id == tenant, User.name == user))
            if row is None:
                row = User(tenant_id=tenant, name=user, role=role, groups=[], created_at=now)
                s.add(row)
            row.role = role
            if groups is not None:
                row.groups = sorted(set(groups))
            s.flush()
            key_id = secrets.token_hex(8)
            secret = secrets.token_urlsafe(32)
            salt = secrets.token_hex(16)
            s.add(
                ApiKey(
                    id=key_id,
                    user_id=row.id,
                    salt=salt,
                    hash=_hash(salt, secret),
                    label=label,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            principal = Principal(tenant, user, role, tuple(row.groups), key_id)
        self._forget(lambda p: (p.tenant, p.user) == (tenant, user))  # role or groups may change
        return CreatedKey(key_id, f"{KEY_PREFIX}_{key_id}_{secret}", principal)

    def resolve(self, presented: str | None) -> Principal:
        """Turn a presented key into its Principal, or raise AuthenticationFailed."""
        if not presented:
            raise AuthenticationFailed(
                "missing API key: send 'Authorization: Bearer <key>' "
                "(create one with `bastion keys create`)"
            )
        match = _KEY_RE.match(presented)
        if not match:
            raise AuthenticationFailed("malformed API key: expected the form bst_<id>_<secret>")
        cached = self._cache.get(presented)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        key_id, secret = match.groups()
        with self._db.read() as conn:  # Core, not ORM: this runs on every request
            row = conn.execute(_RESOLVE, {"key_id": key_id}).first()
        if row is None or not hmac.compare_digest(row.hash, _hash(row.salt, secret)):
            raise AuthenticationFailed("invalid API key")
        principal, left = _valid(row)
        if self._cache_seconds > 0:
            with self._cache_lock:
                if len(self._cache) >= self._cache_size:
                    self._cache.pop(next(iter(self._cache)))  # oldest entry first
                # never remembered past its expiry
                until = time.monotonic() + min(self._cache_seconds, left)
                self._cache[presented] = (until, principal)
        return principal

    def key_principal(self, key_id: str) -> Principal:
        """The principal of a key verified once before (a console session's), checked again
        for revocation and expiry; raises AuthenticationFailed when it no longer works."""
        with self._db.read() as conn:
            row = conn.execute(_RESOLVE, {"key_id": key_id}).first()
        if row is None:
            raise AuthenticationFailed("the key this session signed in with no longer exists")
        return _valid(row)[0]

    def rotate(self, key_id: str, overlap: timedelta, tenant: str | None = None) -> CreatedKey:
        """A new key for the same user, role and label; the old one keeps working for
        `overlap` (so clients can switch without an outage), then expires."""
        with self._db.session() as s:
            old, user = _key_of(s, key_id, tenant)
        if old.revoked_at is not None:
            raise BadRequest(f"key '{key_id}' is revoked; create a new key instead of rotating")
        new = self.create_key(
            tenant=user.tenant_id, user=user.name, role=user.role, label=old.label,
            expires_at=old.expires_at,
        )  # fmt: skip
        ends = datetime.now(UTC) + overlap
        with self._db.session(write_lock=True) as s:
            row = s.get(ApiKey, key_id)
            assert row is not None
            if row.expires_at is None or _utc(row.expires_at) > ends:
                row.expires_at = ends
        self._forget(lambda p: p.key_id == key_id)
        return new

    def principal(self, handle: str) -> Principal:
        """The user named `tenant/user` (or `user`, when one tenant has that name), for
        operators acting as someone on the server machine (`bastion search --as`)."""
        tenant, _, user = handle.rpartition("/")
        query = select(User).where(User.name == user)
        if tenant:
            query = query.where(User.tenant_id == tenant)
        with self._db.session() as s:
            rows = list(s.scalars(query))
        if not rows:
            raise NotFound(f"no user '{handle}'; create one with `bastion keys create`")
        if len(rows) > 1:
            tenants = ", ".join(sorted(r.tenant_id for r in rows))
            raise BadRequest(f"'{user}' exists in several tenants ({tenants}); use TENANT/{user}")
        row = rows[0]
        return Principal(row.tenant_id, row.name, row.role, tuple(row.groups))

    def list_keys(self, tenant: str | None = None) -> list[KeyInfo]:
        query = (
            select(ApiKey, User).join(User, ApiKey.user_id == User.id).order_by(ApiKey.created_at)
        )
        if tenant is not None:
            query = query.where(User.tenant_id == tenant)
        with self._db.session() as s:
            rows = s.execute(query).all()
        return [
            KeyInfo(
                k.id, u.tenant_id, u.name, u.role, k.label, k.created_at, k.revoked_at,
                k.expires_at and _utc(k.expires_at),
            )
            for k, u in rows
        ]  # fmt: skip

    def revoke(self, key_id: str, tenant: str | None = None) -> None:
        """Revoke a key by id; with `tenant`, only a key of that tenant."""
        with self._db.session(write_lock=True) as s:
            key, _ = _key_of(s, key_id, tenant)
            if key.revoked_at is None:
                key.revoked_at = datetime.now(UTC)
        self._forget(lambda p: p.key_id == key_id)

    def _forget(self, match: Callable[[Principal], bool]) -> None:
        with self._cache_lock:
            self._cache = {k: v for k, v in self._cache.items() if not match(v[1])}


def _key_of(s: Session, key_id: str, tenant: str | None) -> tuple[ApiKey, User]:
    """The key and its user; with `tenant`, another tenant's key is not found."""
    found = s.execute(
        select(ApiKey, User).join(User, ApiKey.user_id == User.id).where(ApiKey.id == key_id)
    ).first()
    if found is None or (tenant is not None and found[1].tenant_id != tenant):
        raise NotFound(f"no API key with id '{key_id}'; `bastion keys list` shows them")
    return found[0], found[1]


def _valid(row: Any) -> tuple[Principal, float]:  # a row of _RESOLVE
    """The key's principal and its seconds left; raises when it is revoked or expired."""
    if row.revoked_at is not None:
        raise AuthenticationFailed("this API key was revoked; ask an admin for a new one")
    left = float("inf")
    if row.expires_at is not None:
        expires = _utc(row.expires_at)
        left = (expires - datetime.now(UTC)).total_seconds()
        if left <= 0:
            raise AuthenticationFailed(
                f"this API key expired at {expires.isoformat(timespec='seconds')}; ask an "
                "admin for a new one (`bastion keys rotate` issues its successor)"
            )
    return Principal(row.tenant_id, row.name, row.role, tuple(row.groups), row.key_id), left
