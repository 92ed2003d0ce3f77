"""The audit store: API keys, every request with each guard's verdict, feedback and flags.

SQLAlchemy over SQLite by default (write-ahead logging on, so readers never block the
writer) or any URL SQLAlchemy accepts, e.g. PostgreSQL. The schema is built and upgraded by
the Alembic migrations in ``bastion/gateway/migrations`` whenever a `Store` opens a database.

Keys are stored only as SHA-256 hashes: a key is 256 bits of randomness, so a plain hash
suffices (no password stretching) and a leaked database yields no usable key. A key reads
``bst_<id>_<secret>``; the id finds the row, the hash of the whole key is compared in
constant time.

Database URLs carry credentials: every error and the `Store.url` attribute show them with the
password replaced by ``***`` (see `bastion.gateway.database`). Text that reaches the database
from a request is cleaned of NUL characters, which PostgreSQL refuses in text columns.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    select,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from bastion.core.errors import ConfigError, ValidationError
from bastion.core.validation import check_choice
from bastion.gateway.database import open_engine, redact_error, redact_url

__all__ = [
    "ROLES",
    "ApiKey",
    "Base",
    "FeedbackRecord",
    "FlagRecord",
    "GatewaySecret",
    "KeyInfo",
    "Principal",
    "RequestRecord",
    "ReviewSession",
    "Store",
    "dumps",
    "hash_key",
    "new_request_id",
]

ROLES = ("client", "admin")
_PREFIX = "bst"
_KEY_ID = re.compile(r"[0-9a-f]{1,32}")
_MAX_NAME = 200


def _now() -> datetime:
    return datetime.now(UTC)


def hash_key(key: str) -> str:
    """The hex SHA-256 of an API key, as stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _text(value: str) -> str:
    """Text safe for every backend: PostgreSQL refuses NUL characters."""
    return value.replace("\x00", "\ufffd")


class Base(DeclarativeBase):
    """Declarative base of the gateway's tables."""


class ApiKey(Base):
    """An API key: its public id, the hash of the whole key, its role; never the key itself."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    blocked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    blocked_by: Mapped[str | None] = mapped_column(String(32), nullable=True)


class RequestRecord(Base):
    """One request as answered: who, when, what came in (hashed), what went out, each verdict."""

    __tablename__ = "requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    identity: Mapped[str] = mapped_column(String(32), index=True, default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    method: Mapped[str] = mapped_column(String(8), default="")
    path: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[int] = mapped_column(Integer)
    input_hash: Mapped[str] = mapped_column(String(64), default="")
    samples: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[str] = mapped_column(Text, default="")
    verdicts: Mapped[str] = mapped_column(Text, default="[]")
    action: Mapped[str] = mapped_column(String(8), default="allow")
    error: Mapped[str] = mapped_column(Text, default="")
    reached_model: Mapped[int] = mapped_column(Integer, default=0)


class FeedbackRecord(Base):
    """A label someone proposed for an earlier prediction; quarantined, never applied here."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    contributor: Mapped[str] = mapped_column(String(32), index=True)
    label: Mapped[int] = mapped_column(Integer)
    sample: Mapped[int] = mapped_column(Integer, default=0)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    status: Mapped[str] = mapped_column(String(16), default="quarantined")


class FlagRecord(Base):
    """A guard's flag on a request, waiting for a person's review."""

    __tablename__ = "flags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    identity: Mapped[str] = mapped_column(String(32), index=True)
    guard: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text, default="{}")
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ReviewSession(Base):
    """A review login session: the hash of its token, whose it is, its CSRF token, its end."""

    __tablename__ = "review_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class GatewaySecret(Base):
    """A random secret shared by every gateway process on one database, found by its name."""

    __tablename__ = "gateway_secrets"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the key's public id, its role, and whether an admin blocked it."""

    key_id: str
    role: str
    blocked: bool = False


@dataclass(frozen=True)
class KeyInfo:
    """What `Store.list_keys` shows of a key (never the key or its hash)."""

    key_id: str
    role: str
    name: str
    created_at: datetime
    revoked: bool
    blocked: bool = False


