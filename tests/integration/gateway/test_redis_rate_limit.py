"""Rate limits hold exactly across two gateway processes that share one Redis.

A private ``redis-server`` (loopback, no persistence) and four real ``bastion serve``
processes: two count in that Redis, two in their own memory (the control, which lets twice the
limit through). Every gateway reads one SQLite database holding the keys. Skips when
``redis-server`` is not installed (``scripts/services.sh`` installs it in CI).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch

from bastion.data.zoo import ZooEntry
from bastion.defenses.guards import Action, Query, RateLimitGuard
from bastion.defenses.guards.ratelimit import RateLimitStorageError, redact_uri
from bastion.gateway import Store

pytestmark = pytest.mark.integration

LIMIT = 20
REQUESTS = 2 * LIMIT

LAUNCH = (
    "import sys, typer\n"
    "from bastion.cli.serve import register\n"
    "app = typer.Typer()\n"
    "register(app)\n"
    "app(args=sys.argv[1:], prog_name='bastion')\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class RedisServer:
    """A private redis-server on a loopback port, in its own directory, persisting nothing."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not on PATH (apt-get install redis-server)")
        argv = [exe, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", "."]
        self.proc = subprocess.Popen(
            argv, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        pytest.fail(f"redis-server on port {self.port} did not answer PING within 10 s")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


# --- the guard on its own: two instances stand for two processes -----------------------------


def test_two_guards_share_one_exact_count_in_redis(redis_server: RedisServer) -> None:
    guards = [RateLimitGuard(limit=f"{LIMIT}/minute", storage_uri=redis_server.url) for _ in "ab"]
    verdicts = [guards[i % 2].check(Query(identity="alice", address="")) for i in range(REQUESTS)]
    allowed = [v.action is Action.ALLOW for v in verdicts]
    assert allowed == [True] * LIMIT + [False] * LIMIT
    assert all(v.evidence["retry_after"] >= 1 for v in verdicts[LIMIT:])

    # In parallel: each charge is one atomic check-and-add, so exactly LIMIT get through.
    def one(i: int) -> bool:
        return guards[i % 2].check(Query(identity="bob", address="")).action is Action.ALLOW

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(one, range(REQUESTS))) == LIMIT

    # A batch costs one unit per sample, and a refused batch charges nothing.
    def batch(n: int) -> torch.Tensor:
        return torch.zeros(n, 1)

    assert guards[0].check(Query("carol", "", x=batch(15))).action is Action.ALLOW
    assert guards[1].check(Query("carol", "", x=batch(6))).action is Action.BLOCK
    assert guards[1].check(Query("carol", "", x=batch(5))).action is Action.ALLOW
    assert guards[0].check(Query("carol", "", x=batch(1))).action is Action.BLOCK

    # The control: two in-memory guards count apart and let twice the limit through.
    apart = [RateLimitGuard(limit=f"{LIMIT}/minute") for _ in "ab"]
    passed = sum(
        apart[i % 2].check(Query(identity="alice", address="")).action is Action.ALLOW
        for i in range(REQUESTS)
    )
    assert passed == REQUESTS


def test_guard_fails_closed_when_redis_is_down(redis_server: RedisServer) -> None:
    guard = RateLimitGuard(limit="5/minute", storage_uri=redis_server.url)
    assert guard.check(Query(identity="alice", address="")).action is Action.ALLOW
    redis_server.stop()
    with pytest.raises(RateLimitStorageError, match=r"unreachable.*refusing"):
        guard.check(Query(identity="alice", address=""))
    assert "s3cret" not in redact_uri("redis://user:s3cret@10.0.0.1:6379/2")
    assert redact_uri("redis://user:s3cret@10.0.0.1:6379/2") == "redis://user:***@10.0.0.1:6379/2"


# --- real gateway processes --------------------------------------------------------------------


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path


@dataclass
class Cluster:
    redis: RedisServer
    shared: list[Gateway]  # count in Redis
    apart: list[Gateway]  # count in memory, each its own
    store: Store
    inputs: list[object]


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, zoo_cache: Path, digits_entry: ZooEntry
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("redis-gateways")
    server = RedisServer(tmp)
    server.start()
    db_url = f"sqlite:///{tmp / 'gateway.db'}"
    store = Store(db_url)  # migrates the schema once, before any gateway opens it
    store.create_key("admin", "so that no gateway prints a fresh admin key")
    gateways: dict[str, list[Gateway]] = {"shared": [], "apart": []}
    for group, storage in (("shared", server.url), ("apart", "memory://")):
        config = tmp / f"{group}.toml"
        config.write_text(
            f'zoo_cache = "{zoo_cache}"\ndatabase_url = "{db_url}"\n[guards]\n'
            f'rate_limit_identity = "{LIMIT}/minute"\nrate_limit_address = "100000/minute"\n'
            f'rate_limit_storage = "{storage}"\n'
            "blacklight = false\nnearest_neighbour = false\nboundary = false\n"
        )
        for i in range(2):
            port, log = free_port(), tmp / f"{group}-{i}.log"
            argv = [sys.executable, "-u", "-c", LAUNCH, "serve", "--config", str(config)]
            proc = subprocess.Popen(
                [*argv, "--port", str(port)],
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            gateways[group].append(Gateway(proc, f"http://127.0.0.1:{port}", log))
    everyone = gateways["shared"] + gateways["apart"]
    try:
        deadline = time.monotonic() + 60
        waiting = list(everyone)
        while waiting and time.monotonic() < deadline:
            gw = waiting[0]
            if gw.proc.poll() is not None:
                pytest.fail(f"a gateway exited at start:\n{gw.log.read_text()}")
            try:
                if httpx.get(f"{gw.base}/healthz", timeout=1).status_code == 200:
                    waiting.pop(0)
                    continue
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        if waiting:
            pytest.fail("a gateway did not start:\n" + waiting[0].log.read_text())
        inputs = digits_entry.test.x[:1].tolist()
        yield Cluster(server, gateways["shared"], gateways["apart"], store, inputs)
    finally:
        for gw in everyone:
            stop(gw.proc)
        server.stop()
        store.close()


def send(cluster: Cluster, gateways: list[Gateway], key: str, i: int) -> httpx.Response:
    return httpx.post(
        f"{gateways[i % 2].base}/v1/predict",
        json={"inputs": cluster.inputs},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def assert_exact(answers: list[httpx.Response]) -> None:
    codes = [a.status_code for a in answers]
    assert codes.count(200) == LIMIT and codes.count(429) == LIMIT, codes
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)


def test_two_processes_share_one_limit_sequentially(cluster: Cluster) -> None:
    _, key = cluster.store.create_key("client", "sequential")
    answers = [send(cluster, cluster.shared, key, i) for i in range(REQUESTS)]
    assert_exact(answers)
    # alternating one by one: the first LIMIT pass, whichever process answers
    assert [a.status_code for a in answers] == [200] * LIMIT + [429] * LIMIT


def test_two_processes_share_one_limit_in_parallel(cluster: Cluster) -> None:
    _, key = cluster.store.create_key("client", "parallel")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: send(cluster, cluster.shared, key, i), range(REQUESTS)))
    assert_exact(answers)


