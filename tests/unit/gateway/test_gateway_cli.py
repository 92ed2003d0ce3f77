"""``bastion serve`` and ``bastion keys`` on a fresh Typer app (the lead wires them in)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bastion.cli import serve as serve_module
from bastion.gateway import Store

KEY = re.compile(r"bst_[0-9a-f]{12}_[A-Za-z0-9_-]+")


@pytest.fixture()
def cli() -> typer.Typer:
    app = typer.Typer()
    serve_module.register(app)
    return app


def test_keys_create_list_revoke(cli: typer.Typer, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'keys.db'}"
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--db", db, "--role", "admin", "--name", "ops"])
    assert created.exit_code == 0, created.output
    key = KEY.search(created.output)
    assert key is not None
    key_id = key.group(0).split("_")[1]
    listed = runner.invoke(cli, ["keys", "list", "--db", db])
    assert key_id in listed.output and "admin" in listed.output
    assert key.group(0) not in listed.output
    assert runner.invoke(cli, ["keys", "revoke", key_id, "--db", db]).exit_code == 0
    assert Store(db).authenticate(key.group(0)) == "this API key has been revoked"
    unknown = runner.invoke(cli, ["keys", "revoke", "nope", "--db", db])
    assert unknown.exit_code != 0
    bad_role = runner.invoke(cli, ["keys", "create", "--db", db, "--role", "root"])
    assert bad_role.exit_code != 0


def test_serve_prints_a_fresh_admin_key_once(
    cli: typer.Typer, tmp_path: Path, zoo_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append({"app": app, **kw}))
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({"zoo_cache": str(zoo_cache)}))
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    runner = CliRunner()
    first = runner.invoke(cli, ["serve", "--config", str(config), "--db", db, "--port", "8123"])
    assert first.exit_code == 0, first.output
    key = KEY.search(first.output)
    assert key is not None
    assert isinstance(Store(db).authenticate(key.group(0)), object)
    assert Store(db).authenticate(key.group(0)) not in ("invalid API key",)
    assert started[0]["host"] == "127.0.0.1" and started[0]["port"] == 8123
    assert started[0]["app"].state.settings.model == "zoo:digits-cnn"
    second = runner.invoke(cli, ["serve", "--config", str(config), "--db", db])
    assert second.exit_code == 0 and KEY.search(second.output) is None


def test_serve_refuses_a_pickle_without_consent(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    pickle_file = tmp_path / "model.pkl"
    pickle_file.write_bytes(b"\x80\x04N.")
    db = f"sqlite:///{tmp_path / 'p.db'}"
    result = CliRunner().invoke(cli, ["serve", "--model", str(pickle_file), "--db", db])
    assert result.exit_code != 0
    assert "pickle" in str(result.exception)
