"""The gateway's store, migrations and a real gateway process on a real PostgreSQL 15."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import typer
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from gwprocs import PG_PASSWORD, Postgres, StartGateway, gateway_settings, key_rows
from sqlalchemy import inspect, text, update
from typer.testing import CliRunner

import bastion.gateway.store as store_module
from bastion.cli import serve as serve_module
from bastion.core.errors import ConfigError, ValidationError
from bastion.data.zoo import ZooEntry
from bastion.gateway import Store
from bastion.gateway.sessions import ReviewSessions, shared_secret
from bastion.gateway.store import Base, FlagRecord, RequestRecord, ReviewSession, new_request_id

pytestmark = pytest.mark.integration


def test_migrations_build_the_models_schema_on_postgresql(postgres: Postgres) -> None:
    store = Store(postgres.create_database("schema"))
    try:
        with store.engine.connect() as conn:
            assert conn.dialect.name == "postgresql"
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == "0003"
        # and back down to the first revision and up again, on PostgreSQL's ALTER TABLE
        config = Config()
        config.set_main_option(
            "script_location", str(Path(store_module.__file__).parent / "migrations")
        )
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
            columns = {c["name"] for c in inspect(conn).get_columns("api_keys")}
            assert "blocked_at" not in columns and not inspect(conn).has_table("review_sessions")
            command.upgrade(config, "head")
            assert inspect(conn).has_table("review_sessions")
        assert PG_PASSWORD not in store.url and "***" in store.url
    finally:
        store.close()


def test_store_round_trip_on_postgresql(postgres: Postgres) -> None:
    url = postgres.create_database("roundtrip")
    store = Store(url)
    try:
        admin_id, admin = store.create_key("admin", "ops")
        client_id, client = store.create_key("client")
        assert store.authenticate(admin) == store.authenticate(admin)  # stable
        assert store.authenticate(client + "x") == "invalid API key"
        assert store.authenticate("bst_\x00_x") == "invalid API key"
        # text from a request may hold NUL, which PostgreSQL refuses: it is stored replaced
        request = RequestRecord(
            id=new_request_id(), identity=client_id, path="/v1/\x00", status=200, samples=1
        )
        request.reached_model = 1
        flag = FlagRecord(
            request_id=request.id,
            identity=client_id,
            guard="blacklight",
            action="flag",
            reason="dup\x00",
        )
        store.record(request, [flag])
        assert store.requests()[0].path == "/v1/\ufffd"
        assert store.prediction_owner(request.id) == (client_id, 1)
        assert store.prediction_owner("\x00") is None
        assert store.add_feedback(request.id, client_id, 3) >= 1
        store.resolve_flag(store.flags()[0].id, admin_id)
        store.set_blocked(client_id, True, admin_id)
        with pytest.raises(ValidationError, match="existing key"):
            store.set_blocked("\x00", True, admin_id)
        assert [k.blocked for k in store.list_keys()] == [False, True]
        # review sessions and the shared secret are visible from a second store
        other = Store(url)
        try:
            sessions = ReviewSessions(store, seconds=60)
            token, info = sessions.open(admin_id)
            assert ReviewSessions(other, seconds=60).get(token) == info
            assert shared_secret(store, "s") == shared_secret(other, "s")
            with store.session() as s, s.begin():
                s.execute(update(ReviewSession).values(expires_at=datetime.now(UTC) - timedelta(1)))
            assert ReviewSessions(other, seconds=60).get(token) is None
        finally:
            other.close()
    finally:
        store.close()


def test_database_errors_never_show_the_password(postgres: Postgres) -> None:
    wrong = "Wr0ng-Pass-For-Test"
    with pytest.raises(ConfigError) as caught:
        Store(postgres.url(password=wrong))
    message = str(caught.value)
    assert wrong not in message and "***" in message
    assert "password authentication failed" in message
    cli = typer.Typer()
    serve_module.register(cli)
    listed = CliRunner().invoke(cli, ["keys", "list", "--db", postgres.url(password=wrong)])
    assert listed.exit_code != 0 and isinstance(listed.exception, ConfigError)
    assert wrong not in listed.output + str(listed.exception)
    # a driverless postgresql:// URL works too (psycopg 3 when psycopg2 is absent)
    bare = postgres.url().replace("postgresql+psycopg://", "postgresql://")
    store = Store(bare)
    assert PG_PASSWORD not in store.url
    store.close()


def test_gateway_process_records_on_postgresql(
    postgres: Postgres, start_gateway: StartGateway, digits_entry: ZooEntry
) -> None:
    url = postgres.create_database("gateway")
    store = Store(url)
    _, client = store.create_key("client", "pg client")
    store.close()
    gateway = start_gateway(gateway_settings(url))
    auth = {"Authorization": f"Bearer {client}"}
    inputs = digits_entry.test.x[:3].tolist()
    with httpx.Client(base_url=gateway.url, timeout=20, headers=auth) as http:
        answer = http.post("/v1/predict", json={"inputs": inputs})
        assert answer.status_code == 200
        assert [p["label"] for p in answer.json()["predictions"]] == digits_entry.test.y[
            :3
        ].tolist()
        prediction = answer.json()["id"]
        feedback = http.post("/v1/feedback", json={"prediction_id": prediction, "label": 1})
        assert feedback.status_code == 202
        nul = http.post("/v1/feedback", json={"prediction_id": "a\u0000b", "label": 1})
        assert nul.status_code == 404
        assert http.post("/v1/predict", content=b"{\x00").status_code == 400
        assert http.get("/v1/%00").status_code == 404
    store = Store(url)
    try:
        statuses = sorted(r.status for r in store.requests() if r.path != "/healthz")
        assert statuses == [200, 202, 400, 404, 404]
        assert len(store.feedback()) == 1
    finally:
        store.close()
    assert PG_PASSWORD not in gateway.output()
    assert " 500 " not in gateway.output()


def test_keys_list_on_postgresql_shows_blocked_keys(postgres: Postgres) -> None:
    url = postgres.create_database("cli")
    store = Store(url)
    admin_id, _ = store.create_key("admin", "ops")
    client_id, _ = store.create_key("client", "app")
    store.set_blocked(client_id, True, admin_id)
    store.close()
    cli = typer.Typer()
    serve_module.register(cli)
    listed = CliRunner().invoke(cli, ["keys", "list", "--db", url], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    rows = key_rows(listed.output)
    assert rows["id"][-1] == "blocked"
    assert rows[client_id][-1] == "yes" and rows[admin_id][-1] == ""
    assert PG_PASSWORD not in listed.output
