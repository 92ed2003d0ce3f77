"""Rate limits per identity and per client address, on the `limits` library's moving window.

The client address comes from ``X-Forwarded-For`` only when the connecting peer is one of the
configured trusted proxies; otherwise a client could name any address it likes and escape its
own bucket. With several proxies in a chain the right-most address not itself a trusted proxy
is the client.

With a shared store (Redis) several gateway processes count into one bucket, and each charge
is one atomic check-and-add in the store, so concurrent requests across processes cannot
overshoot a limit. When the store cannot be reached the guard raises
`RateLimitStorageError` rather than allowing traffic unlimited; the gateway answers 503.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bastion.core.errors import BastionError, ConfigError
from bastion.core.validation import check_choice, check_type, fail
from bastion.defenses.guards.interface import Action, Guard, Query, Verdict

SWEEP_EVERY_S = 1.0

__all__ = ["RateLimitGuard", "RateLimitStorageError", "client_address", "redact_uri"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Seconds a Redis connect or command may take before the store counts as unreachable (a
#: ``socket_timeout`` or ``socket_connect_timeout`` in the URI's query string wins).
REDIS_TIMEOUT_S = 2.0


class RateLimitStorageError(BastionError, ConnectionError):
    """The rate-limit store (e.g. Redis) could not be reached; nothing was charged or allowed."""


def redact_uri(uri: str) -> str:
    """``uri`` without its password, fit for a log line."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _networks(trusted: Iterable[str]) -> tuple[_Network, ...]:
    nets = []
    for i, text in enumerate(trusted):
        check_type(f"trusted_proxies[{i}]", text, str)
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise fail(f"trusted_proxies[{i}]", "an IP address or CIDR network", text) from None
    return tuple(nets)


