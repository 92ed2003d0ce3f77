"""Raw pickle files: several pickles back to back, joblib's pickles interleaved with array bytes,
and PyTorch's legacy stacked format (magic, protocol, system info, object, storage keys, then
raw storages), each walked to its last byte."""

from __future__ import annotations

import struct
from typing import BinaryIO

from bastion.supply_chain.scan.context import Context
from bastion.supply_chain.scan.pickle_values import PickleOutcome
from bastion.supply_chain.scan.pickle_vm import walk_pickle
from bastion.supply_chain.scan.stream import Reader, StreamError

__all__ = ["STORAGE_ELEMENT_SIZE", "TORCH_LEGACY_MAGIC", "scan_pickle_stream"]

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
#: Bytes per element of each legacy storage class (``torch.FloatStorage`` -> 4).
STORAGE_ELEMENT_SIZE: dict[str, int] = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16, "QInt8Storage": 1,
    "QUInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1,
}  # fmt: skip


def scan_pickle_stream(ctx: Context, f: BinaryIO, member: str | None) -> str:
    """Walk every pickle in ``f``; returns the format name (pickle, joblib or torch-legacy)."""
    reader = Reader(f)
    fmt = "pickle"
    try:
        first = walk_pickle(reader, ctx.sink, member, fmt)
        if first.value == TORCH_LEGACY_MAGIC and isinstance(first.value, int):
            _torch_legacy(ctx, reader, member)
            return "torch-legacy"
        fmt = "joblib" if first.joblib else fmt
        while not reader.at_eof():
            start = reader.offset
            try:
                fmt = "joblib" if walk_pickle(reader, ctx.sink, member, fmt).joblib else fmt
            except StreamError as exc:
                ctx.unparseable(
                    member, fmt, f"data after STOP at offset {start} is not a pickle: {exc}", start
                )
                return fmt
        return fmt
    except StreamError as exc:
        ctx.unparseable(member, fmt, f"pickle stream is broken: {exc}", reader.offset)
        return fmt


def _torch_legacy(ctx: Context, reader: Reader, member: str | None) -> None:
    fmt = "torch-legacy"
    for _ in range(2):  # protocol version, system info
        walk_pickle(reader, ctx.sink, member, fmt)
    main: PickleOutcome = walk_pickle(reader, ctx.sink, member, fmt)
    keys = walk_pickle(reader, ctx.sink, member, fmt).value
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise StreamError("torch legacy storage key list is not a list of strings")
    order = sorted(main.storages)
    if keys != order[: len(keys)]:
        raise StreamError("torch legacy storage keys disagree with the storages the pickle uses")
    for key in order:
        kind, _ = main.storages[key]
        skip_storage(reader, kind)
    if not reader.at_eof():
        raise StreamError(f"{reader.offset}: bytes after the last torch legacy storage")


def skip_storage(reader: Reader, kind: str) -> None:
    """Skip one serialised storage: an 8-byte element count, then the elements."""
    if kind not in STORAGE_ELEMENT_SIZE:
        raise StreamError(f"unknown storage type {kind}")
    (count,) = struct.unpack("<q", reader.read(8))
    if count < 0:
        raise StreamError(f"negative storage size at offset {reader.offset - 8}")
    reader.skip(count * STORAGE_ELEMENT_SIZE[kind])
