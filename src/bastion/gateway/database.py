"""Opening the gateway's database: engines per backend, and URLs with their passwords hidden.

SQLite runs in write-ahead-log mode (readers never block the writer; a commit survives the
process being killed, since it is in the operating system's hands once written) with foreign
keys enforced. A driverless ``postgresql://`` URL uses psycopg 3 when psycopg2 is absent.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["open_engine", "redact_error", "redact_url"]

_USERINFO = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, safe for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _USERINFO.sub(r"\1***@", url)


def redact_error(message: str, url: str) -> str:
    """``message`` with the password of ``url`` (if it has one) replaced by ``***``."""
    try:
        password = make_url(url).password or ""
    except (ArgumentError, ValueError):
        found = _USERINFO.search(url)
        password = url[found.end(1) : found.end() - 1] if found else ""
    return message.replace(password, "***") if password else message


def _parse(url: str) -> URL:
    parsed = make_url(url)
    driverless = parsed.drivername in ("postgresql", "postgres")
    if driverless and importlib.util.find_spec("psycopg2") is None:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def open_engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite gets WAL, NORMAL sync and foreign keys on each connection).

    Raises:
        sqlalchemy.exc.ArgumentError: the URL cannot be parsed.
        ImportError: the URL's database driver is not installed.
    """
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    engine = create_engine(parsed, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine
