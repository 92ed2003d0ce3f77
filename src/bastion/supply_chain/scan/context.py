"""Shared state of one top-level file's scan: where issues go, the bounds, and a way for
container formats (zip, tar, compressed streams) to hand members back to the dispatcher."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bastion.supply_chain.scan.interface import Verdict
from bastion.supply_chain.scan.stream import Sink

__all__ = ["Context", "SubFile", "join_member"]


class SubFile(io.RawIOBase):
    """A read-only, seekable view of bytes ``[start, start + size)`` of a seekable file."""

    def __init__(self, f: BinaryIO, start: int, size: int) -> None:
        super().__init__()
        self._f, self._start, self._size, self._pos = f, start, size, 0

    def readable(self) -> bool:
        """Always True."""
        return True

    def seekable(self) -> bool:
        """Always True."""
        return True

    def tell(self) -> int:
        """Position inside the view."""
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move inside the view (clamped at 0)."""
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int = -1, /) -> bytes:
        """Read up to ``n`` bytes of the view."""
        left = self._size - self._pos
        n = left if n is None or n < 0 else min(n, left)
        if n <= 0:
            return b""
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        self._pos += len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``b`` from the view."""
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def join_member(parent: str | None, name: str) -> str:
    """``parent!name``, or ``name`` at the top level."""
    return name if parent is None else f"{parent}!{name}"


@dataclass
class Context:
    """One top-level file's scan."""

    sink: Sink
    root_dir: Path
    max_depth: int
    max_members: int
    scan_member: Callable[[Context, BinaryIO, int, str | None, int], str]

    def unparseable(
        self, member: str | None, fmt: str, reason: str, offset: int | None = None
    ) -> None:
        """Record that ``member`` could not be parsed completely."""
        self.sink.add(member, fmt, Verdict.UNPARSEABLE, "unparseable", reason, offset=offset)
