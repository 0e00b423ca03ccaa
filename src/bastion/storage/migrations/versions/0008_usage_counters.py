"""Usage counters for rate limits and token budgets (requests a minute, tokens a day, per
API key and per tenant), shared by every replica.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_counters",
        sa.Column("scope", sa.String(8), nullable=False),  # key or tenant
        sa.Column("subject", sa.String(64), nullable=False),  # the key id or tenant id
        sa.Column("window", sa.String(8), nullable=False),  # minute or day
        sa.Column("start", sa.String(20), nullable=False),  # the window's first second (UTC)
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "subject", "window", "start"),
    )


def downgrade() -> None:
    op.drop_table("usage_counters")
