"""The values the pickle walker puts on its stack, and the opcode tables it reads by."""

from __future__ import annotations

import codecs
import pickletools
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from bastion.supply_chain.scan.stream import StreamError

__all__ = [
    "BOOL_LINES",
    "CODES",
    "CONSTS",
    "FAST_SPEC",
    "FIXED_ARGS",
    "GETS",
    "KEEP_BYTES",
    "KEEP_ITEMS",
    "OPS",
    "Glob",
    "Obj",
    "Opaque",
    "MAX_NESTING",
    "PUSH_ARG",
    "PUTS",
    "SIZED_ARGS",
    "STACK_OPS",
    "PickleOutcome",
    "cap",
    "looks_like_pickle",
    "pairs",
    "setitems",
    "text_argument",
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

#: opcode byte -> (opcode name, argument kind or None)
CODES = {code: (op.name, op.arg.name if op.arg is not None else None) for code, op in OPS.items()}
#: fixed-width argument kinds -> their struct
FIXED_ARGS = {
    "uint2": struct.Struct("<H"),
    "int4": struct.Struct("<i"),
    "uint4": struct.Struct("<I"),
    "uint8": struct.Struct("<Q"),
    "float8": struct.Struct(">d"),
}
_LEN4, _ULEN4, _LEN8 = struct.Struct("<i"), struct.Struct("<I"), struct.Struct("<Q")
#: length-prefixed argument kinds -> (length struct, None for one byte; payload kind)
SIZED_ARGS: dict[str, tuple[struct.Struct | None, str]] = {
    "string1": (None, "bytes"),
    "bytes1": (None, "bytes"),
    "unicodestring1": (None, "str"),
    "string4": (_LEN4, "bytes"),
    "bytes4": (_ULEN4, "bytes"),
    "unicodestring4": (_ULEN4, "str"),
    "bytes8": (_LEN8, "bytes"),
    "bytearray8": (_LEN8, "bytes"),
    "unicodestring8": (_LEN8, "str"),
}
PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})

# Categories of the walker's in-place fast path: what an opcode does when it and its argument
# are already buffered. F_SLOW opcodes are decoded through the reader and dispatched by name.
(F_SLOW, F_PUSH, F_STR, F_MEMOIZE, F_PUT, F_GET, F_CONST, F_NEW, F_MARK, F_TUPLE, F_STEP, F_COMMIT,
 F_NOP) = range(13)  # fmt: skip
_U1, _U2, _I4, _U4, _F8 = (None, *(FIXED_ARGS[k] for k in ("uint2", "int4", "uint4", "float8")))
#: opcode name -> (category, bytes of the opcode and its fixed argument or length prefix, aux,
#: extra). aux is the argument's struct (None: one unsigned byte), the constant or factory
#: pushed, or the tuple's length; extra is True for UTF-8 text (F_STR) and the opcode name
#: for F_COMMIT (`pickle_vm` adds the F_STEP entries, with their handlers).
FAST_SPEC: dict[str, tuple[int, int, Any, Any]] = {
    "BININT1": (F_PUSH, 2, _U1, None),
    "BININT2": (F_PUSH, 3, _U2, None),
    "BININT": (F_PUSH, 5, _I4, None),
    "BINFLOAT": (F_PUSH, 9, _F8, None),
    "SHORT_BINUNICODE": (F_STR, 2, _U1, True),
    "SHORT_BINBYTES": (F_STR, 2, _U1, False),
    "SHORT_BINSTRING": (F_STR, 2, _U1, False),
    "BINUNICODE": (F_STR, 5, _U4, True),
    "BINBYTES": (F_STR, 5, _U4, False),
    "BINSTRING": (F_STR, 5, _I4, False),
    "MEMOIZE": (F_MEMOIZE, 1, None, None),
    "BINPUT": (F_PUT, 2, _U1, None),
    "LONG_BINPUT": (F_PUT, 5, _U4, None),
    "BINGET": (F_GET, 2, _U1, None),
    "LONG_BINGET": (F_GET, 5, _U4, None),
    "NONE": (F_CONST, 1, None, None),
    "NEWTRUE": (F_CONST, 1, True, None),
    "NEWFALSE": (F_CONST, 1, False, None),
    "EMPTY_TUPLE": (F_CONST, 1, (), None),
    "EMPTY_LIST": (F_NEW, 1, list, None),
    "EMPTY_DICT": (F_NEW, 1, dict, None),
    "EMPTY_SET": (F_NEW, 1, list, None),
    "MARK": (F_MARK, 1, None, None),
    "TUPLE1": (F_TUPLE, 1, 1, None),
    "TUPLE2": (F_TUPLE, 1, 2, None),
    "TUPLE3": (F_TUPLE, 1, 3, None),
    "FRAME": (F_NOP, 9, None, None),  # a framing hint: the walker reads the frame's opcodes
    "BUILD": (F_COMMIT, 1, None, "BUILD"),  # may read on: joblib's array bytes follow it
}
#: Argument-less opcodes that only rearrange the stack (they never read the stream).
STACK_OPS = (
    "LIST", "TUPLE", "FROZENSET", "DICT", "APPEND", "APPENDS",
    "ADDITEMS", "SETITEM", "SETITEMS", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "BINPERSID",
    "NEXT_BUFFER", "READONLY_BUFFER", "POP", "POP_MARK", "DUP", "STACK_GLOBAL",
)  # fmt: skip


def text_argument(kind: str, line: bytes, pos: int) -> Any:
    """Decode the newline-terminated argument of a protocol 0 opcode (at offset ``pos``)."""
    try:
        if kind == "decimalnl_short":
            return BOOL_LINES[line] if line in BOOL_LINES else int(line)
        if kind == "decimalnl_long":
            return int(line[:-1] if line.endswith(b"L") else line)
        if kind == "floatnl":
            return float(line)
        if kind == "stringnl":
            if len(line) < 2 or line[:1] not in b"'\"" or line[-1:] != line[:1]:
                raise StreamError(f"STRING opcode argument not quoted at offset {pos}")
            return line[1:-1].decode("latin-1").encode("latin-1")
        if kind == "unicodestringnl":
            return codecs.raw_unicode_escape_decode(line)[0]  # no codec lookup
    except (ValueError, UnicodeDecodeError) as exc:
        raise StreamError(f"bad {kind} argument at offset {pos}: {exc}") from None
    raise StreamError(f"unsupported argument type {kind}")  # pragma: no cover