class Store:
    """The gateway's database: create it with a SQLAlchemy URL; tables are created if absent."""

    def __init__(self, url: str) -> None:
        #: The database URL with its password hidden (the only form kept).
        self.url = redact_url(url)
        try:
            self.engine = open_engine(url)
            self._migrate()
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            message = redact_error(str(exc), url)
            raise ConfigError(f"Cannot open the gateway database {self.url!r}: {message}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # A hash compared when the key id is unknown, so both paths cost the same.
        self._dummy = hash_key(secrets.token_urlsafe(32))

    def _migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (creating it in an empty database)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def session(self) -> Session:
        """A new ORM session (use as a context manager)."""
        return self._sessions()

    # --- keys --------------------------------------------------------------------------
    def create_key(self, role: str = "client", name: str = "") -> tuple[str, str]:
        """Create a key; return ``(key_id, key)``. The key is shown once and never stored."""
        check_choice("role", role, ROLES)
        if len(name) > _MAX_NAME:
            raise ValidationError(
                f"Expected name of at most {_MAX_NAME} characters, but got {len(name)}"
            )
        name = _text(name)
        key_id = secrets.token_hex(6)
        key = f"{_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        with self.session() as s, s.begin():
            s.add(ApiKey(key_id=key_id, key_hash=hash_key(key), role=role, name=name))
        return key_id, key

    def list_keys(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        with self.session() as s:
            rows = s.scalars(select(ApiKey).order_by(ApiKey.id)).all()
            return [
                KeyInfo(
                    r.key_id,
                    r.role,
                    r.name,
                    r.created_at,
                    r.revoked_at is not None,
                    r.blocked_at is not None,
                )
                for r in rows
            ]

    def get_key(self, key_id: str) -> KeyInfo | None:
        """What `list_keys` shows of one key, or None for an unknown id."""
        if not _KEY_ID.fullmatch(key_id):
            return None
        with self.session() as s:
            r = s.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
            if r is None:
                return None
            blocked = r.blocked_at is not None
            return KeyInfo(
                r.key_id, r.role, r.name, r.created_at, r.revoked_at is not None, blocked
            )

    def set_blocked(self, key_id: str, blocked: bool, by: str) -> None:
        """Block (or unblock) a key: a blocked key authenticates but is refused with 403.

        Raises:
            ValidationError: ``key_id`` names no key.
        """
        with self.session() as s, s.begin():
            row = None
            if _KEY_ID.fullmatch(key_id):
                row = s.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
            if row is None:
                raise ValidationError(f"Expected the id of an existing key, but got {key_id!r}")
            if blocked and row.blocked_at is None:
                row.blocked_at, row.blocked_by = _now(), by
            elif not blocked:
                row.blocked_at, row.blocked_by = None, None

    def revoke_key(self, key_id: str) -> None:
        """Revoke a key by its id; raise `ValidationError` for an unknown id."""
        with self.session() as s, s.begin():
            row = None
            if _KEY_ID.fullmatch(key_id):
                row = s.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
            if row is None:
                raise ValidationError(f"Expected the id of an existing key, but got {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = _now()

    def authenticate(self, key: str) -> Principal | str:
        """The `Principal` for ``key``, or the reason it is refused (unknown, revoked)."""
        parts = key.split("_", 2)
        key_id = parts[1] if len(parts) == 3 and parts[0] == _PREFIX else ""
        row = None
        if _KEY_ID.fullmatch(key_id):
            with self.session() as s:
                row = s.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
        stored = row.key_hash if row is not None else self._dummy
        matches = hmac.compare_digest(hash_key(key), stored)
        if row is None or not matches:
            return "invalid API key"
        if row.revoked_at is not None:
            return "this API key has been revoked"
        return Principal(row.key_id, row.role, row.blocked_at is not None)

    # --- records -----------------------------------------------------------------------
    def record(self, request: RequestRecord, flags: list[FlagRecord]) -> None:
        """Write one request and its flags in one transaction (committed when this returns)."""
        for row in (request, *flags):
            for column in row.__table__.columns:
                value = getattr(row, column.key, None)
                if isinstance(value, str) and "\x00" in value:
                    setattr(row, column.key, _text(value))
        with self.session() as s, s.begin():
            s.add(request)
            s.flush()
            s.add_all(flags)

    def prediction_owner(self, prediction_id: str) -> tuple[str, int] | None:
        """Who received prediction ``prediction_id`` and for how many samples; None if unknown."""
        if "\x00" in prediction_id:
            return None
        with self.session() as s:
            row = s.get(RequestRecord, prediction_id)
            if row is None or row.reached_model != 1 or row.status != 200:
                return None
            return row.identity, row.samples

    def add_feedback(
        self, prediction_id: str, contributor: str, label: int, sample: int = 0
    ) -> int:
        """Quarantine a proposed label for one sample of a prediction; return its id."""
        with self.session() as s, s.begin():
            row = FeedbackRecord(
                prediction_id=prediction_id, contributor=contributor, label=label, sample=sample
            )
            s.add(row)
            s.flush()
            return row.id

    def requests(self, limit: int = 1000) -> list[RequestRecord]:
        """The most recent requests, newest first."""
        with self.session() as s:
            query = select(RequestRecord).order_by(RequestRecord.time.desc()).limit(limit)
            return list(s.scalars(query).all())

    def flags(self) -> list[FlagRecord]:
        """Every flag, oldest first."""
        with self.session() as s:
            return list(s.scalars(select(FlagRecord).order_by(FlagRecord.id)).all())

    def resolve_flag(self, flag_id: int, by: str, status: str = "dismissed") -> None:
        """Close an open flag after review, noting who closed it and when.

        Raises:
            ValidationError: ``flag_id`` names no open flag.
        """
        with self.session() as s, s.begin():
            row = s.get(FlagRecord, flag_id)
            if row is None or row.status != "open":
                raise ValidationError(f"Expected the id of an open flag, but got {flag_id!r}")
            row.status, row.resolved_at, row.resolved_by = status, _now(), by

    def feedback(self) -> list[FeedbackRecord]:
        """Every quarantined feedback entry, oldest first."""
        with self.session() as s:
            return list(s.scalars(select(FeedbackRecord).order_by(FeedbackRecord.id)).all())

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()


def new_request_id() -> str:
    """A fresh random request (and prediction) id."""
    return str(uuid.uuid4())


def dumps(value: Any) -> str:
    """Compact JSON for the text columns."""
    return json.dumps(value, separators=(",", ":"), default=str)
