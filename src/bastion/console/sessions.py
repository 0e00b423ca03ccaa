"""Console sign-in sessions: a random token in an HttpOnly cookie, only its hash stored, and
a CSRF token per session that every form posts back."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from bastion.access import AccessStore, Principal
from bastion.errors import AuthenticationFailed
from bastion.storage import Database
from bastion.storage.tables import ConsoleSession

SESSION_COOKIE = "bastion_console"
# Before sign-in there is no session to hold a CSRF token: the login form's token is
# checked against this cookie instead (double submit).
LOGIN_CSRF_COOKIE = "bastion_console_login"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a console page, and the token their forms must carry."""

    principal: Principal
    csrf: str


class ConsoleSessions:
    def __init__(self, db: Database, access: AccessStore, lifetime: timedelta) -> None:
        self._db = db
        self._access = access
        self._lifetime = lifetime

    def start(self, principal: Principal) -> str:
        """A new session for a signed-in key; returns the cookie's token."""
        assert principal.key_id is not None
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self._db.session(write_lock=True) as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
            s.add(
                ConsoleSession(
                    token_hash=_digest(token),
                    key_id=principal.key_id,
                    csrf=secrets.token_urlsafe(32),
                    created_at=now,
                    expires_at=now + self._lifetime,
                )
            )
        return token

    def viewer(self, token: str | None) -> Viewer:
        """The session's viewer; raises AuthenticationFailed when there is none or it ended
        (expired, signed out, or its key revoked or expired since)."""
        if not token:
            raise AuthenticationFailed("sign in to the console with an admin or reviewer key")
        with self._db.session() as s:
            row = s.scalar(
                select(ConsoleSession).where(ConsoleSession.token_hash == _digest(token))
            )
        if row is None or _utc(row.expires_at) <= datetime.now(UTC):
            raise AuthenticationFailed("your console session ended; sign in again")
        return Viewer(self._access.key_principal(row.key_id), row.csrf)

    def end(self, token: str | None) -> None:
        if token:
            with self._db.session(write_lock=True) as s:
                s.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))

    @property
    def lifetime(self) -> timedelta:
        return self._lifetime


def csrf_matches(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected, presented or "")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
