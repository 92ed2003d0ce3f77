"""Zip and tar archives, nested to a bounded depth: every member is dispatched by its content.

Zip archives are read the PyTorch way (see `zipread`); a PyTorch archive's storage blobs
(``<prefix>/data/<n>``) are raw tensor bytes that no loader unpickles, so they are checksummed
but not sniffed. Tar archives include PyTorch's oldest format (``storages``/``tensors`` members
of pickles interleaved with raw data).
"""

from __future__ import annotations

import io
import itertools
import re
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from typing import BinaryIO, cast

from bastion.supply_chain.scan.context import Context, SubFile, join_member
from bastion.supply_chain.scan.interface import Verdict
from bastion.supply_chain.scan.pickle_values import Glob
from bastion.supply_chain.scan.pickle_vm import walk_pickle
from bastion.supply_chain.scan.pickles import scan_pickle_stream, skip_storage
from bastion.supply_chain.scan.stream import (
    CHUNK,
    IN_MEMORY,
    Inflater,
    Reader,
    StreamError,
    Window,
)
from bastion.supply_chain.scan.zipread import ZipEntry, escapes_root, read_central_directory

__all__ = ["scan_tar", "scan_zip", "zip_kind"]

#: A format check for one member: (context, file, size, member name).
Handler = Callable[[Context, BinaryIO, int, str | None], object]

_TORCH_PICKLE = re.compile(r"[^/]+/data\.pkl\Z")
_TORCH_STORAGE = re.compile(r"[^/]+/data/\d+\Z")
_TORCH_PICKLES = re.compile(r"[^/]+/[^/]+\.pkl\Z")  # data.pkl, constants.pkl: torch unpickles
_SPOOL_IN_MEMORY = 8 << 20


def _anomaly(ctx: Context, member: str, fmt: str, reason: str) -> None:
    ctx.sink.add(member, fmt, Verdict.SUSPICIOUS, "archive-anomaly", reason)


def zip_kind(names: list[str]) -> str:
    """Name the flavour of a zip from its member names: torch-zip, npz, keras or zip."""
    if any(_TORCH_PICKLE.match(n) for n in names):
        return "torch-zip"
    if "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names):
        return "keras"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def scan_zip(ctx: Context, f: BinaryIO, size: int, member: str | None, depth: int) -> str:
    """Scan a zip archive and every member in it; returns its flavour."""
    try:
        entries = read_central_directory(f, size, max_entries=ctx.max_members)
    except StreamError as exc:
        ctx.unparseable(member, "zip", f"zip structure is broken: {exc}")
        return "zip"
    kind = zip_kind([e.name for e in entries])
    declared = sum(e.size for e in entries)
    if declared > ctx.sink.budget.remaining:
        ctx.sink.add(
            member,
            kind,
            Verdict.SUSPICIOUS,
            "archive-limit",
            f"members declare {declared} bytes, beyond the scan bound (zip bomb?)",
        )
    seen: set[str] = set()
    spans = sorted((e.header_offset, e.data_offset + e.compressed_size) for e in entries)
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            ctx.sink.add(
                member,
                kind,
                Verdict.SUSPICIOUS,
                "archive-limit",
                "members overlap in the file (a zip-bomb construction)",
            )
    for entry in entries:
        where = join_member(member, entry.name)
        if entry.name in seen:
            _anomaly(ctx, where, kind, f"{entry.name!r} appears twice; loaders disagree on which")
        seen.add(entry.name)
        _check_headers(ctx, entry, where, kind)
        if entry.name.endswith("/"):
            continue
        if kind == "keras" and entry.name == "config.json":
            from bastion.supply_chain.scan.keras_format import scan_keras_config

            _scan_entry(ctx, f, entry, where, depth, kind, sniff=False, handler=scan_keras_config)
            continue
        if kind == "torch-zip" and _TORCH_PICKLES.match(entry.name):
            _scan_entry(ctx, f, entry, where, depth, kind, sniff=False, handler=_as_pickle)
            continue
        sniff = not (kind == "torch-zip" and _TORCH_STORAGE.match(entry.name))
        _scan_entry(ctx, f, entry, where, depth, kind, sniff=sniff)
    return kind


def _check_headers(ctx: Context, e: ZipEntry, where: str, kind: str) -> None:
    if e.local_name != e.name:
        _anomaly(
            ctx, where, kind, f"local header names {e.local_name!r}, central directory {e.name!r}"
        )
    if (e.flags | e.local_flags) & 0x1:
        _anomaly(ctx, where, kind, "marked encrypted (flag bit 0), which PyTorch ignores")
    if e.local_method != e.method:
        _anomaly(
            ctx, where, kind, f"compression method {e.local_method} locally, {e.method} centrally"
        )
    if escapes_root(e.name):
        ctx.sink.add(
            where,
            kind,
            Verdict.SUSPICIOUS,
            "archive-path",
            f"member name {e.name!r} escapes the extraction directory",
        )


