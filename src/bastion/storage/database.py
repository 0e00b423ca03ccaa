"""The database: SQLite (WAL) by default, PostgreSQL for several replicas."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_engine(url: str, synchronous: str) -> Engine:
    # One pooled connection per server worker thread: opening one costs PRAGMAs and a WAL check.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=40,
        max_overflow=40,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so writers can ask for IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction (the audit
        # chain) can then never fail half-way with SQLITE_BUSY.
        options = conn.get_execution_options()
        if options.get("isolation_level") != "AUTOCOMMIT":
            conn.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")

    return engine


class Database:
    """Owns the engine and session factory; every part persists through one of these."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL") -> None:
        self.url = url
        if url.startswith("sqlite"):
            self.engine = _sqlite_engine(url, sqlite_synchronous)
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)

    @classmethod
    def for_home(cls, home: Path, url: str | None, sqlite_synchronous: str = "NORMAL") -> Database:
        home.mkdir(parents=True, exist_ok=True)
        return cls(
            url or f"sqlite:///{home / 'bastion.db'}",
            sqlite_synchronous=sqlite_synchronous,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def session(self, *, write_lock: bool = False) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on error.

        `write_lock` takes SQLite's write lock at BEGIN; other databases lock rows explicitly.
        """
        with Session(self.engine, expire_on_commit=False) as session:
            if write_lock and self.is_sqlite:
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for one consistent read statement, without BEGIN/COMMIT round trips."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn

    @contextmanager
    def transaction(self, *, write_lock: bool = False) -> Iterator[Connection]:
        """A Core connection in a transaction: the fast path for hot, simple statements."""
        options = {"sqlite_begin": "IMMEDIATE"} if write_lock and self.is_sqlite else {}
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
