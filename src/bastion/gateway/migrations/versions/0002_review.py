"""The review queue: keys can be blocked by an admin, flags record who resolved them and when.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the block columns to ``api_keys`` and the resolution columns to ``flags``."""
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("blocked_by", sa.String(32), nullable=True))
    with op.batch_alter_table("flags") as batch:
        batch.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.String(32), nullable=True))


def downgrade() -> None:
    """Drop the columns the upgrade added."""
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("resolved_by")
        batch.drop_column("resolved_at")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("blocked_by")
        batch.drop_column("blocked_at")
