"""Real gateway processes (uvicorn on 127.0.0.1) and a real PostgreSQL for the gateway tests.

A gateway process is forked from the test process once the model is loaded, so it starts in
about a second instead of re-importing torch; it then runs uvicorn on its own socket, in its
own process group, and is killed (SIGKILL to the group) by the fixture's finaliser whatever
happens. ``bastion serve`` itself, started cold, is tested in ``test_gateway_uvicorn.py``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gwprocs import PG_BIN, PG_PASSWORD, Gateway, Postgres, StartGateway, free_port

from bastion.gateway import GatewaySettings, Served, load_served


def _run_gateway(settings: GatewaySettings, served: Served, port: int, log: str) -> None:
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import torch
    import uvicorn

    from bastion.gateway import create_app

    torch.set_num_threads(1)
    app = create_app(settings, served=served)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@pytest.fixture(scope="session")
def digits_served(zoo_cache: Path) -> Served:
    """The digits CNN as the gateway loads it, loaded once (forked gateways share it)."""
    return load_served(GatewaySettings(zoo_cache=str(zoo_cache)))


@pytest.fixture()
def start_gateway(tmp_path: Path, digits_served: Served) -> Iterator[StartGateway]:
    """Start gateway processes for given settings; every one is killed at teardown."""
    started: list[Gateway] = []
    context = multiprocessing.get_context("fork")

    def start(settings: GatewaySettings) -> Gateway:
        port = free_port()
        log = tmp_path / f"gateway{len(started)}.log"
        log.touch()
        process = context.Process(
            target=_run_gateway, args=(settings, digits_served, port, str(log)), daemon=True
        )
        process.start()
        gateway = Gateway(f"http://127.0.0.1:{port}", process, log)
        started.append(gateway)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not process.is_alive():
                pytest.fail("the gateway process died:\n" + gateway.output())
            try:
                if httpx.get(gateway.url + "/healthz", timeout=1).status_code == 200:
                    return gateway
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail("the gateway did not answer within 30 s:\n" + gateway.output())

    yield start
    for gateway in started:
        gateway.kill()


def _as_postgres_user() -> list[str]:
    return ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL 15 in a fresh temporary data directory, stopped at teardown.

    initdb refuses to run as root, so as root the directory belongs to ``nobody`` and the
    server runs as ``nobody``; TCP on 127.0.0.1 with SCRAM passwords, its socket in the
    directory.
    """
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        pytest.skip(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    pytest.importorskip("psycopg")
    root = Path(tempfile.mkdtemp(prefix="bastion-pg-"))
    data, pwfile, log = root / "data", root / "pw", root / "server.log"
    run_as = _as_postgres_user()
    ctl = [*run_as, str(PG_BIN / "pg_ctl"), "-D", str(data)]
    port = free_port()
    try:
        pwfile.write_text(PG_PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(root, "nobody")
            shutil.chown(pwfile, "nobody")
        initdb = [
            *run_as,
            str(PG_BIN / "initdb"),
            *("-D", str(data), "-U", "bastion", "--pwfile", str(pwfile), "--no-sync"),
            *("--auth-host=scram-sha-256", "--auth-local=scram-sha-256"),
        ]
        subprocess.run(initdb, check=True, capture_output=True)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        started = subprocess.run(
            [*ctl, "-l", str(log), "-o", options, "-w", "-t", "30", "start"], capture_output=True
        )
        if started.returncode != 0:
            text = log.read_text(errors="replace") if log.exists() else ""
            pytest.fail(f"PostgreSQL did not start: {started.stderr!r}\n{text}")
        yield Postgres(port, "bastion", PG_PASSWORD)
    finally:
        subprocess.run([*ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        pidfile = data / "postmaster.pid"
        if pidfile.exists():  # stop failed: kill the postmaster ourselves
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
