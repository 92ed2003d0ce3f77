"""A zip reader that reads archives the way PyTorch's loader does: central directory first, then
each member's data found through its local header; disagreements between the two, flag bits and
checksums are reported instead of stopping the scan (picklescan crashed on them: CVE-2025-1944,
CVE-2025-1945, CVE-2025-10156)."""

from __future__ import annotations

import posixpath
import struct
from dataclasses import dataclass
from typing import BinaryIO

from bastion.supply_chain.scan.stream import StreamError

__all__ = ["ZipEntry", "read_central_directory"]

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"


@dataclass(frozen=True)
class ZipEntry:
    """One member, with the central directory's view and its local header's."""

    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int
    local_name: str
    local_flags: int
    local_method: int


def _zip64_extra(extra: bytes, values: list[int]) -> list[int]:
    """Replace 0xFFFFFFFF placeholders in ``values`` (usize, csize, offset) from the zip64 field."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if tag == 1:
            at = 0
            for i, v in enumerate(values):
                if v == 0xFFFFFFFF and at + 8 <= len(body):
                    values[i] = struct.unpack_from("<Q", body, at)[0]
                    at += 8
        pos += 4 + length
    return values


def _find_eocd(f: BinaryIO, size: int) -> tuple[int, int, int]:
    """Return ``(entries, cd_size, cd_offset)`` from the (zip64) end-of-central-directory."""
    tail_len = min(size, 65557)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        raise StreamError("no end-of-central-directory record")
    _, _, _, entries, cd_size, cd_offset, _ = struct.unpack_from("<HHHHIIH", tail, at + 4)
    eocd_pos = size - tail_len + at
    if 0xFFFF in (entries,) or 0xFFFFFFFF in (cd_size, cd_offset):
        if eocd_pos < 20:
            raise StreamError("zip64 locator missing")
        f.seek(eocd_pos - 20)
        loc = f.read(20)
        if loc[:4] != _EOCD64_LOCATOR:
            raise StreamError("zip64 locator missing")
        (rec_pos,) = struct.unpack_from("<Q", loc, 8)
        f.seek(rec_pos)
        rec = f.read(56)
        if rec[:4] != _EOCD64 or len(rec) < 56:
            raise StreamError("zip64 end-of-central-directory record missing")
        entries, cd_size, cd_offset = struct.unpack_from("<QQQ", rec, 32)
    if cd_offset + cd_size > size:
        raise StreamError("central directory lies beyond the end of the file")
    return entries, cd_size, cd_offset


def read_central_directory(f: BinaryIO, size: int, *, max_entries: int) -> list[ZipEntry]:
    """Parse the central directory and every local header; raise `StreamError` if broken."""
    entries, cd_size, cd_offset = _find_eocd(f, size)
    if entries > max_entries:
        raise StreamError(f"{entries} members exceed the bound of {max_entries}")
    f.seek(cd_offset)
    cd = f.read(cd_size)
    out: list[ZipEntry] = []
    pos = 0
    for _ in range(entries):
        if cd[pos : pos + 4] != _CENTRAL or pos + 46 > len(cd):
            raise StreamError(f"central directory entry {len(out)} is corrupt")
        (flags, method, _, _, crc, csize, usize, nlen, elen, clen) = struct.unpack_from(
            "<HHHHIIIHHH", cd, pos + 8
        )
        (offset,) = struct.unpack_from("<I", cd, pos + 42)
        raw_name = cd[pos + 46 : pos + 46 + nlen]
        extra = cd[pos + 46 + nlen : pos + 46 + nlen + elen]
        usize, csize, offset = _zip64_extra(extra, [usize, csize, offset])
        pos += 46 + nlen + elen + clen
        f.seek(offset)
        local = f.read(30)
        if len(local) < 30 or local[:4] != _LOCAL:
            raise StreamError(f"local header of {_decode(raw_name, flags)!r} is missing")
        lflags, lmethod = struct.unpack_from("<HH", local, 6)
        lnlen, lelen = struct.unpack_from("<HH", local, 26)
        local_name = f.read(lnlen)
        data_offset = offset + 30 + lnlen + lelen
        if data_offset + csize > size:
            raise StreamError(f"member {_decode(raw_name, flags)!r} runs past the end of the file")
        out.append(
            ZipEntry(
                name=_decode(raw_name, flags),
                method=method,
                flags=flags,
                crc=crc,
                compressed_size=csize,
                size=usize,
                header_offset=offset,
                data_offset=data_offset,
                local_name=_decode(local_name, lflags),
                local_flags=lflags,
                local_method=lmethod,
            )
        )
    return out


def _decode(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")


def escapes_root(name: str) -> bool:
    """True when an archive member name would land outside the extraction directory."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return True
    return posixpath.normpath(norm).split("/")[0] == ".."
