"""The values the pickle walker puts on its stack, and the opcode tables it reads by."""

from __future__ import annotations

import pickletools
import re
from dataclasses import dataclass, field
from typing import Any

from bastion.supply_chain.scan.stream import StreamError

__all__ = [
    "BOOL_LINES",
    "CONSTS",
    "KEEP_BYTES",
    "KEEP_ITEMS",
    "OPS",
    "Glob",
    "Obj",
    "Opaque",
    "MAX_NESTING",
    "PUSH_ARG",
    "PickleOutcome",
    "cap",
    "looks_like_pickle",
    "pairs",
    "setitems",
]

#: Payloads up to this size are kept (for nested-pickle checks); longer ones are skipped.
KEEP_BYTES = 1 << 16
#: Items kept per container; the rest are dropped, so memory does not grow with them.
KEEP_ITEMS = 256
#: How deep pickles inside byte strings inside pickles are followed.
MAX_NESTING = 4
#: Opcode byte -> `pickletools.OpcodeInfo`.
OPS = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_PROTO0_GLOBAL = re.compile(rb"c[\w.]+\n[\w.]+\n")


@dataclass(frozen=True)
class Glob:
    """An imported name."""

    module: str
    name: str

    @property
    def full(self) -> str:
        """``module.name``."""
        return f"{self.module}.{self.name}"


@dataclass
class Obj:
    """The result of calling or instantiating ``origin`` (never actually called)."""

    origin: Any
    args: Any
    state: Any = None


@dataclass(frozen=True)
class Opaque:
    """A value the walker does not model (a skipped payload, a persistent object)."""

    what: str


@dataclass
class PickleOutcome:
    """What one walk produced: the value on STOP and the storages it references."""

    value: Any = None
    saw_import: bool = False
    joblib: bool = False
    storages: dict[str, tuple[str, int]] = field(default_factory=dict)


def looks_like_pickle(head: bytes) -> bool:
    """True when ``head`` starts like a protocol 2-5 pickle or a protocol 0 GLOBAL."""
    if len(head) >= 3 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return head[2:3] in OPS
    return _PROTO0_GLOBAL.match(head) is not None


def cap(items: list[Any]) -> list[Any]:
    """The first `KEEP_ITEMS` of ``items``."""
    return items[:KEEP_ITEMS]


def pairs(items: list[Any]) -> dict[Any, Any]:
    """A dict from alternating keys and values (kept up to `KEEP_ITEMS`)."""
    out: dict[Any, Any] = {}
    setitems(out, items)
    return out


def setitems(target: Any, items: list[Any]) -> None:
    """Set alternating keys and values on ``target`` when it is a modelled dict."""
    if not isinstance(target, dict):
        return
    for i in range(0, len(items) - 1, 2):
        if len(target) >= KEEP_ITEMS:
            return
        key = items[i]
        try:
            target[key] = items[i + 1]
        except TypeError:  # an unhashable key would fail the real loader too
            raise StreamError("unhashable dictionary key") from None


#: INT arguments that mean booleans (protocol 0 writes True as ``I01``).
BOOL_LINES = {b"00": False, b"01": True}
#: Opcodes that push their argument.
PUSH_ARG = frozenset(
    [
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
    ]
)
#: Opcodes that push a fresh constant or empty container.
CONSTS: dict[str, Any] = {
    "NONE": lambda: None,
    "NEWTRUE": lambda: True,
    "NEWFALSE": lambda: False,
    "EMPTY_LIST": list,
    "EMPTY_DICT": dict,
    "EMPTY_TUPLE": tuple,
    "EMPTY_SET": list,
}
