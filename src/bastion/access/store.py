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
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from bastion.access.principal import ROLES, Principal
from bastion.errors import AuthenticationFailed, BadRequest, NotFound
from bastion.storage import Database
from bastion.storage.tables import ApiKey, Tenant, User

KEY_PREFIX = "bst"
_KEY_RE = re.compile(r"^bst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


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


def _hash(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def _check_name(kind: str, value: str) -> None:
    if not _NAME_RE.match(value):
        raise BadRequest(
            f"{kind} '{value}' is not valid: use 1-64 letters, digits, '.', '_', '@' or '-'"
        )


class AccessStore:
    """Creates, resolves and revokes API keys; keeps tenants and users."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create_key(
        self,
        *,
        tenant: str,
        user: str,
        role: str,
        groups: list[str] | None = None,
        label: str | None = None,
    ) -> CreatedKey:
        """Create a key for `user` in `tenant`, creating both if they do not exist yet."""
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
                )
            )
            principal = Principal(tenant, user, role, tuple(row.groups), key_id)
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
        key_id, secret = match.groups()
        with self._db.session() as s:
            found = s.execute(
                select(ApiKey, User)
                .join(User, ApiKey.user_id == User.id)
                .where(ApiKey.id == key_id)
            ).first()
        if found is None or not hmac.compare_digest(found[0].hash, _hash(found[0].salt, secret)):
            raise AuthenticationFailed("invalid API key")
        key, user = found
        if key.revoked_at is not None:
            raise AuthenticationFailed("this API key was revoked; ask an admin for a new one")
        return Principal(user.tenant_id, user.name, user.role, tuple(user.groups), key.id)

    def list_keys(self, tenant: str | None = None) -> list[KeyInfo]:
        query = (
            select(ApiKey, User).join(User, ApiKey.user_id == User.id).order_by(ApiKey.created_at)
        )
        if tenant is not None:
            query = query.where(User.tenant_id == tenant)
        with self._db.session() as s:
            rows = s.execute(query).all()
        return [
            KeyInfo(k.id, u.tenant_id, u.name, u.role, k.label, k.created_at, k.revoked_at)
            for k, u in rows
        ]

    def revoke(self, key_id: str, tenant: str | None = None) -> None:
        """Revoke a key by id; with `tenant`, only a key of that tenant."""
        with self._db.session(write_lock=True) as s:
            found = s.execute(
                select(ApiKey, User)
                .join(User, ApiKey.user_id == User.id)
                .where(ApiKey.id == key_id)
            ).first()
            if found is None or (tenant is not None and found[1].tenant_id != tenant):
                raise NotFound(f"no API key with id '{key_id}'; `bastion keys list` shows them")
            if found[0].revoked_at is None:
                found[0].revoked_at = datetime.now(UTC)
