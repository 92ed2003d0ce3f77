"""A bounded load test against a real gateway process: no 5xx, everything recorded, p99 bound."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gwprocs import StartGateway, gateway_settings

from bastion.data.zoo import ZooEntry
from bastion.gateway import Store

pytestmark = pytest.mark.integration

CLIENTS = 8
PER_CLIENT = 40
#: The p99 bound, generous: the test machine is shared and has 2 cores.
P99_SECONDS = 2.0
#: Stop sending after this long even if not every request went out.
BUDGET_SECONDS = 12.0


def test_bounded_concurrent_load(
    tmp_path: Path, start_gateway: StartGateway, digits_entry: ZooEntry
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = Store(url)
    keys = [store.create_key("client", f"load {i}")[1] for i in range(4)]
    store.close()
    gateway = start_gateway(gateway_settings(url))
    rows = digits_entry.test.x
    results: list[tuple[int, float, str]] = []
    lock = threading.Lock()
    ends = time.monotonic() + BUDGET_SECONDS

    def client(n: int) -> None:
        auth = {"Authorization": f"Bearer {keys[n % len(keys)]}"}
        with httpx.Client(base_url=gateway.url, headers=auth, timeout=10) as http:
            for j in range(PER_CLIENT):
                if time.monotonic() > ends:
                    return
                batch = [rows[(n * PER_CLIENT + j + k) % len(rows)].tolist() for k in range(2)]
                started = time.perf_counter()
                answer = http.post("/v1/predict", json={"inputs": batch})
                took = time.perf_counter() - started
                with lock:
                    results.append((answer.status_code, took, answer.headers["X-Request-Id"]))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BUDGET_SECONDS + 15)
    wall = time.perf_counter() - began
    statuses = [status for status, _, _ in results]
    latencies = np.array([took for _, took, _ in results])
    p50, p99 = np.quantile(latencies, [0.5, 0.99])
    print(
        f"\n{len(results)} requests from {CLIENTS} clients in {wall:.2f} s "
        f"({len(results) / wall:.0f}/s): p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )
    assert not any(status >= 500 for status in statuses)
    assert set(statuses) == {200}
    assert len(results) >= CLIENTS * PER_CLIENT // 2, "too few requests in the time budget"
    assert p99 < P99_SECONDS
    store = Store(url)
    try:
        recorded = {r.id: r for r in store.requests(limit=1_000_000)}
    finally:
        store.close()
    for _, _, request_id in results:
        assert recorded[request_id].status == 200 and recorded[request_id].samples == 2
