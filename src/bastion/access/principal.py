"""The resolved identity behind every request."""

from __future__ import annotations

from dataclasses import dataclass, field

# A reviewer rates and approves answers and app outputs in the console's review queue.
ROLES = ("admin", "developer", "reviewer", "user")


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

    @property
    def may_review(self) -> bool:
        return self.role in ("admin", "reviewer")
