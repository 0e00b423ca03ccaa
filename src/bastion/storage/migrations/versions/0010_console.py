"""The admin console: its sign-in sessions, and the audit columns its searches filter on
(user, app, model, status, the strictest guard action, latency, tokens), copied from each
record's hashed body so a page of 100k records is an index read, not a scan of JSON.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_SEVERITY = {"allow": 0, "flag": 1, "redact": 2, "block": 3}
_FILTERED = ("user_name", "app", "model", "status", "verdict", "created_at")


def _verdict(verdicts: list[dict[str, object]]) -> str:
    actions = [str(v.get("action", "allow")) for v in verdicts]
    return max(actions, key=lambda a: _SEVERITY.get(a, 0), default="allow")


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),  # sha256 of the cookie
        sa.Column("key_id", sa.String(32), nullable=False),  # re-checked on every request
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("audit_records") as batch:
        batch.add_column(sa.Column("user_name", sa.String(128), nullable=True))
        batch.add_column(sa.Column("app", sa.String(64), nullable=True))
        batch.add_column(sa.Column("model", sa.String(128), nullable=True))
        batch.add_column(sa.Column("status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("verdict", sa.String(8), nullable=True))
        batch.add_column(sa.Column("latency_ms", sa.Float(), nullable=True))
        batch.add_column(sa.Column("tokens", sa.Integer(), nullable=True))
    records = sa.table(
        "audit_records",
        sa.column("seq", sa.Integer),
        sa.column("body", sa.Text),
        *(sa.column(c, sa.String) for c in ("user_name", "app", "model", "status", "verdict")),
        sa.column("latency_ms", sa.Float),
        sa.column("tokens", sa.Integer),
    )
    conn = op.get_bind()
    last = 0
    while True:  # in batches: a long-running trail does not fit in memory at once
        rows = conn.execute(
            sa.select(records.c.seq, records.c.body)
            .where(records.c.seq > last)
            .order_by(records.c.seq)
            .limit(1000)
        ).all()
        if not rows:
            break
        for seq, text in rows:
            body = json.loads(text)
            conn.execute(
                records.update()
                .where(records.c.seq == seq)
                .values(
                    user_name=body.get("user"),
                    app=body.get("app"),
                    model=body.get("model"),
                    status=body.get("status"),
                    verdict=_verdict(body.get("verdicts") or []),
                    latency_ms=body.get("latency_ms"),
                    tokens=(body.get("prompt_tokens") or 0) + (body.get("completion_tokens") or 0),
                )
            )
        last = rows[-1][0]
    for column in _FILTERED:
        op.create_index(f"ix_audit_records_tenant_{column}", "audit_records", ["tenant_id", column])


def downgrade() -> None:
    for column in _FILTERED:
        op.drop_index(f"ix_audit_records_tenant_{column}", "audit_records")
    with op.batch_alter_table("audit_records") as batch:
        for column in ("tokens", "latency_ms", "verdict", "status", "model", "app", "user_name"):
            batch.drop_column(column)
    op.drop_table("console_sessions")
