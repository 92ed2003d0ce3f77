"""GGUF (llama.cpp) files: the header and metadata are walked value by value (bounded; token
arrays are skipped by length), tensor offsets must lie inside the file, and the Jinja chat
template is checked for sandbox-escape constructs (the llama-cpp-python template injection,
CVE-2024-34359)."""

from __future__ import annotations

import re
import struct
from typing import BinaryIO

from bastion.supply_chain.scan.context import Context
from bastion.supply_chain.scan.interface import Verdict
from bastion.supply_chain.scan.stream import Reader, StreamError

__all__ = ["GGUF_MAGIC", "scan_gguf"]

GGUF_MAGIC = b"GGUF"
_FIXED = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q"}
_FIXED |= {11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_TEXT = 1 << 22
_MAX_DIMS = 8
_TEMPLATE_ESCAPE = re.compile(
    r"__(class|mro|subclasses|globals|builtins|import|init|base|bases|dict|getattribute)__"
    r"|\b(os|sys|subprocess|importlib|builtins)\s*\.|\b(popen|system|eval|exec)\s*\("
    r"|\b(cycler|joiner|lipsum|namespace)\s*\.\s*__|\bself\s*\.\s*_"
)


def _string(r: Reader, keep: bool) -> str | None:
    (n,) = struct.unpack("<Q", r.read(8))
    if keep and n <= _MAX_TEXT:
        return r.read(n).decode("utf-8", "replace")
    r.skip(n)
    return None


def _value(r: Reader, kind: int, keep: bool) -> object:
    if kind in _FIXED:
        fmt = _FIXED[kind]
        return struct.unpack(fmt, r.read(struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return _string(r, keep)
    if kind == _ARRAY:
        (inner,) = struct.unpack("<I", r.read(4))
        (count,) = struct.unpack("<Q", r.read(8))
        if inner == _ARRAY:
            raise StreamError("nested GGUF arrays are not allowed")
        if inner in _FIXED:
            r.skip(count * struct.calcsize(_FIXED[inner]))
        elif inner == _STRING:
            for _ in range(count):
                _string(r, keep=False)
        else:
            raise StreamError(f"unknown GGUF array item type {inner}")
        return None
    raise StreamError(f"unknown GGUF value type {kind}")


def scan_gguf(ctx: Context, f: BinaryIO, size: int, member: str | None) -> str:
    """Walk a GGUF header; report broken structure and injectable chat templates."""
    f.seek(0)
    r = Reader(f)
    try:
        r.read(4)
        (version,) = struct.unpack("<I", r.read(4))
        if version not in (2, 3):
            raise StreamError(f"unsupported GGUF version {version}")
        tensors, kvs = struct.unpack("<QQ", r.read(16))
        alignment = 32
        for _ in range(kvs):
            key = _string(r, keep=True) or ""
            (kind,) = struct.unpack("<I", r.read(4))
            value = _value(
                r, kind, keep=key.endswith("chat_template") or key == "general.alignment"
            )
            if key == "general.alignment" and isinstance(value, int) and value > 0:
                alignment = value
            if key.startswith("tokenizer.chat_template") and isinstance(value, str):
                _check_template(ctx, member, key, value)
        ends = []
        for _ in range(tensors):
            _string(r, keep=False)
            (dims,) = struct.unpack("<I", r.read(4))
            if dims > _MAX_DIMS:
                raise StreamError(f"tensor with {dims} dimensions")
            r.skip(8 * dims + 4)
            (offset,) = struct.unpack("<Q", r.read(8))
            if offset % alignment:
                raise StreamError(f"tensor offset {offset} is not aligned to {alignment}")
            ends.append(offset)
        data_start = -(-r.offset // alignment) * alignment
        if ends and data_start + max(ends) > size:
            raise StreamError("a tensor starts beyond the end of the file")
    except StreamError as exc:
        ctx.unparseable(member, "gguf", f"GGUF header is broken: {exc}")
    return "gguf"


def _check_template(ctx: Context, member: str | None, key: str, template: str) -> None:
    match = _TEMPLATE_ESCAPE.search(template)
    if match:
        ctx.sink.add(
            member,
            "gguf",
            Verdict.DANGEROUS,
            "gguf-chat-template",
            f"{key} uses {match.group(0)!r}, a Jinja sandbox-escape construct",
        )
