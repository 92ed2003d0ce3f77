"""Alembic migrations of the gateway's database; `Store` applies them when it opens one."""
