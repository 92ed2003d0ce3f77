"""A pickle machine that runs over the opcodes without running them.

It decodes each opcode itself (the opcode table comes from `pickletools`) so that large byte
payloads are skipped by length instead of read into memory, keeps a model of the stack, the
memo and the mark stack, and records every global the stream can import: through GLOBAL, INST,
STACK_GLOBAL with names fetched from the memo or computed at load time, EXT codes, BUILD on an
imported object, and pickles hidden in byte strings. Nothing is imported and nothing is called.
"""

from __future__ import annotations

import contextlib
import io
import struct
from typing import Any

from bastion.supply_chain.scan.allowlist import classify_global
from bastion.supply_chain.scan.interface import Verdict
from bastion.supply_chain.scan.joblib_arrays import skip_wrapped_array, wrapper_class
from bastion.supply_chain.scan.pickle_values import (
    BOOL_LINES,
    CONSTS,
    KEEP_BYTES,
    KEEP_ITEMS,
    MAX_NESTING,
    OPS,
    PUSH_ARG,
    Glob,
    Obj,
    Opaque,
    PickleOutcome,
    cap,
    looks_like_pickle,
    pairs,
    setitems,
)
from bastion.supply_chain.scan.stream import Budget, Reader, Sink, StreamError

__all__ = ["walk_pickle"]


class _Limited:
    """``n`` bytes of a `Reader`, as a raw stream for a nested walk."""

    def __init__(self, reader: Reader, n: int) -> None:
        self._r, self.left = reader, n

    def read(self, n: int = -1, /) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self._r.read(n) if n > 0 else b""
        self.left -= len(data)
        return data