def _is_trusted(address: str, networks: tuple[_Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(
    peer: str, forwarded_for: str | None, trusted_proxies: Iterable[str] = ()
) -> str:
    """The client's address: ``peer`` unless ``peer`` is a trusted proxy that forwarded one.

    Walks ``X-Forwarded-For`` from the right and returns the first hop that is not a trusted
    proxy; a malformed hop stops the walk there (it is what the nearest proxy saw).
    """
    networks = _networks(trusted_proxies)
    if not forwarded_for or not _is_trusted(peer, networks):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return hops[0] if hops else peer


class RateLimitGuard(Guard):
    """Limit how many samples one identity (or one client address) may send per time window.

    Uses a moving window (exact, not an approximation) from the `limits` library. Each sample
    in a batch costs one unit, so a batch cannot be used to step around the limit.

    Args:
        limit: a `limits` rate string, e.g. ``"100/minute"`` or ``"10/second;1000/hour"``.
        per: ``"identity"`` or ``"address"``: which field of the query keys the bucket.
        storage_uri: ``"memory://"`` (one process) or ``"redis://host:port/db"`` (shared).
        action: what to do when the limit is hit (``block`` answers 429).

    Raises:
        RateLimitStorageError: from `check` and `retry_after` when the store is unreachable.
    """

    needs_scores = False

    def __init__(
        self,
        *,
        limit: str = "600/minute",
        per: str = "identity",
        storage_uri: str = "memory://",
        action: Action | str = Action.BLOCK,
    ) -> None:
        # `limits` ships with the gateway extra; import it only when a rate limit is built, so
        # the other guards work with bastion's core dependencies alone.
        from limits import parse as parse_limit
        from limits.errors import ConfigurationError, StorageError
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        super().__init__(action=action)
        self.per = check_choice("per", per, ("identity", "address"))
        self.name = f"rate-limit-{per}"
        check_type("limit", limit, str)
        check_type("storage_uri", storage_uri, str)
        try:
            self.items = [parse_limit(part) for part in limit.split(";") if part.strip()]
        except ValueError:
            raise fail("limit", "a rate like '100/minute' or '10/second;500/hour'", limit) from None
        if not self.items:
            raise fail("limit", "a rate like '100/minute'", limit)
        options: dict[str, float] = {}
        if storage_uri.split(":", 1)[0] in ("redis", "rediss", "redis+unix"):
            options = {"socket_timeout": REDIS_TIMEOUT_S, "socket_connect_timeout": REDIS_TIMEOUT_S}
        try:
            if storage_uri == "memory://":
                self._storage = _inline_expiry_memory_storage()
            else:
                self._storage = storage_from_string(storage_uri, **options)
        except ConfigurationError as exc:
            raise ConfigError(
                "Expected storage_uri to be memory:// or redis://..., but got "
                f"{redact_uri(storage_uri)!r}: "
                f"{exc}"
            ) from exc
        self._limiter = MovingWindowRateLimiter(self._storage)
        self.limit = limit
        self.storage_uri = storage_uri
        # The store's own connection errors (redis.RedisError for Redis); the in-memory store
        # cannot be unreachable, and its base (ValueError) would hide real bugs.
        base = () if storage_uri.startswith("memory") else self._storage.base_exceptions
        self._storage_errors: tuple[type[BaseException], ...] = (
            (*base, StorageError) if isinstance(base, tuple) else (base, StorageError)
        )

    def _key(self, query: Query) -> str:
        return query.identity if self.per == "identity" else query.address

    def check(self, query: Query) -> Verdict:
        """Charge ``len(query.x)`` samples (1 before validation); fire when over any limit.

        The charge itself is the store's atomic check-and-add, so two processes that both
        see room for the last sample cannot both take it: the loser fires.
        """
        key = self._key(query)
        cost = 1 if query.x is None else int(query.x.shape[0])
        try:
            # A read-only pass first, so a request refused by a later limit charges none.
            for item in self.items:
                if not self._limiter.test(item, self.name, key, cost=cost):
                    return self._over(item, key)
            for item in self.items:
                if not self._limiter.hit(item, self.name, key, cost=cost):
                    return self._over(item, key)
        except self._storage_errors as exc:
            raise self._unreachable(exc) from exc
        return self.allow()

    def _over(self, item: Any, key: str) -> Verdict:
        return self.fire(
            f"more than {item} for this {self.per}",
            limit=str(item),
            retry_after=self.retry_after(key, item),
        )

    def _unreachable(self, exc: BaseException) -> RateLimitStorageError:
        return RateLimitStorageError(
            f"Rate-limit store {redact_uri(self.storage_uri)} is unreachable "
            f"({type(exc).__name__}: {exc}); refusing rather than allowing unlimited traffic"
        )

    def retry_after(self, key: str, item: Any = None) -> int:
        """Whole seconds until ``key`` has room again under ``item`` (the tightest by default)."""
        items = self.items if item is None else [item]
        wait = 0.0
        now = time.time()
        try:
            for it in items:
                stats = self._limiter.get_window_stats(it, self.name, key)
                if stats.remaining <= 0:
                    wait = max(wait, stats.reset_time - now)
        except self._storage_errors as exc:
            raise self._unreachable(exc) from exc
        return max(1, math.ceil(wait))

    def reset(self) -> None:
        """Forget every bucket (tests, and an operator's explicit reset)."""
        try:
            self._storage.reset()
        except self._storage_errors as exc:
            raise self._unreachable(exc) from exc


def _inline_expiry_memory_storage() -> Any:
    """`limits`' in-memory store, sweeping expired entries inline at most once a second.

    The stock store starts a new `threading.Timer` thread to sweep after almost every hit
    (hundreds of thread starts per thousand requests), which shows up as latency spikes on
    the request path. Expired entries are also dropped when read, so a once-a-second inline
    sweep keeps memory bounded without the threads; it also drops the keys whose windows
    have emptied, which the stock sweep keeps forever.
    """
    from limits.storage import MemoryStorage

    class InlineExpiryMemoryStorage(MemoryStorage):
        def __init__(self) -> None:
            self._last_sweep = 0.0
            super().__init__("memory://")

        # Overrides MemoryStorage's private (name-mangled) scheduler.
        def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802
            now = time.monotonic()
            if now - self._last_sweep >= SWEEP_EVERY_S:
                self._last_sweep = now
                self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
                # The stock sweep empties a moving window's list but keeps its key.
                for key in [k for k, v in self.events.items() if not v]:
                    with self.locks[key]:
                        if not self.events.get(key):
                            self.events.pop(key, None)
                            self.locks.pop(key, None)

    return InlineExpiryMemoryStorage()