def _scan_entry(
    ctx: Context,
    f: BinaryIO,
    entry: ZipEntry,
    where: str,
    depth: int,
    kind: str,
    *,
    sniff: bool,
    handler: Handler | None = None,
) -> None:
    if entry.method not in (0, 8):
        ctx.unparseable(where, kind, f"compression method {entry.method} is not supported")
        return
    if entry.method == 0 and entry.compressed_size != entry.size:
        _anomaly(ctx, where, kind, "stored member whose sizes disagree")
    # a blob nobody unpickles (a torch storage) has nothing a checksum could protect: skipping
    # it keeps a multi-gigabyte checkpoint's scan to the cost of reading its pickles
    if not sniff and handler is None:
        return
    if entry.method == 0:
        view: BinaryIO
        if entry.compressed_size <= IN_MEMORY:  # read once: checksum and parse from memory
            f.seek(entry.data_offset)
            data = f.read(entry.compressed_size)
            view, crc = io.BytesIO(data), zlib.crc32(data)
        else:
            view = cast(BinaryIO, SubFile(f, entry.data_offset, entry.compressed_size))
            crc = _crc(view)
        if crc != entry.crc:
            ctx.unparseable(
                where,
                kind,
                f"CRC mismatch ({crc:08x} != {entry.crc:08x}); loaders "
                "that skip the check still load it",
            )
        _dispatch(ctx, view, entry.compressed_size, where, depth, handler)
        return
    raw = Window(f, entry.data_offset, entry.data_offset + entry.compressed_size)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        crc, total = 0, 0
        try:
            inflater = Inflater(raw, ctx.sink.budget)
            while chunk := inflater.read(CHUNK):
                crc, total = zlib.crc32(chunk, crc), total + len(chunk)
                spool.write(chunk)
        except StreamError as exc:
            ctx.unparseable(where, kind, f"cannot inflate: {exc}")
            return
        if crc != entry.crc or total != entry.size:
            ctx.unparseable(
                where,
                kind,
                "CRC or size mismatch after inflating; loaders that skip the check still load it",
            )
        _dispatch(ctx, spool, total, where, depth, handler)  # type: ignore[arg-type]


def _as_pickle(ctx: Context, f: BinaryIO, size: int, member: str | None) -> None:
    f.seek(0)
    scan_pickle_stream(ctx, f, member)


def _dispatch(
    ctx: Context, f: BinaryIO, size: int, where: str, depth: int, handler: Handler | None
) -> None:
    if handler is not None:
        f.seek(0)
        handler(ctx, f, size, where)
        return
    f.seek(0)
    ctx.scan_member(ctx, f, size, where, depth + 1)


def _crc(f: BinaryIO) -> int:
    f.seek(0)
    crc = 0
    while chunk := f.read(CHUNK):
        crc = zlib.crc32(chunk, crc)
    return crc


def scan_tar(ctx: Context, f: BinaryIO, size: int, member: str | None, depth: int) -> str:
    """Scan a tar archive (PyTorch's oldest format included) and every member in it."""
    try:
        tar = tarfile.open(fileobj=f, mode="r:")  # noqa: SIM115 - closed below
        members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        ctx.unparseable(member, "tar", f"tar structure is broken: {exc}")
        return "tar"
    names = {m.name for m in members}
    kind = "torch-tar" if {"storages", "tensors", "pickle"} <= names else "tar"
    if len(members) > ctx.max_members:
        ctx.unparseable(member, kind, f"{len(members)} members exceed the bound")
        return kind
    for m in members:
        where = join_member(member, m.name)
        if escapes_root(m.name) or ((m.issym() or m.islnk()) and escapes_root(m.linkname)):
            ctx.sink.add(
                where,
                kind,
                Verdict.SUSPICIOUS,
                "archive-path",
                f"member {m.name!r} (link {m.linkname!r}) escapes the directory",
            )
        if not m.isfile():
            continue
        view = SubFile(f, m.offset_data, m.size)
        if kind == "torch-tar" and m.name in ("storages", "tensors"):
            try:
                _torch_tar_member(ctx, view, where, m.name)
            except StreamError as exc:
                ctx.unparseable(where, kind, f"torch tar member is broken: {exc}")
            continue
        ctx.scan_member(ctx, view, m.size, where, depth + 1)  # type: ignore[arg-type]
    return kind


def _torch_tar_member(ctx: Context, f: SubFile, where: str, name: str) -> None:
    reader = Reader(f)
    count = walk_pickle(reader, ctx.sink, where, "torch-tar").value
    if not isinstance(count, int) or count < 0:
        raise StreamError("record count is not an integer")
    for _ in range(count):
        args = walk_pickle(reader, ctx.sink, where, "torch-tar").value
        if not isinstance(args, tuple) or len(args) != 3:
            raise StreamError("record header is not a 3-tuple")
        if name == "storages":
            kind = args[2]
            skip_storage(reader, kind.name if isinstance(kind, Glob) else "?")
        else:
            (ndim,) = struct.unpack("<i", reader.read(4))
            if ndim < 0:
                raise StreamError("negative tensor rank")
            reader.skip(4 + 16 * ndim + 8)
    if name == "storages":
        walk_pickle(reader, ctx.sink, where, "torch-tar")  # storage views
    if not reader.at_eof():
        raise StreamError(f"bytes after the last record at offset {reader.offset}")
