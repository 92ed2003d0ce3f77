"""Review login sessions kept in the gateway's database, so every gateway process shares them.

Several gateway processes behind a load balancer each see only some of an admin's requests;
a session opened on one must hold on all. A session is a random 256-bit token sent in a
cookie; the database keeps only its SHA-256 (a leaked database opens no session), the admin's
key id, a random CSRF token for that session, and an expiry time. Expired sessions are purged
whenever one is opened, and one key holds at most `MAX_PER_KEY` sessions (the oldest go).

Callers with a Bearer key have no session; their CSRF token is an HMAC of their key id under
a secret that the first process creates in the database and every process then reads.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bastion.core.errors import ConfigError
from bastion.core.validation import check_int
from bastion.gateway.store import GatewaySecret, ReviewSession, Store

__all__ = [
    "MAX_PER_KEY",
    "ReviewSessions",
    "SessionInfo",
    "shared_secret",
]

#: Most live sessions one key may hold; opening another ends the oldest.
MAX_PER_KEY = 20
_TOKEN = 43  # characters of secrets.token_urlsafe(32)


def _now() -> datetime:
    return datetime.now(UTC)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    """A live session: the admin's key id and the session's CSRF token."""

    key_id: str
    csrf: str


class ReviewSessions:
    """Open, look up and end review sessions in ``store``'s database.

    Args:
        store: the gateway's store (migrated to revision 0003 or later).
        seconds: how long a session lasts after it is opened.
    """

    def __init__(self, store: Store, *, seconds: int) -> None:
        self.store = store
        self.seconds = check_int("seconds", seconds, low=1)
        self._secret: bytes | None = None

    def open(self, key_id: str) -> tuple[str, SessionInfo]:
        """Open a session for ``key_id``; return its token (for the cookie) and its info."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = _now()
        with self.store.session() as s, s.begin():
            s.execute(delete(ReviewSession).where(ReviewSession.expires_at <= now))
            live = s.scalars(
                select(ReviewSession.id)
                .where(ReviewSession.key_id == key_id)
                .order_by(ReviewSession.id.desc())
                .offset(MAX_PER_KEY - 1)
            ).all()
            if live:
                s.execute(delete(ReviewSession).where(ReviewSession.id.in_(live)))
            s.add(
                ReviewSession(
                    token_hash=_hash(token),
                    key_id=key_id,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + timedelta(seconds=self.seconds),
                )
            )
        return token, SessionInfo(key_id, csrf)

    def get(self, token: str) -> SessionInfo | None:
        """The live session behind ``token``, or None (unknown, malformed or expired)."""
        if len(token) != _TOKEN:
            return None
        with self.store.session() as s:
            row = s.scalars(
                select(ReviewSession).where(
                    ReviewSession.token_hash == _hash(token), ReviewSession.expires_at > _now()
                )
            ).first()
            return None if row is None else SessionInfo(row.key_id, row.csrf)

    def close(self, token: str) -> None:
        """End the session behind ``token`` (nothing happens for an unknown one)."""
        with self.store.session() as s, s.begin():
            s.execute(delete(ReviewSession).where(ReviewSession.token_hash == _hash(token)))

    def bearer_csrf(self, key_id: str) -> str:
        """The CSRF token of a Bearer caller: the same in every process on this database."""
        if self._secret is None:
            self._secret = shared_secret(self.store, "review-csrf")
        return hmac.new(self._secret, ("key:" + key_id).encode("utf-8"), hashlib.sha256).hexdigest()


def shared_secret(store: Store, name: str) -> bytes:
    """The secret called ``name`` in ``store``, created (once, by whichever process is first).

    Raises:
        ConfigError: the secret can be neither read nor stored.
    """
    with store.session() as s:
        row = s.get(GatewaySecret, name)
        if row is not None:
            return bytes.fromhex(row.value)
    try:
        with store.session() as s, s.begin():
            s.add(GatewaySecret(name=name, value=secrets.token_hex(32)))
    except IntegrityError:
        pass  # another process stored it first: read theirs below
    with store.session() as s:
        row = s.get(GatewaySecret, name)
        if row is None:
            raise ConfigError(f"Cannot store the shared secret {name!r} in {store.url!r}")
        return bytes.fromhex(row.value)
