"""Helpers of the gateway integration tests: ports, gateway processes, a PostgreSQL server."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.gateway import GatewaySettings

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PASSWORD = "s3cret-Pg-Pw-77"


StartGateway = Callable[[GatewaySettings], "Gateway"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gateway:
    """A running gateway process: its base URL, process and log file."""

    url: str
    process: multiprocessing.process.BaseProcess
    log: Path

    def kill(self) -> None:
        """SIGKILL the gateway's process group and reap it."""
        pid = self.process.pid
        if pid is not None and self.process.exitcode is None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
        self.process.join(10)

    def output(self) -> str:
        """What the gateway wrote to stdout and stderr."""
        return self.log.read_text(errors="replace")


def gateway_settings(database_url: str, **guards: Any) -> GatewaySettings:
    """Settings for a test gateway: rate limits far above the tests' traffic by default."""
    limits = {"rate_limit_identity": "1000000/minute", "rate_limit_address": "1000000/minute"}
    return GatewaySettings(database_url=database_url, guards={**limits, **guards})  # type: ignore[arg-type]


@dataclass
class Postgres:
    """A PostgreSQL server started for the tests."""

    port: int
    user: str
    password: str

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        """The SQLAlchemy URL of ``database`` on this server (psycopg 3 driver)."""
        pw = self.password if password is None else password
        return f"postgresql+psycopg://{self.user}:{pw}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; return its URL."""
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user={self.user} password={self.password}"
        with psycopg.connect(dsn + " dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def key_rows(table: str) -> dict[str, list[str]]:
    """The rows of the table ``bastion keys list`` prints, by their first cell (the key id)."""
    rows = {}
    for line in table.splitlines():
        if line[:1] in "│┃" and line[:1]:
            cells = [c.strip() for c in line[1:-1].replace("┃", "│").split("│")]
            rows[cells[0]] = cells
    return rows
