"""A pickle machine that runs over the opcodes without running them.

It decodes each opcode itself (the opcode table comes from `pickletools`) so that large byte
payloads are skipped by length instead of read into memory, keeps a model of the stack, the
memo and the mark stack (`pickle_steps`), and records every global the stream can import:
through GLOBAL, INST, STACK_GLOBAL with names fetched from the memo or computed at load time,
EXT codes, BUILD on an imported object, and pickles hidden in byte strings. Nothing is imported
and nothing is called. Opcodes whose argument is already buffered are decoded in place, by a
table from opcode byte to what the opcode does (`FAST_SPEC`), without a call per byte.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from bastion.supply_chain.scan.interface import Verdict
from bastion.supply_chain.scan.joblib_arrays import skip_wrapped_array, wrapper_class
from bastion.supply_chain.scan.pickle_steps import CONTAINER_OPS, PickleState
from bastion.supply_chain.scan.pickle_values import (
    CODES,
    CONSTS,
    F_CONST,
    F_GET,
    F_MARK,
    F_MEMOIZE,
    F_NEW,
    F_NOP,
    F_PUSH,
    F_PUT,
    F_SLOW,
    F_STEP,
    F_STR,
    F_TUPLE,
    FAST_SPEC,
    FIXED_ARGS,
    GETS,
    KEEP_BYTES,
    MAX_NESTING,
    PUSH_ARG,
    PUTS,
    SIZED_ARGS,
    STACK_OPS,
    Obj,
    Opaque,
    PickleOutcome,
    looks_like_pickle,
    text_argument,
)
from bastion.supply_chain.scan.stream import Budget, LimitedReader, Reader, Sink, StreamError

__all__ = ["walk_pickle"]

_SLOW: tuple[int, int, Any, Any] = (F_SLOW, 0, None, None)
_CALL_OPS = ("REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "BINPERSID", "NEXT_BUFFER", "READONLY_BUFFER")


class _Machine(PickleState):
    """Decodes the stream and drives the `PickleState` it models."""

    # -- arguments -----------------------------------------------------------------------
    def payload(self, n: int, kind: str) -> Any:
        if n < 0:
            raise StreamError(f"negative length at offset {self.pos}")
        if n <= KEEP_BYTES:
            data = self.r.read(n)
            if n >= 8:  # shorter bytes cannot hold a pickle that imports anything
                self.nested(data, self.base + self.r.offset - n)
            if kind == "str":
                try:
                    return data.decode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    raise StreamError(f"invalid UTF-8 at offset {self.pos}") from None
            return data
        start = self.base + self.r.offset
        if looks_like_pickle(self.r.peek(64)) and self.depth < MAX_NESTING:
            sub = LimitedReader(self.r, n)
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
        fixed = FIXED_ARGS.get(kind)
        if fixed is not None:
            return fixed.unpack(r.read(fixed.size))[0]
        sized = SIZED_ARGS.get(kind)
        if sized is not None:
            length, what = sized
            n = r.read(1)[0] if length is None else length.unpack(r.read(length.size))[0]
            return self.payload(n, what)
        if kind in ("long1", "long4"):
            n = r.read(1)[0] if kind == "long1" else FIXED_ARGS["int4"].unpack(r.read(4))[0]
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
        value = text_argument(kind, line, self.pos)
        if kind == "stringnl":
            self.nested(value, self.pos)
        return value

    # -- the machine ---------------------------------------------------------------------
    def run(self) -> PickleOutcome:
        """Walk to STOP. Opcodes whose argument is buffered are decoded in place from the
        reader's window (no call per byte); the rest, and those that read on, go through it."""
        r, fast, memo = self.r, _FAST, self.memo
        stack = self.stack
        buf, at = r.window()
        end, origin = len(buf), self.base + r.offset - at  # stream offset of buf[0]
        committed = True  # True while a call through the reader may have read past ``at``
        try:
            while True:
                cat, size, aux, extra = fast[buf[at]] if at < end else _SLOW
                nxt = at + size
                if nxt > end:
                    cat = F_SLOW
                elif cat == F_STR:
                    n = buf[at + 1] if aux is None else aux.unpack_from(buf, at + 1)[0]
                    if 0 <= n <= KEEP_BYTES and nxt + n <= end:
                        data: Any = buf[nxt : nxt + n]
                        if n >= 8 and (data[0] == 0x80 or data[0] == 0x63):  # b"\x80", b"c"
                            self.nested(data, origin + nxt)
                        if extra:
                            try:
                                data = data.decode("utf-8", "surrogatepass")
                            except UnicodeDecodeError:
                                raise StreamError(
                                    f"invalid UTF-8 at offset {origin + at}"
                                ) from None
                        stack.append(data)
                        at = nxt + n
                        continue
                    cat = F_SLOW
                if cat == F_MEMOIZE:
                    if not stack:
                        raise StreamError(f"stack underflow at offset {origin + at}")
                    memo[len(memo)] = stack[-1]
                elif cat == F_PUT:
                    if not stack:
                        raise StreamError(f"stack underflow at offset {origin + at}")
                    key = buf[at + 1] if aux is None else aux.unpack_from(buf, at + 1)[0]
                    memo[key] = stack[-1]
                elif cat == F_GET:
                    key = buf[at + 1] if aux is None else aux.unpack_from(buf, at + 1)[0]
                    try:
                        stack.append(memo[key])
                    except KeyError:
                        raise StreamError(
                            f"memo key {key} missing at offset {origin + at}"
                        ) from None
                elif cat == F_PUSH:
                    stack.append(buf[at + 1] if aux is None else aux.unpack_from(buf, at + 1)[0])
                elif cat == F_CONST:
                    stack.append(aux)
                elif cat == F_NEW:
                    stack.append(aux())
                elif cat == F_TUPLE:  # TUPLE1, TUPLE2, TUPLE3
                    if len(stack) < aux:
                        raise StreamError(f"stack underflow at offset {origin + at}")
                    packed = tuple(stack[-aux:])
                    del stack[-aux:]
                    stack.append(packed)
                elif cat == F_MARK:
                    self.meta.append(stack)
                    stack = self.stack = []  # self.stack is always the list ``stack`` is
                elif cat == F_STEP:  # out of line, but the reader is not touched
                    self.pos = origin + at
                    aux(self, extra, None)
                    stack = self.stack
                elif cat != F_NOP:  # through the reader: F_SLOW, F_COMMIT
                    if cat == F_SLOW:
                        r.consume_to(at)
                        committed = True
                        name, value = self.decode()
                    else:
                        r.consume_to(nxt)
                        committed = True
                        self.pos, name, value = origin + at, extra, None
                    if self.execute(name, value):
                        return self.out
                    stack = self.stack
                    buf, nxt = r.window()
                    end, origin = len(buf), self.base + r.offset - nxt
                    committed = False
                at = nxt
        except StreamError:
            if not committed:
                r.consume_to(at)
            raise

    def decode(self) -> tuple[str, Any]:
        """Read one opcode and its argument through the reader."""
        self.pos = self.base + self.r.offset
        code = self.r.read(1)
        entry = CODES.get(code)
        if entry is None:
            raise StreamError(f"unknown opcode {code!r} at offset {self.pos}")
        name, kind = entry
        return name, (self.arg(kind) if kind is not None else None)

    def execute(self, name: str, value: Any) -> bool:
        """Run one opcode by name; True when it is STOP."""
        if name in PUSH_ARG:
            self.stack.append(value)
        elif name in PUTS:
            memo = self.memo
            memo[len(memo) if name == "MEMOIZE" else int(value)] = self.top()
        elif name in GETS:
            key = int(value)
            if key not in self.memo:
                raise StreamError(f"memo key {key} missing at offset {self.pos}")
            self.stack.append(self.memo[key])
        elif name in CONSTS:
            self.stack.append(CONSTS[name]())
        elif name == "MARK":
            self.meta.append(self.stack)
            self.stack = []
        elif name == "STOP":
            self.out.value = self.pop()
            return True
        elif name in CONTAINER_OPS:
            self.step_container(name)
        else:
            self.step(name, value)
        return False

    def after_build(self, obj: Obj) -> None:
        """Skip (or walk, for object arrays) the array data joblib stores after its wrapper."""
        if wrapper_class(obj) and self.fmt in ("joblib", "pickle"):
            self.fmt = "joblib"
            self.out.joblib = True
            inner = skip_wrapped_array(obj, self.r, self.pos)
            if inner:
                walk_pickle(
                    self.r, self.sink, self.member, self.fmt, depth=self.depth, base=self.base
                )


def _fast_entry(code: int) -> tuple[int, int, Any, Any]:
    entry = CODES.get(bytes([code]))
    if entry is None:
        return _SLOW  # decoded through the reader, which reports the unknown opcode
    name = entry[0]
    if name in STACK_OPS:
        step = _Machine.step_container if name in CONTAINER_OPS else _Machine.step
        if name in _CALL_OPS:
            step = _Machine.step_build
        return (F_STEP, 1, step, name)
    return FAST_SPEC.get(name, _SLOW)


#: opcode byte -> its `FAST_SPEC` entry (the F_STEP ones carry the handler).
_FAST = tuple(_fast_entry(code) for code in range(256))


def walk_pickle(
    reader: Reader, sink: Sink, member: str | None, fmt: str, *, depth: int = 0, base: int = 0
) -> PickleOutcome:
    """Walk one pickle from ``reader`` up to its STOP, recording issues in ``sink``.

    Raises `StreamError` when the stream is not a complete, well-formed pickle; the issues
    found before that point stay recorded.
    """
    return _Machine(reader, sink, member, fmt, depth, base).run()
