"""Entry point: ``scan_paths`` walks files and directories, recognises each file's format by its
content (never its name) and hands it to that format's module."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import stat
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from bastion.core.validation import check_int
from bastion.supply_chain.scan.archives import scan_tar, scan_zip
from bastion.supply_chain.scan.context import Context, join_member
from bastion.supply_chain.scan.gguf_format import GGUF_MAGIC, scan_gguf
from bastion.supply_chain.scan.interface import ScanError, ScanIssue, ScanReport, Verdict
from bastion.supply_chain.scan.keras_format import HDF5_MAGIC, scan_hdf5
from bastion.supply_chain.scan.numpy_format import NPY_MAGIC, scan_npy
from bastion.supply_chain.scan.onnx_format import looks_like_onnx, scan_onnx
from bastion.supply_chain.scan.pickle_values import OPS, looks_like_pickle
from bastion.supply_chain.scan.pickle_vm import walk_pickle
from bastion.supply_chain.scan.pickles import scan_pickle_stream
from bastion.supply_chain.scan.safetensors_format import looks_like_safetensors, scan_safetensors
from bastion.supply_chain.scan.savedmodel_format import looks_like_saved_model, scan_saved_model
from bastion.supply_chain.scan.savedmodel_text import (
    looks_like_saved_model_text,
    scan_saved_model_text,
)
from bastion.supply_chain.scan.stream import (
    CHUNK,
    IN_MEMORY,
    Budget,
    Inflater,
    Reader,
    Sink,
    StreamError,
)

__all__ = ["detect_format", "scan_file", "scan_paths"]

_GZIP, _BZ2, _XZ = b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"
_ZLIB = {b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"}
_SPOOL_IN_MEMORY = 8 << 20
#: Reason prefix of the finding recorded when the scanner itself fails on a file.
INTERNAL_ERROR = "internal error: the scanner could not finish this file"


def detect_format(head: bytes, size: int) -> str:
    """Name the format of content starting with ``head`` (the first 512+ bytes)."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:6] == NPY_MAGIC:
        return "npy"
    if head[:4] == GGUF_MAGIC:
        return "gguf"
    if head[:8] == HDF5_MAGIC:
        return "hdf5"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:2] == _GZIP or head[:3] == _BZ2 or head[:6] == _XZ or head[:2] in _ZLIB:
        return "compressed"
    if looks_like_safetensors(head, size):
        return "safetensors"
    if looks_like_saved_model(head, size):
        return "saved-model"
    if looks_like_saved_model_text(head):
        return "saved-model-text"
    if looks_like_onnx(head):
        return "onnx"
    if head[:1] == b"\x80" or looks_like_pickle(head):
        return "pickle"
    return "unknown"


def _protocol0_pickle(f: BinaryIO) -> bool:
    """A protocol 0/1 pickle has no magic: call it one when it parses up to a STOP, or imports
    something before it breaks (loading it would have run that import)."""
    sink = Sink("", Budget(1))
    f.seek(0)
    try:
        walk_pickle(Reader(f), sink, None, "pickle")
        return True
    except StreamError:
        return bool(sink.issues)
    finally:
        f.seek(0)


def _scan_member(ctx: Context, f: BinaryIO, size: int, member: str | None, depth: int) -> str:
    if depth > ctx.max_depth:
        ctx.sink.add(
            member,
            "archive",
            Verdict.SUSPICIOUS,
            "archive-limit",
            f"nested deeper than {ctx.max_depth} levels; not scanned",
        )
        return "archive"
    f.seek(0)
    head = f.read(1024)
    f.seek(0)
    fmt = detect_format(head, size)
    if fmt == "unknown" and head[:1] in OPS and _protocol0_pickle(f):
        fmt = "pickle"
    try:
        if fmt == "zip":
            return scan_zip(ctx, f, size, member, depth)
        if fmt == "tar":
            return scan_tar(ctx, f, size, member, depth)
        if fmt == "npy":
            return scan_npy(ctx, f, size, member)
        if fmt == "gguf":
            return scan_gguf(ctx, f, size, member)
        if fmt == "hdf5":
            return scan_hdf5(ctx, f, size, member)
        if fmt == "safetensors":
            return scan_safetensors(ctx, f, size, member)
        if fmt == "saved-model":
            return scan_saved_model(ctx, f, size, member)
        if fmt == "saved-model-text":
            return scan_saved_model_text(ctx, f, size, member)
        if fmt == "onnx":
            return scan_onnx(ctx, f, size, member)
        if fmt == "pickle":
            return scan_pickle_stream(ctx, f, member)
        if fmt == "compressed":
            return _scan_compressed(ctx, f, head, member, depth)
    except (StreamError, OSError, EOFError, ValueError, RecursionError) as exc:
        ctx.unparseable(member, fmt, f"{fmt} content is broken: {exc}")
    return fmt


