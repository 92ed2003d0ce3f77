"""The gateway app through FastAPI's TestClient: auth, bad input, limits, records, roles."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from bastion.data.zoo import ZooEntry
from bastion.gateway import Store, hash_key

Build = Callable[..., tuple[TestClient, Store, dict[str, str]]]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def digits_inputs(entry: ZooEntry, start: int = 0, n: int = 2) -> list[Any]:
    return entry.test.x[start : start + n].tolist()  # type: ignore[no-any-return]


def rows(store: Store, sql: str) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(text(sql)).all())


def test_healthz_needs_no_key_and_everything_else_does(make_client: Build) -> None:
    client, store, _ = make_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    for method, path in [
        ("POST", "/v1/predict"),
        ("POST", "/v1/feedback"),
        ("GET", "/metrics"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/no/such/path"),
    ]:
        answer = client.request(method, path)
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization" in answer.json()["error"]["message"]
    wrong = client.post("/v1/predict", headers=bearer("bst_000000000000_nope"), json={})
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid API key"
    # every refusal is in the audit log, with no identity
    statuses = [r[0] for r in rows(store, "SELECT status FROM requests WHERE identity = ''")]
    assert statuses.count(401) == 7


def test_keys_are_hashed_at_rest_and_never_recorded(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    client, store, keys = make_client()
    answer = client.post(
        "/v1/predict", headers=bearer(keys["client"]), json={"inputs": digits_inputs(digits_entry)}
    )
    assert answer.status_code == 200
    stored = rows(store, "SELECT key_hash FROM api_keys")
    assert {r[0] for r in stored} == {hash_key(keys["client"]), hash_key(keys["admin"])}
    with store.engine.connect() as conn:
        dump = "\n".join(conn.connection.driver_connection.iterdump())  # type: ignore[union-attr]
    for key in keys.values():
        assert key not in dump and key.split("_", 2)[2] not in dump
    assert rows(store, "PRAGMA journal_mode") == [("wal",)]


def test_keys_are_compared_in_constant_time(
    make_client: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, store, keys = make_client()
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert store.authenticate(keys["client"]) != "invalid API key"
    assert store.authenticate("bst_ffffffffffff_unknown") == "invalid API key"
    assert store.authenticate("garbage") == "invalid API key"
    assert len(calls) == 3  # also for unknown ids and malformed keys


def test_revoked_key_is_refused_and_recorded(make_client: Build, digits_entry: ZooEntry) -> None:
    client, store, keys = make_client()
    key_id = keys["client"].split("_")[1]
    store.revoke_key(key_id)
    answer = client.post(
        "/v1/predict", headers=bearer(keys["client"]), json={"inputs": digits_inputs(digits_entry)}
    )
    assert answer.status_code == 401
    assert "revoked" in answer.json()["error"]["message"]
    assert rows(store, "SELECT error, reached_model FROM requests")[-1] == (
        "this API key has been revoked",
        0,
    )
    assert [k.revoked for k in store.list_keys()] == [True, False]


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("malformed JSON", b'{"inputs": [[[0.1', 400, "not JSON"),
    ("deep nesting", b"[" * 40 + b"]" * 40, 400, "nested"),
    ("wrong shape", json.dumps({"inputs": [[[0.0] * 7] * 8]}).encode(), 422, "shape"),
    (
        "NaN",
        b'{"inputs": [[' + b",".join([b"[NaN" + b",0.0" * 7 + b"]"] * 8) + b"]]}",
        422,
        "finite",
    ),
    ("out of bounds", json.dumps({"inputs": [[[5.0] * 8] * 8]}).encode(), 422, "bounds"),
    ("strings", json.dumps({"inputs": [[["a"] * 8] * 8]}).encode(), 422, "numbers"),
    ("no inputs", b'{"x": 1}', 422, "inputs"),
    (
        "too many samples",
        json.dumps({"inputs": [[[[0.0] * 8] * 8]] * 5}).encode(),
        422,
        "at most 4",
    ),
    ("oversized", b'{"inputs": [' + b"0," * 40000 + b"0]}", 413, "larger than"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "message"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
def test_bad_input_gets_4xx_is_recorded_and_never_reaches_the_model(
    make_client: Build, case: str, body: bytes, status: int, message: str
) -> None:
    client, store, keys = make_client(max_batch=4, max_body_bytes=50_000)
    model = client.app.state.pipeline.model  # type: ignore[attr-defined]
    before = model.counter.count
    answer = client.post(
        "/v1/predict",
        content=body,
        headers={**bearer(keys["client"]), "Content-Type": "application/json"},
    )
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]["message"]
    assert model.counter.count == before
    recorded = rows(store, "SELECT status, reached_model, error, identity FROM requests")
    assert len(recorded) == 1
    assert recorded[0][0] == status and recorded[0][1] == 0 and recorded[0][2]
    assert recorded[0][3] == keys["client"].split("_")[1]


def test_predict_records_verdicts_and_output(make_client: Build, digits_entry: ZooEntry) -> None:
    client, store, keys = make_client(calibrate=True)
    answer = client.post(
        "/v1/predict",
        headers=bearer(keys["client"]),
        json={"inputs": digits_inputs(digits_entry, 0, 3)},
    )
    body = answer.json()
    assert answer.status_code == 200
    assert [p["label"] for p in body["predictions"]] == digits_entry.test.y[:3].tolist()
    assert answer.headers["X-Request-Id"] == body["id"]
    record = rows(store, "SELECT id, samples, output, verdicts, input_hash FROM requests")[0]
    assert record[0] == body["id"] and record[1] == 3
    assert json.loads(record[2]) == body["predictions"]
    guards = {v["guard"] for v in json.loads(record[3])}
    assert guards == {
        "input",
        "rate-limit-identity",
        "rate-limit-address",
        "blacklight",
        "nearest-neighbour",
        "boundary",
        "prada",
    }
    assert len(record[4]) == 64


def test_output_hardening_per_role(make_client: Build, digits_entry: ZooEntry) -> None:
    client, _, keys = make_client()
    payload = {"inputs": digits_inputs(digits_entry, 10, 1)}
    as_client = client.post("/v1/predict", headers=bearer(keys["client"]), json=payload).json()
    assert set(as_client["predictions"][0]) == {"label"}
    as_admin = client.post("/v1/predict", headers=bearer(keys["admin"]), json=payload).json()
    scores = as_admin["predictions"][0]["scores"]
    assert len(scores) == 10 and all(round(s, 4) == s for s in scores)


def test_rate_limit_answers_429_with_retry_after(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    client, store, keys = make_client(rate_limit_identity="3/minute")
    payload = {"inputs": digits_inputs(digits_entry, 0, 1)}
    codes = [
        client.post("/v1/predict", headers=bearer(keys["client"]), json=payload).status_code
        for _ in range(3)
    ]
    limited = client.post("/v1/predict", headers=bearer(keys["client"]), json=payload)
    assert codes == [200, 200, 200] and limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "rate limit" in limited.json()["error"]["message"]
    # the other identity is not limited; the refusal is recorded without a model call
    assert (
        client.post("/v1/predict", headers=bearer(keys["admin"]), json=payload).status_code == 200
    )
    assert rows(store, "SELECT reached_model FROM requests WHERE status = 429") == [(0,)]


def test_feedback_is_quarantined_and_unknown_ids_are_404(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    client, store, keys = make_client()
    prediction = client.post(
        "/v1/predict", headers=bearer(keys["client"]), json={"inputs": digits_inputs(digits_entry)}
    ).json()
    ok = client.post(
        "/v1/feedback",
        headers=bearer(keys["client"]),
        json={"prediction_id": prediction["id"], "label": 3},
    )
    assert ok.status_code == 202 and ok.json()["status"] == "quarantined"
    assert rows(store, "SELECT prediction_id, contributor, label, status FROM feedback") == [
        (prediction["id"], keys["client"].split("_")[1], 3, "quarantined")
    ]
    unknown = client.post(
        "/v1/feedback", headers=bearer(keys["client"]), json={"prediction_id": "nope", "label": 1}
    )
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
    bad_label = client.post(
        "/v1/feedback",
        headers=bearer(keys["client"]),
        json={"prediction_id": prediction["id"], "label": 99},
    )
    assert bad_label.status_code == 422
    malformed = client.post(
        "/v1/feedback",
        headers={**bearer(keys["client"]), "Content-Type": "application/json"},
        content=b"{oops",
    )
    assert malformed.status_code == 400
    # the model is never retrained or changed by feedback: predictions are unchanged
    again = client.post(
        "/v1/predict", headers=bearer(keys["client"]), json={"inputs": digits_inputs(digits_entry)}
    ).json()
    assert again["predictions"] == prediction["predictions"]
    statuses = sorted(
        r[0] for r in rows(store, "SELECT status FROM requests WHERE path = '/v1/feedback'")
    )
    assert statuses == [202, 400, 404, 422]


def test_metrics_for_admins_only(make_client: Build, digits_entry: ZooEntry) -> None:
    client, _, keys = make_client()
    client.post(
        "/v1/predict", headers=bearer(keys["client"]), json={"inputs": digits_inputs(digits_entry)}
    )
    assert client.get("/metrics", headers=bearer(keys["client"])).status_code == 403
    text_out = client.get("/metrics", headers=bearer(keys["admin"])).text
    assert 'bastion_gateway_requests_total{path="/v1/predict",status="200"} 1.0' in text_out


def test_query_attack_is_flagged_for_review(make_client: Build, digits_entry: ZooEntry) -> None:
    client, store, keys = make_client()
    sample = digits_entry.test.x[5]
    for i in range(4):
        nudged = sample.copy()
        nudged[0, i, i] = min(1.0, float(nudged[0, i, i]) + 0.01)
        answer = client.post(
            "/v1/predict", headers=bearer(keys["client"]), json={"inputs": [nudged.tolist()]}
        )
        assert answer.status_code == 200
        assert "flag" not in answer.text  # the caller is not told it was flagged
        if i == 2:  # an input sent three times: re-sends (blacklight_min_matches = 3)
            assert rows(store, "SELECT guard FROM flags") == []
    flags = rows(store, "SELECT guard, action, status FROM flags")
    assert ("blacklight", "flag", "open") in flags


def test_blocking_detector_keeps_queries_from_the_model(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    client, store, keys = make_client(blacklight_action="block", blacklight_min_matches=1)
    model = client.app.state.pipeline.model  # type: ignore[attr-defined]
    payload = {"inputs": digits_inputs(digits_entry, 7, 1)}
    assert (
        client.post("/v1/predict", headers=bearer(keys["client"]), json=payload).status_code == 200
    )
    used = model.counter.count
    blocked = client.post("/v1/predict", headers=bearer(keys["admin"]), json=payload)
    assert blocked.status_code == 403 and model.counter.count == used
    assert rows(store, "SELECT guard, action FROM flags") == [("blacklight", "block")]


def test_feedback_only_on_own_predictions_and_existing_samples(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    client, store, keys = make_client()
    other = store.create_key("client", "someone else")[1]
    prediction = client.post(
        "/v1/predict", headers=bearer(keys["client"]), json={"inputs": digits_inputs(digits_entry)}
    ).json()
    body = {"prediction_id": prediction["id"], "label": 1}
    assert client.post("/v1/feedback", headers=bearer(other), json=body).status_code == 404
    assert client.post("/v1/feedback", headers=bearer(keys["admin"]), json=body).status_code == 202
    beyond = {**body, "sample": 2}
    assert (
        client.post("/v1/feedback", headers=bearer(keys["client"]), json=beyond).status_code == 422
    )


def test_forwarded_address_is_trusted_only_from_a_proxy(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    # the test client connects from 198.51.100.9
    client, store, keys = make_client(
        trusted_proxies=["198.51.100.0/24"], rate_limit_address="2/minute"
    )
    payload = {"inputs": digits_inputs(digits_entry, 0, 1)}
    for address in ("203.0.113.1", "203.0.113.2"):
        headers = {**bearer(keys["client"]), "X-Forwarded-For": address}
        assert client.post("/v1/predict", headers=headers, json=payload).status_code == 200
    recorded = {r[0] for r in rows(store, "SELECT address FROM requests")}
    assert recorded == {"203.0.113.1", "203.0.113.2"}
    # each forwarded address has its own bucket
    headers = {**bearer(keys["admin"]), "X-Forwarded-For": "203.0.113.1"}
    assert client.post("/v1/predict", headers=headers, json=payload).status_code == 200
    assert client.post("/v1/predict", headers=headers, json=payload).status_code == 429


def test_untrusted_peer_cannot_choose_its_address(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    client, store, keys = make_client(rate_limit_address="1/minute")
    payload = {"inputs": digits_inputs(digits_entry, 0, 1)}
    first = {**bearer(keys["client"]), "X-Forwarded-For": "203.0.113.1"}
    second = {**bearer(keys["admin"]), "X-Forwarded-For": "203.0.113.2"}
    assert client.post("/v1/predict", headers=first, json=payload).status_code == 200
    assert client.post("/v1/predict", headers=second, json=payload).status_code == 429
    assert {r[0] for r in rows(store, "SELECT address FROM requests")} == {"198.51.100.9"}


def test_slow_action_delays_the_answer(make_client: Build, digits_entry: ZooEntry) -> None:
    import time

    client, store, keys = make_client(
        blacklight_action="slow", blacklight_min_matches=1, slow_seconds=0.3
    )
    payload = {"inputs": digits_inputs(digits_entry, 3, 1)}
    assert (
        client.post("/v1/predict", headers=bearer(keys["client"]), json=payload).status_code == 200
    )
    start = time.perf_counter()
    again = client.post("/v1/predict", headers=bearer(keys["client"]), json=payload)
    assert again.status_code == 200 and time.perf_counter() - start >= 0.3
    assert rows(store, "SELECT guard, action FROM flags") == [("blacklight", "slow")]


def test_random_search_split_over_ten_keys_is_flagged_within_50_queries(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    import numpy as np

    client, store, _ = make_client()
    # admins see scores, which a score-based attack needs
    keys = [store.create_key("admin", f"sybil {i}")[1] for i in range(10)]
    x0, label = digits_entry.test.x[11], int(digits_entry.test.y[11])
    rng = np.random.default_rng(0)
    current, best = x0.copy(), np.inf
    for i in range(50):
        row, col = rng.integers(0, 6, size=2)
        candidate = current.copy()
        patch = x0[:, row : row + 3, col : col + 3] + rng.choice([-0.3, 0.3])
        candidate[:, row : row + 3, col : col + 3] = np.clip(patch, 0, 1)
        answer = client.post(
            "/v1/predict", headers=bearer(keys[i % 10]), json={"inputs": [candidate.tolist()]}
        )
        scores = np.asarray(answer.json()["predictions"][0]["scores"])
        margin = scores[label] - np.delete(scores, label).max()
        if margin < best:
            current, best = candidate, margin
    flagged = rows(store, "SELECT DISTINCT identity FROM flags WHERE guard = 'blacklight'")
    assert len(flagged) >= 9  # every key but (at most) the one that sent the first query


def test_unauthenticated_requests_are_rate_limited_per_address(make_client: Build) -> None:
    client, store, _ = make_client(rate_limit_address="3/minute")
    codes = [
        client.post("/v1/predict", headers=bearer(f"bst_00000000000{i}_guess")).status_code
        for i in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    assert len(rows(store, "SELECT id FROM requests")) == 4
