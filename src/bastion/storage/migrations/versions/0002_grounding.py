"""Harmonized grounding records; on PostgreSQL also the pgvector chunk table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grounding_records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(256), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("acl", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("contact_id", sa.String(32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "source", "source_id"),
    )
    op.create_index("ix_grounding_records_tenant_id", "grounding_records", ["tenant_id"])
    op.create_index("ix_grounding_records_contact_id", "grounding_records", ["contact_id"])
    if op.get_bind().dialect.name == "postgresql":
        # The several-replica vector store: chunks beside the records, in one database.
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
        op.execute(
            """
            CREATE TABLE grounding_chunks (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                source TEXT NOT NULL,
                source_id TEXT NOT NULL,
                record_hash TEXT NOT NULL,
                entity TEXT NOT NULL,
                title TEXT NOT NULL,
                text TEXT NOT NULL,
                acl TEXT[] NOT NULL,
                embedding vector(384) NOT NULL
            )
            """
        )
        op.execute(
            "CREATE INDEX ix_grounding_chunks_record "
            "ON grounding_chunks (tenant_id, source, source_id)"
        )
        op.execute("CREATE INDEX ix_grounding_chunks_acl ON grounding_chunks USING gin (acl)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE IF EXISTS grounding_chunks")
    op.drop_index("ix_grounding_records_contact_id", "grounding_records")
    op.drop_index("ix_grounding_records_tenant_id", "grounding_records")
    op.drop_table("grounding_records")
