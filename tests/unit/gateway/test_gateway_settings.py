"""Gateway settings files and the model loader's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.core.errors import ConfigError, UnsafeFileError
from bastion.gateway import GatewaySettings, Served, load_served, load_settings
from bastion.gateway.pipeline import Pipeline


def test_settings_from_json_and_toml(tmp_path: Path) -> None:
    as_json = tmp_path / "g.json"
    as_json.write_text(json.dumps({"model": "zoo:cancer-mlp", "guards": {"max_batch": 8}}))
    as_toml = tmp_path / "g.toml"
    as_toml.write_text('model = "zoo:cancer-mlp"\n[guards]\nmax_batch = 8\n')
    for path in (as_json, as_toml):
        settings = load_settings(path, database_url="sqlite:///x.db")
        assert settings.model == "zoo:cancer-mlp" and settings.guards.max_batch == 8
        assert settings.database_url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"modle": "zoo:digits-cnn"}', "modle"),
        ('{"guards": {"blacklight_action": "explode"}}', "blacklight_action"),
        ('{"guards": {"max_batch": 0}}', "max_batch"),
        ("[1, 2]", "table"),
        ("{nope", "valid JSON"),
    ],
)
def test_bad_settings_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "g.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read"):
        load_settings(tmp_path / "absent.toml")


def test_secret_is_hidden() -> None:
    settings = GatewaySettings(secret="hunter2")  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings)


def test_loader_refuses_pickles_and_unknown_zoo_names(tmp_path: Path) -> None:
    pickle_file = tmp_path / "model.pkl"
    pickle_file.write_bytes(b"\x80\x04N.")
    with pytest.raises(UnsafeFileError, match="pickle"):
        load_served(GatewaySettings(model=str(pickle_file)))
    with pytest.raises(ConfigError, match="zoo:NAME"):
        load_served(GatewaySettings(model="zoo:nope"))


def test_guards_without_calibration_need_thresholds(served: Served) -> None:
    bare = Served(served.model, "digits", None)
    with pytest.raises(ConfigError, match="nearest_neighbour_threshold"):
        Pipeline(GatewaySettings(), bare)
    with pytest.raises(ConfigError, match="boundary_near_margin"):
        Pipeline(GatewaySettings(guards={"nearest_neighbour": False}), bare)  # type: ignore[arg-type]
    pipeline = Pipeline(
        GatewaySettings(
            guards={"nearest_neighbour_threshold": 0.5, "boundary_near_margin": 0.1}  # type: ignore[arg-type]
        ),
        bare,
    )
    assert [g.name for g in pipeline.guards] == [
        "input",
        "rate-limit-identity",
        "rate-limit-address",
        "blacklight",
        "nearest-neighbour",
        "boundary",
    ]