def test_memory_storage_lets_each_process_count_apart(cluster: Cluster) -> None:
    """The control: without Redis each process has its own bucket, so twice the limit passes."""
    _, key = cluster.store.create_key("client", "apart")
    codes = [send(cluster, cluster.apart, key, i).status_code for i in range(REQUESTS)]
    assert codes == [200] * REQUESTS


def test_gateway_fails_closed_while_redis_is_down(cluster: Cluster) -> None:
    key_id, key = cluster.store.create_key("client", "outage")
    assert send(cluster, cluster.shared, key, 0).status_code == 200
    cluster.redis.stop()
    try:
        for i in range(2):
            down = send(cluster, cluster.shared, key, i)
            assert down.status_code == 503, down.text
            assert "rate-limit store" in down.json()["error"]["message"]
            anonymous = httpx.post(f"{cluster.shared[i].base}/v1/predict", json={}, timeout=10)
            assert anonymous.status_code == 503
    finally:
        cluster.redis.start()  # same port: the gateways reconnect on their next request
    assert send(cluster, cluster.shared, key, 1).status_code == 200
    for gw in cluster.shared:
        log = gw.log.read_text()
        assert "failing closed (503): Rate-limit store redis://127.0.0.1" in log
        assert "Traceback" not in log
    records = [r for r in cluster.store.requests() if r.identity == key_id]
    refused = [r for r in records if r.status == 503]
    assert len(refused) == 2 and not any(r.reached_model for r in refused)
