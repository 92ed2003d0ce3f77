"""Fixtures for the gateway tests: an app over the digits CNN with a SQLite store in tmp."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bastion.data.zoo import ZooEntry
from bastion.defenses.guards import BoundaryGuard, NearestNeighbourGuard
from bastion.gateway import GatewaySettings, Pipeline, Served, Store, create_app, load_served


@pytest.fixture(scope="session")
def served(zoo_cache: Path, digits_entry: ZooEntry) -> Served:
    """The digits CNN loaded once, as the gateway's loader would."""
    return load_served(GatewaySettings(zoo_cache=str(zoo_cache)))


@pytest.fixture(scope="session")
def thresholds(served: Served) -> dict[str, float]:
    """The guards' calibrated thresholds, computed once (calibration itself is tested once)."""
    pipeline = Pipeline(GatewaySettings(), served)
    knn = next(g for g in pipeline.guards if isinstance(g, NearestNeighbourGuard))
    boundary = next(g for g in pipeline.guards if isinstance(g, BoundaryGuard))
    return {
        "nearest_neighbour_threshold": knn.threshold,
        "boundary_near_margin": boundary.near_margin,
    }


@pytest.fixture()
def make_client(
    tmp_path: Path, served: Served, thresholds: dict[str, float]
) -> Iterator[Callable[..., tuple[TestClient, Store, dict[str, str]]]]:
    """Build a client for an app with the given guard settings; returns (client, store, keys).

    ``calibrate=True`` makes the app calibrate its guards itself.
    """
    opened: list[tuple[TestClient, Store]] = []

    def build(calibrate: bool = False, **guards: Any) -> tuple[TestClient, Store, dict[str, str]]:
        if not calibrate:
            guards = {**thresholds, **guards}
        settings = GatewaySettings(
            database_url=f"sqlite:///{tmp_path / f'gw{len(opened)}.db'}",
            guards=guards,  # type: ignore[arg-type]
        )
        store = Store(settings.database_url)
        keys = {
            "client": store.create_key("client", "test client")[1],
            "admin": store.create_key("admin", "test admin")[1],
        }
        client = TestClient(
            create_app(settings, store=store, served=served), client=("198.51.100.9", 5000)
        )
        opened.append((client, store))
        return client, store, keys

    yield build
    for client, store in opened:
        client.close()
        store.close()
