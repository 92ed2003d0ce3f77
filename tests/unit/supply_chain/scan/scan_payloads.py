"""Builders of malicious pickles: each would create a marker file if anything ever loaded it."""

from __future__ import annotations

import os
import struct
from pathlib import Path


class Evil:
    """Unpickling this runs ``touch marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def u(text: str) -> bytes:
    """SHORT_BINUNICODE ``text``."""
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def proto0_call(module: str, name: str, *args: str) -> bytes:
    """A protocol 0 pickle calling ``module.name(*args)``."""
    body = b"".join(f"S'{a}'\n".encode() for a in args)
    return f"c{module}\n{name}\n(".encode() + body + b"tR."


def stack_call(module: str, name: str, *args: str) -> bytes:
    """A protocol 4 pickle calling ``module.name(*args)`` through STACK_GLOBAL."""
    body = b"(" + b"".join(u(a) for a in args) + b"t"
    return b"\x80\x04" + u(module) + u(name) + b"\x93" + body + b"R."


def binbytes8(n: int) -> bytes:
    """The BINBYTES8 opcode header of an ``n``-byte payload."""
    return b"\x8e" + struct.pack("<Q", n)
