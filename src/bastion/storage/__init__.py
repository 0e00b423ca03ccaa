"""Persistence: one SQLAlchemy engine per process, schema managed by Alembic migrations."""

from bastion.storage.database import Database

__all__ = ["Database"]
