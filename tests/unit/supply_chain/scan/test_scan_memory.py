"""Memory stays bounded: a 210 MB file is scanned with a few MB of Python allocations."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from scan_payloads import binbytes8, u

from bastion.supply_chain.scan import scan_paths

BIG = 210 * 1024 * 1024


def sparse_pickle(path: Path, payload: int) -> Path:
    """A pickle holding one ``payload``-byte BINBYTES8, written as a sparse file."""
    with path.open("wb") as f:
        f.write(b"\x80\x04" + binbytes8(payload))
        f.seek(payload, 1)
        f.write(b".")
    return path


def sparse_joblib(path: Path, payload: int) -> Path:
    """A joblib file: a NumpyArrayWrapper for a uint8 array, then its raw bytes, then STOP."""
    state = (
        b"}(" + u("subclass") + u("numpy") + u("ndarray") + b"\x93" + u("shape")
        + b"\x8a\x04" + payload.to_bytes(4, "little") + b"\x85" + u("order") + u("C")
        + u("dtype") + u("numpy") + u("dtype") + b"\x93" + u("u1") + b"\x89\x88\x87R"
        + b"(K\x03" + u("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        + u("allow_mmap") + b"\x88u"
    )  # fmt: skip
    head = b"\x80\x04" + u("joblib.numpy_pickle") + u("NumpyArrayWrapper") + b"\x93)\x81" + state
    with path.open("wb") as f:
        f.write(head + b"b")
        f.seek(payload, 1)
        f.write(b".")
    return path


@pytest.mark.parametrize("build", [sparse_pickle, sparse_joblib])
def test_peak_python_memory_is_far_below_file_size(tmp_path: Path, build: object) -> None:
    path = build(tmp_path / "big.bin", BIG)  # type: ignore[operator]
    assert path.stat().st_size > 200 * 1024 * 1024
    tracemalloc.start()
    try:
        (report,) = scan_paths([path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.clean, report.issues
    assert report.format == ("joblib" if build is sparse_joblib else "pickle")
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"


def _max_rss_kb(path: Path) -> int:
    code = (
        "import resource, sys; from bastion.supply_chain.scan import scan_paths; "
        "r = scan_paths([sys.argv[1]]); assert r[0].clean, r; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def test_peak_rss_does_not_grow_with_file_size(tmp_path: Path) -> None:
    small = _max_rss_kb(sparse_pickle(tmp_path / "small.bin", 1024))
    big = _max_rss_kb(sparse_pickle(tmp_path / "big.bin", BIG))
    assert big - small < 16 * 1024, f"RSS grew by {big - small} KiB for a {BIG >> 20} MiB file"
