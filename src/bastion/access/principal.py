"""The resolved identity behind every request."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("admin", "developer", "user")


@dataclass(frozen=True)
class Principal:
    tenant: str
    user: str
    role: str
    groups: tuple[str, ...] = field(default_factory=tuple)
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
