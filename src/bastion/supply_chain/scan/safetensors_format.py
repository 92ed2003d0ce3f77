"""safetensors: an 8-byte little-endian header length, a JSON header, then tensor bytes. Every
rule the reference loader enforces is checked: header bounds, dtypes, shapes, offsets inside the
buffer, no overlaps and no holes, and sizes that match shape times element size."""

from __future__ import annotations

import json
import math
import struct
from typing import Any, BinaryIO

from bastion.supply_chain.scan.context import Context
from bastion.supply_chain.scan.interface import Verdict

__all__ = ["looks_like_safetensors", "scan_safetensors"]

_MAX_HEADER = 100_000_000
_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16,
    "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64,
    "U64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """True when ``head`` starts with a plausible header length followed by ``{``."""
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= min(_MAX_HEADER, size - 8) and head[8:9] == b"{"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate keys in the header")
    return dict(pairs)


def _problems(header: Any, data_len: int) -> list[str]:
    if not isinstance(header, dict):
        return ["header is not a JSON object"]
    out: list[str] = []
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        out.append("__metadata__ is not a map of strings")
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            out.append(f"tensor {name!r} does not have exactly dtype, shape, data_offsets")
            continue
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPE_BITS:
            out.append(f"tensor {name!r} has unknown dtype {dtype!r}")
            continue
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            out.append(f"tensor {name!r} has shape {shape!r}")
            continue
        if not (
            isinstance(offs, list) and len(offs) == 2 and all(type(o) is int for o in offs)
        ) or not (0 <= offs[0] <= offs[1] <= data_len):
            out.append(f"tensor {name!r} has offsets {offs!r} outside the {data_len}-byte buffer")
            continue
        bits = math.prod(shape) * _DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != offs[1] - offs[0]:
            out.append(f"tensor {name!r}: shape {shape} of {dtype} does not fill {offs}")
        spans.append((offs[0], offs[1], name))
    end = 0
    for start, stop, name in sorted(spans):
        if start < end:
            out.append(f"tensor {name!r} overlaps the previous tensor")
        elif start > end:
            out.append(f"a hole of {start - end} bytes precedes tensor {name!r}")
        end = max(end, stop)
    if not out and end != data_len:
        out.append(f"tensors cover {end} bytes of a {data_len}-byte buffer")
    return out


def scan_safetensors(ctx: Context, f: BinaryIO, size: int, member: str | None) -> str:
    """Validate a safetensors header against the file; each inconsistency is a finding."""
    f.seek(0)
    (n,) = struct.unpack("<Q", f.read(8))
    raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        ctx.unparseable(member, "safetensors", f"header is not valid JSON: {exc}")
        return "safetensors"
    for problem in _problems(header, size - 8 - n):
        ctx.sink.add(member, "safetensors", Verdict.UNPARSEABLE, "safetensors-header", problem)
    return "safetensors"
