"""NumPy ``.npy`` files: the header is a Python literal (read with `ast.literal_eval`, as NumPy
does); an object dtype means the rest of the file is a pickle, otherwise the array's bytes must
fill the rest of the file exactly."""

from __future__ import annotations

import ast
import functools
import math
import struct
from typing import Any, BinaryIO

from bastion.supply_chain.scan.context import Context
from bastion.supply_chain.scan.pickles import scan_pickle_stream

__all__ = ["NPY_MAGIC", "scan_npy"]

NPY_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 16
_CACHED_HEADER = 1024


@functools.lru_cache(maxsize=256)
def _literal(text: str) -> Any:
    """`ast.literal_eval`, cached: the headers of a model's arrays repeat (read-only use)."""
    return ast.literal_eval(text)


def _header(f: BinaryIO) -> tuple[dict[str, Any], int]:
    head = f.read(8)
    major = head[6]
    if major == 1:
        (length,), start = struct.unpack("<H", f.read(2)), 10
    elif major in (2, 3):
        (length,), start = struct.unpack("<I", f.read(4)), 12
    else:
        raise ValueError(f"unknown .npy version {major}")
    if length > _MAX_HEADER:
        raise ValueError(f"header of {length} bytes is implausibly long")
    raw = f.read(length)
    if len(raw) != length:
        raise ValueError("file ends inside the header")
    text = raw.decode("utf-8" if major == 3 else "latin-1")
    header = _literal(text) if len(text) <= _CACHED_HEADER else ast.literal_eval(text)
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"header is not the expected dict: {raw[:80]!r}")
    return header, start + length


def scan_npy(ctx: Context, f: BinaryIO, size: int, member: str | None) -> str:
    """Check one .npy file; walk its pickle when the dtype holds objects."""
    f.seek(0)
    try:
        header, data_start = _header(f)
        import numpy as np  # only when a .npy is scanned: it costs ~50 ms to import

        dtype = np.lib.format.descr_to_dtype(header["descr"])
        shape = header["shape"]
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"shape {shape!r} is not a tuple of sizes")
    except (ValueError, SyntaxError, TypeError, MemoryError, struct.error, IndexError) as exc:
        ctx.unparseable(member, "npy", f"npy header is broken: {exc}")
        return "npy"
    f.seek(data_start)
    if dtype.hasobject:
        from bastion.supply_chain.scan.context import SubFile

        scan_pickle_stream(ctx, SubFile(f, data_start, size - data_start), member)  # type: ignore[arg-type]
        return "npy"
    expected = math.prod(shape) * dtype.itemsize
    if size - data_start != expected:
        ctx.unparseable(
            member,
            "npy",
            f"array needs {expected} bytes after the header but {size - data_start} follow",
        )
    return "npy"
