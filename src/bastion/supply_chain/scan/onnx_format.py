"""ONNX models, read by walking the protobuf wire format directly (no ``onnx.load``, so external
data is never opened): tensors whose external data location escapes the model directory
(CVE-2022-25882, CVE-2024-27318) and operators from non-standard domains."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from bastion.supply_chain.scan.context import Context
from bastion.supply_chain.scan.interface import Verdict
from bastion.supply_chain.scan.stream import Reader, StreamError

__all__ = ["looks_like_onnx", "scan_onnx"]

#: message -> {field number: sub-message}; every other length-delimited field is skipped.
_SCHEMA: dict[str, dict[int, str]] = {
    "model": {7: "graph", 8: "opset", 20: "training", 25: "function"},
    "training": {1: "graph", 3: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "tensor": {13: "entry"},
    "sparse": {1: "tensor", 2: "tensor"},
    "function": {7: "node", 9: "opset"},
    "opset": {},
    "entry": {},
}
#: (message, field) pairs whose string value the scan needs.
_STRINGS = {("node", 7), ("node", 4), ("opset", 1), ("function", 10), ("entry", 1), ("entry", 2)}
_STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"}
_STANDARD_DOMAINS |= {"com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental"}
_MAX_DEPTH = 64
_MODEL_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA}


def looks_like_onnx(head: bytes) -> bool:
    """True when ``head`` starts with an ONNX ``ir_version`` followed by a ModelProto field."""
    return len(head) >= 3 and head[0] == 0x08 and 0 < head[1] < 0x20 and head[2] in _MODEL_TAGS


def _varint(r: Reader) -> int:
    value, shift = 0, 0
    while True:
        byte = r.read(1)[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise StreamError(f"varint too long at offset {r.offset}")


class _Walk:
    def __init__(self, reader: Reader) -> None:
        self.r = reader
        self.domains: set[tuple[str, str]] = set()  # (where, domain)
        self.locations: list[str] = []
        self.local_function_domains: set[str] = set()

    def message(self, kind: str, end: int, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise StreamError("messages nested too deeply")
        entry: dict[int, str] = {}
        node: dict[int, str] = {}
        while self.r.offset < end:
            tag = _varint(self.r)
            field, wire = tag >> 3, tag & 7
            if field == 0:
                raise StreamError(f"field number 0 at offset {self.r.offset}")
            if wire == 0:
                _varint(self.r)
            elif wire == 1:
                self.r.skip(8)
            elif wire == 5:
                self.r.skip(4)
            elif wire == 2:
                length = _varint(self.r)
                stop = self.r.offset + length
                if stop > end:
                    raise StreamError(f"field {field} of {kind} runs past its message")
                sub = _SCHEMA[kind].get(field)
                if sub is not None:
                    self.message(sub, stop, depth + 1)
                elif (kind, field) in _STRINGS and length <= 1 << 16:
                    text = self.r.read(length).decode("utf-8", "replace")
                    (entry if kind == "entry" else node)[field] = text
                else:
                    self.r.skip(length)
            else:
                raise StreamError(f"wire type {wire} at offset {self.r.offset}")
        if self.r.offset != end:
            raise StreamError(f"{kind} message overruns its length")
        self.collect(kind, entry, node)

    def collect(self, kind: str, entry: dict[int, str], fields: dict[int, str]) -> None:
        if kind == "entry" and entry.get(1) == "location" and 2 in entry:
            self.locations.append(entry[2])
        elif kind == "node" and fields.get(7):
            self.domains.add((f"operator {fields.get(4, '?')}", fields[7]))
        elif kind == "opset" and fields.get(1):
            self.domains.add(("opset import", fields[1]))
        elif kind == "function" and fields.get(10):
            self.local_function_domains.add(fields[10])


def _escapes(location: str, root: Path) -> bool:
    if os.path.isabs(location) or location.replace("\\", "/").startswith("/"):
        return True
    if len(location) > 1 and location[1] == ":":
        return True
    target = (root / location.replace("\\", "/")).resolve()
    return not target.is_relative_to(root.resolve())


def scan_onnx(ctx: Context, f: BinaryIO, size: int, member: str | None) -> str:
    """Walk an ONNX ModelProto; report escaping external data and custom domains."""
    f.seek(0)
    walk = _Walk(Reader(f))
    try:
        walk.message("model", size, 0)
    except StreamError as exc:
        ctx.unparseable(member, "onnx", f"protobuf is broken: {exc}")
    for location in walk.locations:
        if _escapes(location, ctx.root_dir):
            ctx.sink.add(
                member,
                "onnx",
                Verdict.DANGEROUS,
                "onnx-external-data",
                f"external data location {location!r} escapes the model directory",
            )
    for where, domain in sorted(walk.domains):
        if domain not in _STANDARD_DOMAINS and domain not in walk.local_function_domains:
            ctx.sink.add(
                member,
                "onnx",
                Verdict.SUSPICIOUS,
                "onnx-custom-domain",
                f"{where} uses custom domain {domain!r} (needs a native op library)",
            )
    return "onnx"
