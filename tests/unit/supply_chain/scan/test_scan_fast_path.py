"""The pickle walker's in-place fast path and small-file reads give the same findings, at the
same offsets, as decoding through the reader: across buffer boundaries, for every protocol, for
4-byte-length strings and for files read whole or streamed."""

from __future__ import annotations

import gzip
import pickle
import pickletools
from collections.abc import Callable
from pathlib import Path

import pytest
from scan_payloads import stack_call

from bastion.supply_chain.scan import Verdict, scan_paths
from bastion.supply_chain.scan.stream import CHUNK, IN_MEMORY


def _import_offset(data: bytes) -> int:
    """Offset of the opcode that imports (GLOBAL or STACK_GLOBAL), per pickletools."""
    return next(
        pos for op, _, pos in pickletools.genops(data) if "GLOBAL" in op.name and pos is not None
    )


def _dangerous(path: Path) -> list[tuple[str | None, int | None]]:
    (report,) = scan_paths([path])
    assert {i.verdict for i in report.issues} == {Verdict.DANGEROUS}, report.issues
    return [(i.global_name, i.offset) for i in report.issues]


@pytest.mark.parametrize("protocol", range(6))
def test_offsets_agree_across_buffer_boundaries(
    tmp_path: Path, evil_pickle: Callable[[int], bytes], protocol: int
) -> None:
    # gzip makes the scanner read the pickle back from a spool in CHUNK-sized pieces, so the
    # opcodes around each CHUNK boundary are decoded through the reader, not in place
    items = [f"item{i}" for i in range(CHUNK // 6)]
    for pad in range(5):  # shift the opcodes over the boundary, one byte at a time
        benign = pickle.dumps(["x" * pad, items, 2.5, -7, 1 << 40], protocol=protocol)
        data = benign + evil_pickle(protocol)
        plain, packed = tmp_path / f"p{pad}.pkl", tmp_path / f"p{pad}.pkl.gz"
        plain.write_bytes(data)
        packed.write_bytes(gzip.compress(data))
        assert len(data) > CHUNK
        evil_at = data.rindex(evil_pickle(protocol))
        expected = evil_at + _import_offset(evil_pickle(protocol))
        assert _dangerous(plain) == _dangerous(packed) == [("posix.system", expected)]


def test_files_past_the_in_memory_bound_are_streamed_with_the_same_findings(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    evil = evil_pickle(4)
    big = pickle.dumps(b"\0" * IN_MEMORY, protocol=4) + evil  # one payload skipped by length
    small = pickle.dumps(b"\0" * 16, protocol=4) + evil
    (tmp_path / "big.pkl").write_bytes(big)
    (tmp_path / "small.pkl").write_bytes(small)
    shift = len(big) - len(small)
    ((name, at),) = _dangerous(tmp_path / "big.pkl")
    assert at is not None
    assert [(name, at - shift)] == _dangerous(tmp_path / "small.pkl")


def test_four_byte_length_strings_are_checked_in_place(tmp_path: Path) -> None:
    inner = stack_call("os", "system", "id")
    # BINBYTES (4-byte length) holding a pickle, then BINUNICODE with a non-ASCII name
    data = b"\x80\x04B" + len(inner).to_bytes(4, "little") + inner + b"X\x03\0\0\0\xc3\xa9x\x86."
    path = tmp_path / "nested.pkl"
    path.write_bytes(data)
    (report,) = scan_paths([path])
    assert [(i.rule, i.global_name) for i in report.issues] == [("nested-pickle", "os.system")]
    bad = b"\x80\x04X\x02\0\0\0\xff\xfe."  # invalid UTF-8 must not be accepted
    path.write_bytes(bad)
    (report,) = scan_paths([path])
    assert [i.verdict for i in report.issues] == [Verdict.UNPARSEABLE]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x04\x94.", "stack underflow at offset 2"),  # MEMOIZE on an empty stack
        (b"\x80\x04q\x01.", "stack underflow at offset 2"),  # BINPUT on an empty stack
        (b"\x80\x04h\x05.", "memo key 5 missing at offset 2"),  # BINGET of nothing
        (b"\x80\x04K\x01\x86.", "stack underflow at offset 4"),  # TUPLE2 of one item
        (b"\x80\x04r\x01\0\0\0.", "stack underflow at offset 2"),  # LONG_BINPUT, empty stack
    ],
)
def test_broken_pickles_fail_closed_at_the_failing_opcode(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    path = tmp_path / "broken.pkl"
    path.write_bytes(data)
    (report,) = scan_paths([path])
    (issue,) = report.issues
    assert issue.verdict is Verdict.UNPARSEABLE and reason in issue.reason
