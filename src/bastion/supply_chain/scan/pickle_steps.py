"""The pickle walker's model of the unpickler's state (stack, mark stack, memo) and the
opcodes that only rearrange it: containers, calls, BUILD, persistent ids, imports. Decoding the
stream is `pickle_vm`'s job; this module never reads it."""

from __future__ import annotations

import abc
from typing import Any

from bastion.supply_chain.scan.allowlist import classify_global
from bastion.supply_chain.scan.interface import Verdict
from bastion.supply_chain.scan.pickle_values import (
    KEEP_ITEMS,
    Glob,
    Obj,
    Opaque,
    PickleOutcome,
    cap,
    pairs,
    setitems,
)
from bastion.supply_chain.scan.stream import Reader, Sink, StreamError

__all__ = ["CONTAINER_OPS", "PickleState"]

#: Opcodes handled by `PickleState.step_container`.
CONTAINER_OPS = frozenset(
    {"LIST", "TUPLE", "FROZENSET", "TUPLE1", "TUPLE2", "TUPLE3", "DICT", "APPEND", "APPENDS",
     "ADDITEMS", "SETITEM", "SETITEMS"}
)  # fmt: skip


class PickleState(abc.ABC):
    """The unpickler's state as the walker models it, with the evidence it records."""

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
        """Record a finding at the current opcode's offset."""
        self.sink.add(
            self.member, self.fmt, verdict, rule, reason, global_name=name, offset=self.pos
        )

    def imported(self, module: Any, name: Any) -> Glob | Opaque:
        """Record and classify an import of ``module.name``; the value it pushes."""
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
        """Pop the top of the stack."""
        if not self.stack:
            raise StreamError(f"stack underflow at offset {self.pos}")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        """Pop everything above the last MARK, and the MARK."""
        if not self.meta:
            raise StreamError(f"no MARK to pop at offset {self.pos}")
        items, self.stack = self.stack, self.meta.pop()
        return items

    def top(self) -> Any:
        """The top of the stack, left in place."""
        if not self.stack:
            raise StreamError(f"stack underflow at offset {self.pos}")
        return self.stack[-1]

    def step(self, name: str, arg: Any) -> None:
        """Run an opcode that does not read the stream (its argument decoded as ``arg``)."""
        s = self.stack
        if name == "PROTO":
            if arg > 5:
                raise StreamError(f"unsupported pickle protocol {arg} at offset {self.pos}")
        elif name == "FRAME":
            pass
        elif name == "POP":
            if s:
                s.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            s.append(self.top())
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
        """Run a call, BUILD, persistent-id or out-of-band-buffer opcode."""
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

    def step_container(self, name: str, arg: Any = None) -> None:
        """Run a container opcode (``arg`` is unused; the signature matches `step`)."""
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
        """Note a torch storage a persistent id refers to (its key, class, element count)."""
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            kind, key, numel = pid[1], pid[2], pid[4]
            if isinstance(kind, Glob) and isinstance(key, str) and isinstance(numel, int):
                self.out.storages[key] = (kind.name, numel)

    @abc.abstractmethod
    def after_build(self, obj: Obj) -> None:
        """Called once BUILD has set ``obj``'s state (joblib's arrays follow some objects)."""
