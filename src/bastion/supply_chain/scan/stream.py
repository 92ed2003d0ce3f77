"""Bounded-memory byte streams: a buffered reader that can skip payloads without holding them,
windows onto a file, and a streaming inflater; plus the sink that collects a file's issues."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from bastion.supply_chain.scan.interface import ScanIssue, Verdict

__all__ = [
    "CHUNK",
    "IN_MEMORY",
    "Budget",
    "Inflater",
    "LimitedReader",
    "RawStream",
    "Reader",
    "Sink",
    "StreamError",
    "Window",
]

CHUNK = 1 << 16
#: Files and stored archive members up to this size are read whole, then parsed in memory.
IN_MEMORY = 1 << 20


class StreamError(Exception):
    """Internal: the stream ended early or broke a format rule; becomes an unparseable issue."""


class RawStream(Protocol):
    """Anything with ``read(n)``."""

    def read(self, n: int = -1, /) -> bytes:
        """Return at most ``n`` bytes; fewer only at the end."""
        ...


@dataclass
class Budget:
    """Total bytes that decompression may produce for one top-level file (bomb guard)."""

    remaining: int

    def spend(self, n: int) -> None:
        """Account for ``n`` produced bytes; raise `StreamError` past the bound."""
        self.remaining -= n
        if self.remaining < 0:
            raise StreamError("decompressed size exceeds the scan bound (possible zip bomb)")


class Window:
    """Bytes ``[start, end)`` of a seekable file, read with seeks so windows can interleave."""

    def __init__(self, f: BinaryIO, start: int, end: int) -> None:
        self._f, self._pos, self._end = f, start, end

    def read(self, n: int = -1, /) -> bytes:
        """Read up to ``n`` bytes of the window."""
        left = self._end - self._pos
        n = left if n < 0 else min(n, left)
        if n <= 0:
            return b""
        self._f.seek(self._pos)
        data = self._f.read(n)
        self._pos += len(data)
        return data


class Inflater:
    """Streams raw-deflate (``wbits=-15``) or zlib data out of a raw stream, bounded by a budget."""

    def __init__(self, raw: RawStream, budget: Budget, *, wbits: int = -15) -> None:
        self._raw, self._budget = raw, budget
        self._z = zlib.decompressobj(wbits)
        self._pending = b""
        self.finished = False

    def read(self, n: int = -1, /) -> bytes:
        """Return up to ``n`` inflated bytes (``n`` must be positive)."""
        n = CHUNK if n < 0 else n
        while len(self._pending) < n and not self._z.eof:
            src = self._z.unconsumed_tail or self._raw.read(CHUNK)
            if not src:
                raise StreamError("compressed data ends before the deflate stream does")
            try:
                out = self._z.decompress(src, n - len(self._pending))
            except zlib.error as exc:
                raise StreamError(f"corrupt deflate data: {exc}") from None
            self._budget.spend(len(out))
            self._pending += out
        self.finished = self._z.eof
        data, self._pending = self._pending[:n], self._pending[n:]
        return data

    def close(self) -> None:
        """Drop buffered output (the raw stream belongs to the caller)."""
        self._pending = b""


class Reader:
    """A buffered reader with exact reads, line reads and payload skipping; counts the offset."""

    def __init__(self, raw: RawStream, *, max_line: int = 1 << 20) -> None:
        self._raw = raw
        self._buf = b""
        self._at = 0  # consumed part of _buf; compacted lazily so small reads stay O(1)
        self.offset = 0
        self._max_line = max_line
        self._end: int | None = None  # for seekable streams: skip by seeking, not reading
        seekable = getattr(raw, "seekable", None)
        if seekable is not None and seekable():
            here = raw.tell()  # type: ignore[attr-defined]
            self._end = raw.seek(0, 2)  # type: ignore[attr-defined]
            raw.seek(here)  # type: ignore[attr-defined]

    def _available(self) -> int:
        return len(self._buf) - self._at

    def _fill(self, want: int) -> None:
        if self._available() >= want:
            return
        self._buf, self._at = self._buf[self._at :], 0
        while len(self._buf) < want:
            chunk = self._raw.read(max(CHUNK, want - len(self._buf)))
            if not chunk:
                return
            self._buf += chunk

    def peek(self, n: int) -> bytes:
        """Return up to ``n`` upcoming bytes without consuming them."""
        self._fill(n)
        return self._buf[self._at : self._at + n]

    def read(self, n: int) -> bytes:
        """Return exactly ``n`` bytes or raise `StreamError`."""
        at = self._at
        if at + n <= len(self._buf):  # the common case, kept short: one call per opcode
            self._at = at + n
            self.offset += n
            return self._buf[at : at + n]
        self._fill(n)
        if self._available() < n:
            raise StreamError(f"stream ends at offset {self.offset + self._available()}, mid-value")
        data = self._buf[self._at : self._at + n]
        self._at += n
        self.offset += n
        return data

    def window(self) -> tuple[bytes, int]:
        """The buffered bytes and the index of the next unread one, for tight loops that decode
        in place and then report what they used with `consume_to`."""
        return self._buf, self._at

    def consume_to(self, at: int) -> None:
        """Mark the bytes of the current `window` before index ``at`` as read."""
        self.offset += at - self._at
        self._at = at

    def skip(self, n: int) -> None:
        """Consume ``n`` bytes in chunks, never holding them; raise `StreamError` if short."""
        take = min(n, self._available())
        self._at, self.offset, n = self._at + take, self.offset + take, n - take
        if n > CHUNK and self._end is not None:
            here = self._raw.tell()  # type: ignore[attr-defined]
            if here + n > self._end:
                raise StreamError(
                    f"stream ends at offset {self.offset + self._end - here}, mid-payload"
                )
            self._raw.seek(n, 1)  # type: ignore[attr-defined]
            self.offset += n
            return
        while n > 0:
            if not self._available():
                self._buf, self._at = self._raw.read(CHUNK), 0
                if not self._buf:
                    raise StreamError(f"stream ends at offset {self.offset}, mid-payload")
            take = min(n, self._available())
            self._at += take
            self.offset += take
            n -= take

    def readline(self) -> bytes:
        """Return the bytes up to (without) the next newline, which is consumed."""
        start = self._at
        while True:
            idx = self._buf.find(b"\n", start)
            if idx >= 0:
                line = self._buf[self._at : idx]
                self.offset += idx + 1 - self._at
                self._at = idx + 1
                return line
            if self._available() > self._max_line:
                raise StreamError(f"line at offset {self.offset} is longer than {self._max_line}")
            before = self._available()
            self._fill(before + 1)
            if self._available() == before:
                raise StreamError(f"stream ends at offset {self.offset}, inside a line")
            start = self._at + before

    def at_eof(self) -> bool:
        """True when no byte is left."""
        return not self.peek(1)

    def drain(self) -> None:
        """Consume everything left (so a checksummed member is read to its end)."""
        while self.peek(1):
            self.skip(self._available())


class LimitedReader:
    """``n`` bytes of a `Reader`, as a raw stream for a nested walk."""

    def __init__(self, reader: Reader, n: int) -> None:
        self._r, self.left = reader, n

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` of the bytes left (all of them for a negative ``n``)."""
        n = self.left if n < 0 else min(n, self.left)
        data = self._r.read(n) if n > 0 else b""
        self.left -= len(data)
        return data


@dataclass
class Sink:
    """Collects one top-level file's issues; members are joined with ``!``."""

    path: str
    budget: Budget
    issues: list[ScanIssue] = field(default_factory=list)
    _seen: set[tuple[object, ...]] = field(default_factory=set, repr=False)

    def add(
        self,
        member: str | None,
        fmt: str,
        verdict: Verdict,
        rule: str,
        reason: str,
        *,
        global_name: str | None = None,
        offset: int | None = None,
    ) -> None:
        """Record one issue, dropping an exact duplicate of one already recorded."""
        issue = ScanIssue(self.path, member, fmt, verdict, rule, reason, global_name, offset)
        key = (member, rule, global_name, reason if global_name is None else None)
        if key not in self._seen:
            self._seen.add(key)
            self.issues.append(issue)
