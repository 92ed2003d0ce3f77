"""``bastion serve`` and ``bastion keys`` on a fresh Typer app (the lead wires them in)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bastion.cli import main
from bastion.cli import serve as serve_module
from bastion.data.zoo import ZooEntry
from bastion.gateway import Store
from bastion.supply_chain.manifest import create_manifest, generate_keypair, load_private_key

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


@pytest.fixture()
def release(
    tmp_path: Path, digits_entry: ZooEntry, thresholds: dict[str, float]
) -> dict[str, Path]:
    """The digits CNN's weights and a config naming them, in a manifest signed with a fresh key."""
    assert digits_entry.cache_path is not None
    folder = tmp_path / "release"
    folder.mkdir()
    weights = folder / "digits.safetensors"
    shutil.copyfile(digits_entry.cache_path, weights)
    options = digits_entry.adapter_options()
    config = folder / "gateway.json"
    config.write_text(
        json.dumps(
            {
                "model": "bastion.data.zoo:DigitsCNN",
                "weights": str(weights),
                "input_shape": list(options["input_shape"]),
                "mean": list(options["mean"]),
                "std": list(options["std"]),
                "guards": thresholds,
            }
        )
    )
    private, public = generate_keypair(tmp_path / "keys" / "release.pem")
    manifest = folder / "manifest.json"
    create_manifest(
        [weights], configs=[config], private_key=load_private_key(private), out=manifest
    )
    return {"config": config, "weights": weights, "manifest": manifest, "public": public}


def test_serve_checks_the_manifest_and_refuses_a_tampered_model(
    release: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import uvicorn

    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(app))
    db = tmp_path / "serve.db"
    args = ["serve", "--config", str(release["config"]), "--db", f"sqlite:///{db}"]
    signed = [*args, "--manifest", str(release["manifest"]), "--public-key", str(release["public"])]
    assert main(signed) == 0
    settings = started[0].state.settings
    assert settings.manifest == str(release["manifest"])
    assert settings.manifest_public_key == str(release["public"])
    capsys.readouterr()
    db.unlink()
    data = bytearray(release["weights"].read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    release["weights"].write_bytes(bytes(data))
    assert main(signed) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1, err
    assert "does not verify: digits.safetensors changed" in err and "Traceback" not in err
    assert len(started) == 1 and not db.exists() and KEY.search(out) is None  # nothing opened
    assert main(args) == 0  # the same tampered model, unchecked without a manifest
    assert main([*args, "--manifest", str(release["manifest"])]) == 2
    assert "must be given together" in capsys.readouterr().err