def _scan_compressed(ctx: Context, f: BinaryIO, head: bytes, member: str | None, depth: int) -> str:
    """gzip, bz2, xz or zlib (joblib's compressors): inflate to a spool, scan the content."""
    opener: BinaryIO
    if head[:2] == _GZIP:
        kind, opener = "gzip", gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[assignment]
    elif head[:3] == _BZ2:
        kind, opener = "bz2", bz2.BZ2File(f)  # type: ignore[assignment]
    elif head[:6] == _XZ:
        kind, opener = "xz", lzma.LZMAFile(f)  # type: ignore[assignment]  # noqa: SIM115
    else:
        kind, opener = "zlib", Inflater(f, ctx.sink.budget, wbits=15)  # type: ignore[assignment]
    where = join_member(member, f"({kind})")
    with contextlib.closing(opener), tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY) as spool:
        total = 0
        try:
            while chunk := opener.read(CHUNK):
                if kind != "zlib":
                    ctx.sink.budget.spend(len(chunk))
                total += len(chunk)
                spool.write(chunk)
        except (StreamError, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            ctx.unparseable(where, kind, f"cannot decompress: {exc}")
            return kind
        _scan_member(ctx, spool, total, where, depth + 1)  # type: ignore[arg-type]
    return kind


def scan_file(
    path: Path,
    *,
    max_depth: int = 8,
    max_total_bytes: int = 1 << 36,
    max_members: int = 100_000,
) -> ScanReport:
    """Scan one file and return its report; never imports, runs or unpickles anything in it.

    The bounds are those of `scan_paths`. Raises `ScanError` when the file cannot be opened.
    """
    _check_bounds(max_depth, max_total_bytes, max_members)
    return _scan_one(path, max_depth, max_total_bytes, max_members)


def _scan_one(path: Path, max_depth: int, max_total_bytes: int, max_members: int) -> ScanReport:
    started = time.perf_counter()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ScanError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    with handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            f: BinaryIO = handle
            if size <= IN_MEMORY:  # small files are read once, then parsed from memory
                data = handle.read(size + 1)
                if len(data) <= size:  # else it grew meanwhile: stream it after all
                    f, size = io.BytesIO(data), len(data)
                else:
                    handle.seek(0)
        except OSError as exc:
            raise ScanError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
        sink = Sink(str(path), Budget(max_total_bytes))
        ctx = Context(sink, path.parent, max_depth, max_members, _scan_member)
        try:
            fmt = _scan_member(ctx, f, size, None, 0)
        except Exception as exc:  # a scanner bug must not turn into "clean" or stop the run
            fmt = "unknown"
            ctx.unparseable(None, fmt, f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}")
    issues = sorted(sink.issues, key=lambda i: -i.verdict.rank)
    return ScanReport(str(path), fmt, tuple(issues), size, time.perf_counter() - started)


def _check_bounds(max_depth: int, max_total_bytes: int, max_members: int) -> None:
    plain = type(max_depth) is type(max_total_bytes) is type(max_members) is int  # not bool
    if plain and max_depth >= 0 and max_total_bytes >= 1 and max_members >= 1:
        return  # valid: skip building the validators' messages (this runs once per scan)
    check_int("max_depth", max_depth, low=0)
    check_int("max_total_bytes", max_total_bytes, low=1)
    check_int("max_members", max_members, low=1)


def _files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = raw if isinstance(raw, Path) else Path(raw)
        try:
            mode = os.stat(path).st_mode
        except (OSError, ValueError):
            mode = 0
        if stat.S_ISDIR(mode):
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif stat.S_ISREG(mode):
            yield path
        else:
            raise ScanError(
                f"Expected paths to name files or directories, but {str(path)!r} does not exist"
            )


def scan_paths(
    paths: Iterable[str | Path],
    *,
    max_depth: int = 8,
    max_total_bytes: int = 1 << 36,
    max_members: int = 100_000,
) -> list[ScanReport]:
    """Scan files and directories (recursively); one `ScanReport` per file, in path order.

    ``max_depth`` bounds archive nesting, ``max_total_bytes`` the bytes decompression may
    produce per file, ``max_members`` the members of one archive; past them is a finding.
    Raises `ScanError` for a path that does not exist; a file that exists but cannot be read
    is reported as unparseable.
    """
    _check_bounds(max_depth, max_total_bytes, max_members)
    reports = []
    for path in list(_files(paths)):
        try:
            report = _scan_one(path, max_depth, max_total_bytes, max_members)
        except ScanError as exc:  # it exists but cannot be read: a finding, not a usage error
            issue = ScanIssue(
                str(path), None, "unknown", Verdict.UNPARSEABLE, "unparseable", str(exc)
            )
            report = ScanReport(str(path), "unknown", (issue,))
        reports.append(report)
    return reports
