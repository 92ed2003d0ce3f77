"""A real ``bastion serve`` process (uvicorn) on 127.0.0.1, queried over HTTP, then stopped."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bastion.data.zoo import ZooEntry

pytestmark = pytest.mark.integration

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


def test_real_server_answers_authenticates_and_stops(
    tmp_path: Path, zoo_cache: Path, digits_entry: ZooEntry
) -> None:
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'zoo_cache = "{zoo_cache}"\n'
        f'database_url = "sqlite:///{tmp_path / "audit.db"}"\n'
        '[guards]\nrate_limit_identity = "5/minute"\n'
    )
    log = (tmp_path / "server.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", LAUNCH, "serve", "--config", str(config), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the gateway did not start:\n" + Path(log.name).read_text())
        key = re.search(r"bst_[0-9a-f]{12}_[A-Za-z0-9_-]+", Path(log.name).read_text())
        assert key is not None
        auth = {"Authorization": f"Bearer {key.group(0)}"}
        inputs = digits_entry.test.x[:2].tolist()
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.post("/v1/predict", json={"inputs": inputs}).status_code == 401
            answer = client.post("/v1/predict", json={"inputs": inputs}, headers=auth)
            assert answer.status_code == 200
            labels = [p["label"] for p in answer.json()["predictions"]]
            assert labels == digits_entry.test.y[:2].tolist()
            bad = client.post("/v1/predict", content=b"{", headers=auth)
            assert bad.status_code == 400
            # 2 samples + 1 bad request charged: 2 more samples reach the 5/minute limit
            assert (
                client.post("/v1/predict", json={"inputs": inputs}, headers=auth).status_code == 200
            )
            limited = client.post("/v1/predict", json={"inputs": inputs}, headers=auth)
            assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
            metrics = client.get("/metrics", headers=auth).text
            assert "bastion_gateway_requests_total" in metrics
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
    assert proc.returncode is not None
    # the key is printed once at start and appears nowhere else in the server's output
    assert Path(log.name).read_text().count(key.group(0)) == 1
