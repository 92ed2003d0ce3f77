"""OpenAPI-driven fuzz (schemathesis) of the whole gateway, in process: no input gets a 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from gwprocs import Postgres, gateway_settings
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from bastion.gateway import Served, Store, create_app

pytestmark = pytest.mark.integration

#: Examples per operation and generation mode on SQLite, half on PostgreSQL (both: < 30 s).
EXAMPLES = 12


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_no_operation_answers_with_a_server_error(
    backend: str, tmp_path: Path, digits_served: Served, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url, examples = f"sqlite:///{tmp_path / 'fuzz.db'}", EXAMPLES
    else:  # PostgreSQL refuses what SQLite takes (NUL in text): fuzz it too, more briefly
        postgres: Postgres = request.getfixturevalue("postgres")
        url, examples = postgres.create_database("fuzz"), EXAMPLES // 2
    store = Store(url)
    _, admin = store.create_key("admin", "fuzz")
    app = create_app(gateway_settings(url), store=store, served=digits_served)
    auth = {"Authorization": f"Bearer {admin}"}
    with TestClient(app) as client:  # a real prediction, so feedback has something to find
        answer = client.post("/v1/predict", json={"inputs": [[[[0.5] * 8] * 8]]}, headers=auth)
        assert answer.status_code == 200
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=auth)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results)  # the whole schema parsed
    paths = {operation.path for operation in operations}
    assert {"/v1/predict", "/v1/feedback", "/healthz", "/metrics", "/review"} <= paths
    calls: list[tuple[str, int]] = []
    try:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if mode is GenerationMode.NEGATIVE and not (
                    operation.body or operation.query or operation.path_parameters
                ):
                    continue  # nothing to break but the headers, which the auth needs
                strategy = operation.as_strategy(generation_mode=mode)

                @given(case=strategy)
                @settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                def fuzz(case: Any) -> None:
                    response = case.call_and_validate(headers=auth, checks=[not_a_server_error])
                    calls.append((case.operation.label, response.status_code))

                fuzz()
    finally:
        store.close()
    assert len(calls) >= len(operations) * 2
    print(f"\n{len(calls)} fuzzed calls over {len(operations)} operations:", sorted(set(calls)))
    assert all(status < 500 for _, status in calls)
