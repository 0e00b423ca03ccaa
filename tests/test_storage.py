"""The schema and the replica setting: migrations match the models, and the whole server
runs on PostgreSQL as it does on SQLite."""

from __future__ import annotations

from pathlib import Path

import openai
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bastion.config import BastionConfig, ModelConfig, StorageConfig
from bastion.platform import Platform
from bastion.storage import Database
from bastion.storage.tables import Base
from conftest import LiveServer


def test_migrations_produce_exactly_the_models_schema(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()

    # The pgvector chunk table belongs to the vector store (raw SQL), not to the ORM models.
    def orm_only(obj: object, name: str | None, *_: object) -> bool:
        table = getattr(obj, "table", obj)
        return "grounding_chunks" not in (name, getattr(table, "name", None))

    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": orm_only})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
    if not db.is_sqlite:
        with db.engine.connect() as conn:
            tables = conn.exec_driver_sql("SELECT tablename FROM pg_tables").scalars().all()
        assert "grounding_chunks" in tables


def test_two_replicas_share_one_postgresql(postgres_url: str, tmp_path: Path) -> None:
    config = BastionConfig(
        models=[ModelConfig(name="echo", backend="echo")],
        storage=StorageConfig(url=postgres_url),
    )
    first = Platform.open(tmp_path / "a", config)
    second = Platform.open(tmp_path / "b", config)  # another replica: same database
    key = first.access.create_key(tenant="acme", user="rep", role="admin").secret
    with LiveServer(first) as a, LiveServer(second) as b:
        for server in (a, b, a, b):
            client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
            answer = client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "hello replicas"}]
            )
            assert answer.choices[0].message.content == "hello replicas"
    report = first.audit.verify()
    assert report.ok and report.records >= 4
    assert {r["user"] for r in second.audit.records()} == {"rep"}
    first.close()
    second.close()