class _Machine:
    def __init__(
        self, reader: Reader, sink: Sink, member: str | None, fmt: str, depth: int, base: int
    ) -> None:
        self.r, self.sink, self.member, self.fmt = reader, sink, member, fmt
        self.depth, self.base = depth, base
        self.stack: list[Any] = []
        self.meta: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.out = PickleOutcome()
        self.pos = 0

    # -- evidence ------------------------------------------------------------------------
    def issue(self, verdict: Verdict, rule: str, reason: str, name: str | None = None) -> None:
        self.sink.add(
            self.member, self.fmt, verdict, rule, reason, global_name=name, offset=self.pos
        )

    def imported(self, module: Any, name: Any) -> Glob | Opaque:
        self.out.saw_import = True
        if not isinstance(module, str) or not isinstance(name, str):
            self.issue(
                Verdict.DANGEROUS,
                "computed-global",
                "imports a name computed at load time, which cannot be checked statically",
            )
            return Opaque("computed global")
        verdict, reason = classify_global(module, name)
        if verdict is not None:
            rule = "dangerous-global" if verdict is Verdict.DANGEROUS else "unknown-global"
            self.issue(verdict, rule, reason, f"{module}.{name}")
        return Glob(module, name)

    def called(self, target: Any) -> Any:
        """Check what REDUCE/NEWOBJ calls: an imported name, or else something built at load."""
        if not isinstance(target, Glob | Opaque):
            self.issue(
                Verdict.SUSPICIOUS,
                "indirect-call",
                f"calls a {type(target).__name__} value built at load time, not an imported name",
            )
        return target

    # -- stack ---------------------------------------------------------------------------
    def pop(self) -> Any:
        if not self.stack:
            raise StreamError(f"stack underflow at offset {self.pos}")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.meta:
            raise StreamError(f"no MARK to pop at offset {self.pos}")
        items, self.stack = self.stack, self.meta.pop()
        return items

    def top(self) -> Any:
        if not self.stack:
            raise StreamError(f"stack underflow at offset {self.pos}")
        return self.stack[-1]

    # -- arguments -----------------------------------------------------------------------
    def payload(self, n: int, kind: str) -> Any:
        if n < 0:
            raise StreamError(f"negative length at offset {self.pos}")
        if n <= KEEP_BYTES:
            data = self.r.read(n)
            if kind == "str":
                try:
                    text = data.decode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    raise StreamError(f"invalid UTF-8 at offset {self.pos}") from None
                self.nested(data, self.base + self.r.offset - n)
                return text
            self.nested(data, self.base + self.r.offset - n)
            return data
        start = self.base + self.r.offset
        if looks_like_pickle(self.r.peek(64)) and self.depth < MAX_NESTING:
            sub = _Limited(self.r, n)
            self.nested_stream(Reader(sub), start)
            self.r.skip(sub.left)
        else:
            self.r.skip(n)
        return Opaque(f"{kind} of {n} bytes")

    def nested(self, data: bytes, start: int) -> None:
        if self.depth < MAX_NESTING and len(data) >= 8 and looks_like_pickle(data[:64]):
            self.nested_stream(Reader(io.BytesIO(data)), start)

    def nested_stream(self, reader: Reader, start: int) -> None:
        inner = Sink(self.sink.path, Budget(self.sink.budget.remaining))
        # bytes that merely start like a pickle are data, unless they import something
        with contextlib.suppress(StreamError):
            walk_pickle(reader, inner, self.member, self.fmt, depth=self.depth + 1, base=start)
        for i in inner.issues:
            if i.verdict is Verdict.UNPARSEABLE:
                continue
            self.sink.add(
                self.member,
                self.fmt,
                i.verdict,
                "nested-pickle",
                f"a byte string at offset {start} is a pickle that {i.reason}",
                global_name=i.global_name,
                offset=i.offset,
            )

    def arg(self, kind: str) -> Any:
        r = self.r
        if kind == "uint1":
            return r.read(1)[0]
        if kind == "uint2":
            return struct.unpack("<H", r.read(2))[0]
        if kind in ("int4", "uint4", "uint8"):
            fmt = {"int4": "<i", "uint4": "<I", "uint8": "<Q"}[kind]
            return struct.unpack(fmt, r.read(struct.calcsize(fmt)))[0]
        if kind == "float8":
            return struct.unpack(">d", r.read(8))[0]
        if kind in ("string1", "bytes1", "unicodestring1"):
            return self.payload(r.read(1)[0], "str" if kind == "unicodestring1" else "bytes")
        if kind in ("string4", "bytes4", "unicodestring4"):
            n = struct.unpack("<i" if kind == "string4" else "<I", r.read(4))[0]
            return self.payload(n, "str" if kind == "unicodestring4" else "bytes")
        if kind in ("bytes8", "bytearray8", "unicodestring8"):
            n = struct.unpack("<Q", r.read(8))[0]
            return self.payload(n, "str" if kind == "unicodestring8" else "bytes")
        if kind in ("long1", "long4"):
            n = r.read(1)[0] if kind == "long1" else struct.unpack("<i", r.read(4))[0]
            if n < 0:
                raise StreamError(f"negative LONG4 length at offset {self.pos}")
            if n > KEEP_BYTES:
                r.skip(n)
                return Opaque("huge int")
            return int.from_bytes(r.read(n), "little", signed=True)
        line = r.readline()
        if kind == "stringnl_noescape_pair":
            second = r.readline()
            return (line.decode("utf-8", "replace"), second.decode("utf-8", "replace"))
        if kind == "stringnl_noescape":
            return line.decode("utf-8", "replace")
        return self.text_arg(kind, line)

    def text_arg(self, kind: str, line: bytes) -> Any:
        try:
            if kind == "decimalnl_short":
                return BOOL_LINES[line] if line in BOOL_LINES else int(line)
            if kind == "decimalnl_long":
                return int(line[:-1] if line.endswith(b"L") else line)
            if kind == "floatnl":
                return float(line)
            if kind == "stringnl":
                if len(line) < 2 or line[:1] not in b"'\"" or line[-1:] != line[:1]:
                    raise StreamError(f"STRING opcode argument not quoted at offset {self.pos}")
                data = line[1:-1].decode("latin-1").encode("latin-1")
                self.nested(data, self.base + self.pos)
                return data
            if kind == "unicodestringnl":
                return line.decode("raw-unicode-escape")
        except (ValueError, UnicodeDecodeError) as exc:
            raise StreamError(f"bad {kind} argument at offset {self.pos}: {exc}") from None
        raise StreamError(f"unsupported argument type {kind}")  # pragma: no cover

    # -- the machine ---------------------------------------------------------------------
    def run(self) -> PickleOutcome:
        while True:
            self.pos = self.base + self.r.offset
            code = self.r.read(1)
            op = OPS.get(code)
            if op is None:
                raise StreamError(f"unknown opcode {code!r} at offset {self.pos}")
            value = self.arg(op.arg.name) if op.arg is not None else None
            if op.name == "STOP":
                self.out.value = self.pop()
                return self.out
            self.step(op.name, value)

    def step(self, name: str, arg: Any) -> None:
        s = self.stack
        if name in PUSH_ARG:
            s.append(arg)
        elif name in CONSTS:
            s.append(CONSTS[name]())
        elif name == "PROTO":
            if arg > 5:
                raise StreamError(f"unsupported pickle protocol {arg} at offset {self.pos}")
        elif name == "FRAME":
            pass
        elif name == "MARK":
            self.meta.append(s)
            self.stack = []
        elif name == "POP":
            if s:
                s.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            s.append(self.top())
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            key = int(arg)
            if key not in self.memo:
                raise StreamError(f"memo key {key} missing at offset {self.pos}")
            s.append(self.memo[key])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(arg)] = self.top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top()
        elif name in ("GLOBAL", "INST"):
            module, attr = arg
            glob = self.imported(module, attr)
            if name == "INST":
                items = self.pop_mark()
                self.stack.append(Obj(glob, tuple(cap(items))))
            else:
                s.append(glob)
        elif name == "STACK_GLOBAL":
            attr, module = self.pop(), self.pop()
            s = self.stack
            s.append(self.imported(module, attr))
        elif name in ("EXT1", "EXT2", "EXT4"):
            self.out.saw_import = True
            self.issue(
                Verdict.SUSPICIOUS,
                "extension-code",
                f"imports extension code {arg}, resolved by the loader's copyreg registry",
            )
            s.append(Opaque(f"extension {arg}"))
        else:
            self.step_build(name, arg)

    def step_build(self, name: str, arg: Any) -> None:
        if name in ("REDUCE", "NEWOBJ"):
            args = self.pop()
            self.stack.append(Obj(self.called(self.pop()), args))
        elif name == "NEWOBJ_EX":
            kwargs, args = self.pop(), self.pop()
            self.stack.append(Obj(self.called(self.pop()), (args, kwargs)))
        elif name == "OBJ":
            items = self.pop_mark()
            if not items:
                raise StreamError(f"OBJ without a class at offset {self.pos}")
            self.stack.append(Obj(items[0], tuple(cap(items[1:]))))
        elif name == "BUILD":
            state = self.pop()
            target = self.top()
            if isinstance(target, Glob):
                self.issue(
                    Verdict.DANGEROUS,
                    "build-on-global",
                    f"BUILD overwrites attributes of the imported {target.full}",
                    target.full,
                )
            elif isinstance(target, Obj):
                target.state = state
                self.after_build(target)
        elif name in ("PERSID", "BINPERSID"):
            pid = arg if name == "PERSID" else self.pop()
            self.record_storage(pid)
            self.stack.append(Opaque("persistent object"))
        elif name in ("NEXT_BUFFER", "READONLY_BUFFER"):
            if name == "NEXT_BUFFER":
                self.stack.append(Opaque("out-of-band buffer"))
        else:
            self.step_container(name)

    def step_container(self, name: str) -> None:
        s = self.stack
        if name in ("LIST", "TUPLE", "FROZENSET"):
            items = cap(self.pop_mark())
            self.stack.append(tuple(items) if name != "LIST" else items)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(s) < n:
                raise StreamError(f"stack underflow at offset {self.pos}")
            packed = tuple(s[-n:])
            del s[-n:]
            s.append(packed)
        elif name == "DICT":
            items = self.pop_mark()
            self.stack.append(pairs(items))
        elif name == "APPEND":
            value = self.pop()
            target = self.top()
            if isinstance(target, list) and len(target) < KEEP_ITEMS:
                target.append(value)
        elif name in ("APPENDS", "ADDITEMS"):
            items = self.pop_mark()
            target = self.top()
            if isinstance(target, list):
                target.extend(items[: max(0, KEEP_ITEMS - len(target))])
        elif name == "SETITEM":
            value, key = self.pop(), self.pop()
            setitems(self.top(), [key, value])
        elif name == "SETITEMS":
            items = self.pop_mark()
            setitems(self.top(), items)
        else:
            raise StreamError(f"opcode {name} is not modelled (offset {self.pos})")

    # -- format hooks --------------------------------------------------------------------
    def record_storage(self, pid: Any) -> None:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            kind, key, numel = pid[1], pid[2], pid[4]
            if isinstance(kind, Glob) and isinstance(key, str) and isinstance(numel, int):
                self.out.storages[key] = (kind.name, numel)

    def after_build(self, obj: Obj) -> None:
        if wrapper_class(obj) and self.fmt in ("joblib", "pickle"):
            self.fmt = "joblib"
            self.out.joblib = True
            inner = skip_wrapped_array(obj, self.r, self.pos)
            if inner:
                walk_pickle(
                    self.r, self.sink, self.member, self.fmt, depth=self.depth, base=self.base
                )


def walk_pickle(
    reader: Reader, sink: Sink, member: str | None, fmt: str, *, depth: int = 0, base: int = 0
) -> PickleOutcome:
    """Walk one pickle from ``reader`` up to its STOP, recording issues in ``sink``.

    Raises `StreamError` when the stream is not a complete, well-formed pickle; the issues
    found before that point stay recorded.
    """
    return _Machine(reader, sink, member, fmt, depth, base).run()
