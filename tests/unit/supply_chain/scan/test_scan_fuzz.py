"""Bounded fuzzing of the parsers: mutated real files and random bytes never crash the scanner,
never hang it, and a mutated file is never silently reported as something it is not."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scan_payloads import proto0_call

from bastion.supply_chain.scan import ScanReport, scan_paths
from bastion.supply_chain.scan.scanner import INTERNAL_ERROR


def _seeds() -> list[bytes]:
    from collections import OrderedDict

    buf = io.BytesIO()
    np.save(buf, np.array([1, "a"], dtype=object), allow_pickle=True)
    npy = buf.getvalue()
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", pickle.dumps(OrderedDict(a=[1, 2]), protocol=2))
        z.writestr("archive/data/0", b"\x00" * 64)
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    return [
        pickle.dumps({"a": [1, 2.0, "x", b"y"], "b": (None, True)}, protocol=5),
        pickle.dumps([1, 2, {3: 4}], protocol=0),
        proto0_call("os", "system", "id"),
        npy,
        zbuf.getvalue(),
        len(header).to_bytes(8, "little") + header + b"\x00" * 8,
        b'meta_graphs { graph_def { node { name: "a\\x41" op: \'Const\' input: ["b", "c"]'
        b' attr { key: "value" value { tensor { string_val: "/x" } } } } } }  # c\n',
    ]


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def _scan(tmp_path: Path, data: bytes) -> ScanReport:
    path = tmp_path / "fuzz.bin"
    path.write_bytes(data)
    (report,) = scan_paths([path])
    assert not any(i.reason.startswith(INTERNAL_ERROR) for i in report.issues), report.issues
    return report


@settings(
    max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=mutated())
def test_mutated_files_never_crash_the_scanner(tmp_path: Path, data: bytes) -> None:
    report = _scan(tmp_path, data)
    assert report.size == len(data)


@settings(
    max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=512))
def test_random_bytes_never_crash_the_scanner(tmp_path: Path, data: bytes) -> None:
    _scan(tmp_path, data)


def test_deeply_nested_json_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    header = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    report = _scan(tmp_path, len(header).to_bytes(8, "little") + header)
    assert report.format == "safetensors" and not report.clean


def test_every_truncation_of_a_pickle_is_a_finding(tmp_path: Path) -> None:
    data = pickle.dumps({"a": [1, 2.0, "x", b"y" * 300]}, protocol=4)
    for cut in range(1, len(data)):
        report = _scan(tmp_path, data[:cut])
        assert not report.clean, cut
