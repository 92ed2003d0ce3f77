"""The gateway refuses to serve a model whose signed manifest does not verify."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bastion.core.errors import ConfigError
from bastion.data.zoo import ZooEntry
from bastion.gateway import GatewaySettings, Served, Store, create_app, load_served, load_settings
from bastion.gateway.loader import verify_served_files
from bastion.supply_chain.manifest import create_manifest, generate_keypair, load_private_key


@pytest.fixture()
def signed(tmp_path: Path, digits_entry: ZooEntry, thresholds: dict[str, float]) -> dict[str, Any]:
    """A release folder: the digits CNN's safetensors weights, a config naming them, and a
    manifest over both signed with a fresh key (another key pair is made as the wrong one)."""
    assert digits_entry.cache_path is not None
    release = tmp_path / "release"
    release.mkdir()
    weights = release / "digits.safetensors"
    shutil.copyfile(digits_entry.cache_path, weights)
    options = digits_entry.adapter_options()
    config = release / "gateway.json"
    config.write_text(
        json.dumps(
            {
                "model": "bastion.data.zoo:DigitsCNN",
                "weights": str(weights),
                "input_shape": list(options["input_shape"]),
                "mean": list(options["mean"]),
                "std": list(options["std"]),
                "database_url": f"sqlite:///{tmp_path / 'gw.db'}",
                "guards": thresholds,
            }
        )
    )
    private, public = generate_keypair(tmp_path / "keys" / "release.pem")
    _, wrong = generate_keypair(tmp_path / "keys" / "other.pem")
    manifest = release / "manifest.json"
    create_manifest(
        [weights], configs=[config], private_key=load_private_key(private), out=manifest
    )
    return {
        "config": config,
        "weights": weights,
        "manifest": manifest,
        "public": public,
        "wrong": wrong,
        "private": private,
    }


def settings_for(signed: dict[str, Any], key: str = "public", **extra: Any) -> GatewaySettings:
    return load_settings(
        signed["config"],
        manifest=str(signed["manifest"]),
        manifest_public_key=str(signed[key]),
        **extra,
    )


def test_a_verified_model_is_served(signed: dict[str, Any], digits_entry: ZooEntry) -> None:
    settings = settings_for(signed, require_manifest=True)
    assert settings.source == str(signed["config"])
    store = Store(settings.database_url)
    key = store.create_key("client", "t")[1]
    with TestClient(create_app(settings, store=store)) as client:
        answer = client.post(
            "/v1/predict",
            headers={"Authorization": f"Bearer {key}"},
            json={"inputs": digits_entry.test.x[:2].tolist()},
        )
    store.close()
    assert answer.status_code == 200
    expected = digits_entry.test.y[:2].tolist()
    assert [p["label"] for p in answer.json()["predictions"]] == expected


def test_tampered_weights_are_refused_before_loading(
    signed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytearray(signed["weights"].read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    signed["weights"].write_bytes(bytes(data))
    loaded: list[str] = []
    monkeypatch.setattr("bastion.gateway.loader.load_model", lambda *a, **k: loaded.append("x"))
    with pytest.raises(ConfigError, match=r"does not verify: digits.safetensors changed"):
        create_app(settings_for(signed))
    assert loaded == []


def test_tampered_config_wrong_key_and_missing_manifest_are_refused(
    signed: dict[str, Any],
) -> None:
    with pytest.raises(ConfigError, match="not by the given public key"):
        load_served(settings_for(signed, key="wrong"))
    with pytest.raises(ConfigError, match=r"cannot be checked: .* is not a PEM public key"):
        load_served(settings_for(signed, key="private"))  # a private key is no public key
    settings = settings_for(signed)
    config = signed["config"]
    config.write_text(config.read_text().replace('"guards"', '"trust_pickle": true, "guards"'))
    with pytest.raises(ConfigError, match=r"gateway\.json changed"):
        load_served(settings)
    signed["manifest"].unlink()
    with pytest.raises(ConfigError, match="cannot be checked: Cannot read manifest"):
        load_served(settings)


def test_files_the_manifest_does_not_list_are_refused(
    signed: dict[str, Any], tmp_path: Path
) -> None:
    other = tmp_path / "release" / "other.safetensors"
    shutil.copyfile(signed["weights"], other)
    with pytest.raises(ConfigError, match="does not list the weights file"):
        verify_served_files(settings_for(signed, weights=str(other)))
    in_code = GatewaySettings.model_validate(
        {
            **json.loads(signed["config"].read_text()),
            "manifest": str(signed["manifest"]),
            "manifest_public_key": str(signed["public"]),
        }
    )
    verify_served_files(in_code)  # no config file to cover when settings are built in code
    with pytest.raises(ConfigError, match="zoo model is not one"):
        verify_served_files(in_code.model_copy(update={"model": "zoo:digits-cnn"}))
    with pytest.raises(ConfigError, match="without weights"):
        verify_served_files(in_code.model_copy(update={"weights": None}))


def test_an_already_loaded_model_is_still_checked(signed: dict[str, Any], served: Served) -> None:
    with pytest.raises(ConfigError, match="not by the given public key"):
        create_app(settings_for(signed, key="wrong"), served=served)


def test_manifest_settings_come_together(signed: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="manifest and manifest_public_key"):
        load_settings(signed["config"], manifest=str(signed["manifest"]))
    with pytest.raises(ConfigError, match="require_manifest"):
        load_settings(signed["config"], require_manifest=True)
