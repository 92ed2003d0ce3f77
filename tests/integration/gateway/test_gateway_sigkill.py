"""SIGKILL the gateway under load: every request it acknowledged is in the audit log after."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from gwprocs import StartGateway, gateway_settings
from sqlalchemy import text

from bastion.data.zoo import ZooEntry
from bastion.gateway import Store

pytestmark = pytest.mark.integration

THREADS = 6
#: Acknowledgements to collect before the kill (the kill then lands mid-load).
BEFORE_KILL = 80


def test_acknowledged_requests_survive_sigkill(
    tmp_path: Path, start_gateway: StartGateway, digits_entry: ZooEntry
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = Store(url)
    keys = [store.create_key("client", f"load {i}")[1] for i in range(3)]
    store.close()
    settings = gateway_settings(url)
    gateway = start_gateway(settings)
    rows = digits_entry.test.x
    acked: list[str] = []
    refused: list[int] = []
    cut_off = [0]  # clients whose request failed (in flight, or refused) once it died
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        auth = {"Authorization": f"Bearer {keys[n % len(keys)]}"}
        with httpx.Client(base_url=gateway.url, headers=auth, timeout=10) as http:
            i = n
            while not stop.is_set():
                try:
                    answer = http.post(
                        "/v1/predict", json={"inputs": [rows[i % len(rows)].tolist()]}
                    )
                except httpx.TransportError:
                    with lock:
                        cut_off[0] += 1
                    return
                with lock:
                    if 200 <= answer.status_code < 300:
                        acked.append(answer.json()["id"])
                        if answer.headers["X-Request-Id"] != acked[-1]:
                            refused.append(-1)
                    else:
                        refused.append(answer.status_code)
                i += THREADS

    threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 20
        while len(acked) < BEFORE_KILL and time.monotonic() < deadline:
            time.sleep(0.01)
        gateway.kill()  # SIGKILL while the clients keep sending
        for thread in threads:  # each stops at its first failed request
            thread.join(15)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert gateway.process.exitcode == -9
    assert len(acked) >= BEFORE_KILL, f"only {len(acked)} answers before the deadline"
    assert refused == []
    assert cut_off[0] == THREADS  # every client was still sending when the gateway died

    restarted = start_gateway(settings)
    auth = {"Authorization": f"Bearer {keys[0]}"}
    after = httpx.post(
        restarted.url + "/v1/predict",
        json={"inputs": [rows[0].tolist()]},
        headers=auth,
        timeout=10,
    )
    assert after.status_code == 200
    store = Store(url)
    try:
        recorded = {r.id for r in store.requests(limit=1_000_000)}
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    finally:
        store.close()
    missing = set(acked) - recorded
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged requests are not recorded"
    assert after.json()["id"] in recorded
