"""Format checks: safetensors headers, .npy/.npz, archives and their bounds, compressed streams."""

from __future__ import annotations

import io
import json
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bastion.core.errors import ValidationError
from bastion.supply_chain.scan import ScanError, ScanReport, Verdict, detect_format, scan_paths


def scan(path: Path, **kwargs: int) -> ScanReport:
    (report,) = scan_paths([path], **kwargs)
    return report


def safetensors(header: dict[str, object], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    ("header", "data", "problem"),
    [
        ({"a": F32}, b"\x00" * 8, None),
        ({"a": F32, "__metadata__": {"k": "v"}}, b"\x00" * 8, None),
        ({"a": {**F32, "data_offsets": [0, 16]}}, b"\x00" * 8, "outside"),
        ({"a": {**F32, "shape": [3]}}, b"\x00" * 8, "does not fill"),
        ({"a": {**F32, "dtype": "PY_OBJECT"}}, b"\x00" * 8, "unknown dtype"),
        ({"a": F32, "b": {**F32, "data_offsets": [4, 12]}}, b"\x00" * 12, "overlaps"),
        ({"a": {**F32, "data_offsets": [4, 12]}}, b"\x00" * 12, "hole"),
        ({"a": F32}, b"\x00" * 12, "cover 8 bytes"),
        ({"a": {**F32, "shape": [-2]}}, b"\x00" * 8, "shape"),
        ({"a": F32, "__metadata__": {"k": 1}}, b"\x00" * 8, "__metadata__"),
    ],
)
def test_safetensors_header_validation(
    tmp_path: Path, header: dict[str, object], data: bytes, problem: str | None
) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors(header, data))
    report = scan(path)
    assert report.format == "safetensors"
    if problem is None:
        assert report.clean, report.issues
    else:
        assert any(problem in i.reason for i in report.issues), report.issues


def test_safetensors_broken_json_and_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    raw = b'{"a": 1, "a": 2}'
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert scan(path).worst is Verdict.UNPARSEABLE
    raw = b'{"a": [1,'
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert scan(path).worst is Verdict.UNPARSEABLE


def test_npy_object_array_walks_the_pickle(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    path = tmp_path / "a.npy"
    np.save(path, np.arange(3.0))
    good = path.read_bytes()
    path.write_bytes(good + b"extra")
    assert scan(path).worst is Verdict.UNPARSEABLE
    path.write_bytes(good[:-4])
    assert scan(path).worst is Verdict.UNPARSEABLE
    header = good[: good.index(b"\n") + 1].replace(b"'<f8'", b"'|O' ")
    path.write_bytes(header + evil_pickle(3))
    report = scan(path)
    assert report.format == "npy" and report.worst is Verdict.DANGEROUS


def test_npz_member_with_a_pickle(tmp_path: Path, evil_pickle: Callable[[int], bytes]) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([None], dtype=object), allow_pickle=True)
    evil = buf.getvalue()
    evil = evil[: evil.index(b"\n") + 1] + evil_pickle(3)
    path = tmp_path / "a.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ok.npy", buf.getvalue())
        z.writestr("evil.npy", evil)
    report = scan(path)
    assert report.format == "npz"
    assert {i.member for i in report.issues} == {"evil.npy"}


def _nested_zip(depth: int, payload: bytes) -> bytes:
    data = payload
    for level in range(depth):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(f"level{level}.zip", data)
        data = buf.getvalue()
    return data


def test_nested_archives_are_scanned_to_a_bounded_depth(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    path = tmp_path / "nested.zip"
    path.write_bytes(_nested_zip(3, evil_pickle(2)))
    report = scan(path)
    assert report.worst is Verdict.DANGEROUS
    assert report.issues[0].member == "level2.zip!level1.zip!level0.zip"
    assert any(i.rule == "archive-limit" for i in scan(path, max_depth=2).issues)


def test_zip_bomb_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\x00" * (20 << 20))
    report = scan(path, max_total_bytes=1 << 20)
    rules = {i.rule for i in report.issues}
    assert "archive-limit" in rules and "unparseable" in rules


def test_tar_members_and_escaping_names(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    path = tmp_path / "model.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in (("ok.pkl", pickle.dumps([1])), ("../evil.pkl", evil_pickle(2))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    report = scan(path)
    assert report.format == "tar"
    assert {i.rule for i in report.issues} == {"archive-path", "dangerous-global"}


def test_compressed_streams(tmp_path: Path, evil_pickle: Callable[[int], bytes]) -> None:
    import bz2
    import gzip
    import lzma

    for compress in (gzip.compress, bz2.compress, lzma.compress):
        path = tmp_path / "model.bin"
        path.write_bytes(compress(evil_pickle(4)))
        assert scan(path).worst is Verdict.DANGEROUS, compress
    path.write_bytes(gzip.compress(evil_pickle(4))[:-12])
    assert Verdict.UNPARSEABLE in {i.verdict for i in scan(path).issues}


def test_hdf5_without_a_valid_structure_is_never_clean(tmp_path: Path) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100 + b'{"class_name": "Lambda"}')
    verdicts = {i.verdict for i in scan(path).issues}
    assert verdicts == {Verdict.DANGEROUS, Verdict.UNPARSEABLE}


def test_cve_2024_3660_keras_h5_lambda_in_model_config(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "model.h5"
    layers = [{"class_name": "Dense", "config": {"units": 2}}]
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": layers})
        h5.create_dataset("w", data=np.ones(4))
    assert scan(path).clean
    layers.append({"class_name": "Lambda", "config": {"function": "4wEAAAAA"}})
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": layers})
    report = scan(path)
    assert report.worst is Verdict.DANGEROUS and report.format == "hdf5"


def test_directories_are_walked_and_missing_paths_refused(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.pkl").write_bytes(pickle.dumps(1))
    (tmp_path / "a" / "y.txt").write_text("hello")
    reports = scan_paths([tmp_path / "a"])
    assert [Path(r.path).name for r in reports] == ["x.pkl", "y.txt"]
    with pytest.raises(ScanError, match="does not exist"):
        scan_paths([tmp_path / "missing"])
    with pytest.raises(ValidationError, match="max_depth"):
        scan_paths([tmp_path], max_depth=-1)


def test_detection_ignores_names() -> None:
    assert detect_format(b"PK\x03\x04" + b"\x00" * 40, 44) == "zip"
    assert detect_format(b"\x93NUMPY\x01\x00", 8) == "npy"
    assert detect_format(b"hello world", 11) == "unknown"


def test_an_unreadable_file_is_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps(1))
    (tmp_path / "locked.pkl").write_bytes(pickle.dumps(1))
    real_open = Path.open

    def guarded(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "locked.pkl":
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", guarded)
    reports = {Path(r.path).name: r for r in scan_paths([tmp_path])}
    assert reports["ok.pkl"].clean
    assert reports["locked.pkl"].worst is Verdict.UNPARSEABLE
    assert "Permission denied" in reports["locked.pkl"].issues[0].reason
