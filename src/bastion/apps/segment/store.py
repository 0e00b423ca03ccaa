"""Saved segments: each name's versions in the metadata database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from bastion.errors import Conflict, NotFound
from bastion.storage import Database
from bastion.storage.tables import SavedSegment


class Segments:
    """One tenant's saved segments."""

    def __init__(self, db: Database, tenant: str) -> None:
        self._db = db
        self.tenant = tenant

    def save(self, name: str, **fields: Any) -> int:
        """Save a version of `name` and return its number; the same specification as the
        latest version's reuses it. Two replicas racing for a number: the loser takes the
        next one."""
        for _ in range(3):
            try:
                with self._db.session(write_lock=True) as s:
                    latest = s.scalars(
                        self._named(name).order_by(SavedSegment.version.desc())
                    ).first()
                    if latest is not None and latest.spec == fields["spec"]:
                        return latest.version
                    version = latest.version + 1 if latest else 1
                    s.add(
                        SavedSegment(
                            tenant_id=self.tenant,
                            name=name,
                            version=version,
                            created_at=datetime.now(UTC),
                            **fields,
                        )
                    )
                return version
            except IntegrityError:
                continue
        raise Conflict(f"could not save segment '{name}': others kept saving it; try again")

    def _named(self, name: str) -> Select[SavedSegment]:
        return select(SavedSegment).where(
            SavedSegment.tenant_id == self.tenant, SavedSegment.name == name
        )

    def get(self, name: str, version: int | None = None) -> SavedSegment:
        """A version of a segment (default: the latest)."""
        query = self._named(name)
        if version is not None:
            query = query.where(SavedSegment.version == version)
        with self._db.session() as s:
            row = s.scalars(query.order_by(SavedSegment.version.desc())).first()
        if row is None:
            what = f"version {version} of segment '{name}'" if version else f"segment '{name}'"
            raise NotFound(
                f"no {what} in tenant '{self.tenant}'; `bastion segment list` names them"
            )
        return row

    def versions(self, name: str) -> list[SavedSegment]:
        with self._db.session() as s:
            return list(s.scalars(self._named(name).order_by(SavedSegment.version)))

    def latest(self) -> list[SavedSegment]:
        """The latest version of every segment, by name."""
        newest = (
            select(SavedSegment.name, func.max(SavedSegment.version).label("version"))
            .where(SavedSegment.tenant_id == self.tenant)
            .group_by(SavedSegment.name)
            .subquery()
        )
        query = (
            select(SavedSegment)
            .join(
                newest,
                (SavedSegment.name == newest.c.name) & (SavedSegment.version == newest.c.version),
            )
            .where(SavedSegment.tenant_id == self.tenant)
            .order_by(SavedSegment.name)
        )
        with self._db.session() as s:
            return list(s.scalars(query))
