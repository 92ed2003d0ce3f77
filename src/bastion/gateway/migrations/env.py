"""Alembic environment: runs the migrations on the connection `Store` hands over."""

from __future__ import annotations

from alembic import context

from bastion.gateway.store import Base

connection = context.config.attributes["connection"]
# Batch mode lets later revisions alter tables on SQLite, which has no ALTER COLUMN.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
