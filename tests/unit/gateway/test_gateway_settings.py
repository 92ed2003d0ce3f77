"""Gateway settings files and the model loader's refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bastion.core.errors import ConfigError, UnsafeFileError
from bastion.defenses.guards import (
    BlacklightGuard,
    BoundaryGuard,
    NearestNeighbourGuard,
    PradaGuard,
)
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


def test_secret_and_database_password_are_hidden() -> None:
    url = "postgresql+psycopg://gateway:s3cr3t-pw@db.internal:5432/bastion"
    settings = GatewaySettings(secret="hunter2", database_url=url)  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
    assert "s3cr3t-pw" not in repr(settings) and "s3cr3t-pw" not in str(settings)
    assert settings.database_url == url  # hidden from the repr only


def test_guard_settings_reach_the_guards(served: Served) -> None:
    defaults = GatewaySettings().guards
    assert (defaults.blacklight_min_matches, defaults.nearest_neighbour_skip) == (3, 2)
    assert (defaults.boundary_attack_rate, defaults.boundary_false_alarm) == (0.8, 1e-9)
    assert defaults.prada_duplicate_distance == "auto"
    guards = {
        "nearest_neighbour_threshold": 0.5,
        "boundary_near_margin": 0.1,
        "blacklight_min_matches": 1,
        "nearest_neighbour_skip": 0,
        "nearest_neighbour_k": 4,
        "boundary_attack_rate": 0.5,
        "boundary_false_alarm": 1e-6,
        "prada_duplicate_distance": 0.25,
    }
    built = {g.name: g for g in Pipeline(GatewaySettings(guards=guards), served).guards}  # type: ignore[arg-type]
    blacklight, knn = built["blacklight"], built["nearest-neighbour"]
    boundary, prada = built["boundary"], built["prada"]
    assert isinstance(blacklight, BlacklightGuard) and blacklight.min_matches == 1
    assert isinstance(knn, NearestNeighbourGuard) and (knn.k, knn.skip_nearest) == (4, 0)
    assert isinstance(boundary, BoundaryGuard)
    assert (boundary.attack_rate, boundary.false_alarm) == (0.5, 1e-6)
    assert boundary.limit == pytest.approx(math.log(1e6))
    assert isinstance(prada, PradaGuard) and prada.resend_distance(64) == 0.25
    paper = Pipeline(
        GatewaySettings(guards={**guards, "prada_duplicate_distance": None}),  # type: ignore[arg-type]
        served,
    )
    assert next(g for g in paper.guards if isinstance(g, PradaGuard)).resend_distance(64) == 0.0
    auto = Pipeline(GatewaySettings(guards={"nearest_neighbour_threshold": 0.5}), served)  # type: ignore[arg-type]
    prada = next(g for g in auto.guards if isinstance(g, PradaGuard))
    assert prada.resend_distance(64) == pytest.approx(0.05 * 8 * 1.0)  # 8x8 inputs in [0, 1]


@pytest.mark.parametrize(
    ("guards", "message"),
    [
        ("blacklight_min_matches = 0", "blacklight_min_matches"),
        ("nearest_neighbour_skip = -1", "nearest_neighbour_skip"),
        ("boundary_attack_rate = 1.0", "boundary_attack_rate"),
        ("boundary_false_alarm = 0", "boundary_false_alarm"),
        ("prada_duplicate_distance = -0.5", "prada_duplicate_distance"),
        ('prada_duplicate_distance = "always"', "prada_duplicate_distance"),
    ],
)
def test_bad_guard_settings_in_toml(tmp_path: Path, guards: str, message: str) -> None:
    path = tmp_path / "g.toml"
    path.write_text(f"[guards]\n{guards}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(path)
    path.write_text("[guards]\nprada_duplicate_distance = 0\n")  # the paper's rule in TOML
    assert load_settings(path).guards.prada_duplicate_distance == 0


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
        "prada",
    ]
