"""The audit store's schema comes from Alembic migrations that match the ORM models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from bastion.gateway.store import Base, Store


def test_migrations_build_exactly_the_models_schema(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == "0003"
    key_id, _ = store.create_key("admin")
    store.close()
    # reopening applies nothing new and keeps the data
    again = Store(f"sqlite:///{tmp_path / 'm.db'}")
    assert [k.key_id for k in again.list_keys()] == [key_id]
    again.close()
