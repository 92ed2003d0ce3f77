"""Every public scanner bypass with an advisory, reproduced from the advisory's description."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from scan_payloads import proto0_call, stack_call

from bastion.supply_chain.scan import ScanReport, Verdict, scan_paths


def scan(path: Path) -> ScanReport:
    (report,) = scan_paths([path])
    return report


def torch_zip(members: dict[str, bytes]) -> bytes:
    """A PyTorch-style archive: ``archive/data.pkl`` plus whatever else is given."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def benign_pickle() -> bytes:
    from collections import OrderedDict

    return pickle.dumps(OrderedDict(w=[1.0, 2.0]), protocol=2)


def test_cve_2025_1716_pip_main_as_a_global(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(stack_call("pip", "main", "install", "evil-package"))
    report = scan(path)
    assert report.worst is Verdict.DANGEROUS
    assert report.issues[0].global_name == "pip.main"


def test_cve_2025_1889_pickle_with_a_non_standard_extension_inside_a_torch_zip(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(
        torch_zip({"archive/data.pkl": benign_pickle(), "archive/extra.cfg": evil_pickle(2)})
    )
    report = scan(path)
    assert report.format == "torch-zip"
    assert any(
        i.member == "archive/extra.cfg" and i.verdict is Verdict.DANGEROUS for i in report.issues
    )


def _patch(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def test_cve_2025_1944_local_header_name_differs_from_central_directory(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    data = torch_zip({"archive/data.pkl": evil_pickle(2)})
    data = _patch(data, 30, b"archive/data.pkX")  # the first local header's name
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    with pytest.raises(zipfile.BadZipFile):  # what crashed picklescan
        zipfile.ZipFile(path).read("archive/data.pkl")
    rules = {i.rule for i in scan(path).issues}
    assert {"archive-anomaly", "dangerous-global"} <= rules


def test_cve_2025_1945_general_purpose_flag_bits_flipped(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    data = torch_zip({"archive/data.pkl": evil_pickle(2)})
    central = data.rfind(b"PK\x01\x02")
    data = _patch(data, 6, b"\x01\x00")  # local header: encrypted
    data = _patch(data, central + 8, b"\x01\x00")  # central directory: encrypted
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    with pytest.raises(RuntimeError):  # "File is encrypted": what crashed picklescan
        zipfile.ZipFile(path).read("archive/data.pkl")
    report = scan(path)
    assert report.worst is Verdict.DANGEROUS
    assert any("encrypted" in i.reason for i in report.issues)


def test_cve_2025_10155_pickle_with_a_misleading_extension(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    for name in ("model.bin", "model.pt", "weights.safetensors", "config.txt"):
        path = tmp_path / name
        path.write_bytes(evil_pickle(4))
        report = scan(path)
        assert report.format == "pickle" and report.worst is Verdict.DANGEROUS, name


def test_cve_2025_10156_bad_crc_is_reported_and_the_content_still_scanned(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    data = torch_zip({"archive/data.pkl": evil_pickle(2)})
    central = data.rfind(b"PK\x01\x02")
    data = _patch(data, central + 16, b"\x00\x00\x00\x00")
    data = _patch(data, 14, b"\x00\x00\x00\x00")
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(path).read("archive/data.pkl")
    verdicts = {i.verdict for i in scan(path).issues}
    assert {Verdict.DANGEROUS, Verdict.UNPARSEABLE} <= verdicts


def test_cve_2025_10157_submodule_of_a_dangerous_module(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(stack_call("asyncio.unix_events", "_UnixSubprocessTransport", "id"))
    assert scan(path).worst is Verdict.DANGEROUS
    path.write_bytes(proto0_call("_posixsubprocess", "fork_exec", "id"))
    assert scan(path).worst is Verdict.DANGEROUS


def test_cve_2025_32434_weights_only_bypass_through_the_legacy_format(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    from bastion.supply_chain.scan.pickles import TORCH_LEGACY_MAGIC

    parts = [TORCH_LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}]
    data = b"".join(pickle.dumps(p, protocol=2) for p in parts)
    data += evil_pickle(2) + pickle.dumps([], protocol=2)
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    report = scan(path)
    assert report.format == "torch-legacy" and report.worst is Verdict.DANGEROUS


def _keras(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.8.0"}))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    return path


def test_cve_2024_3660_keras_lambda_layer(tmp_path: Path) -> None:
    config = {
        "module": "keras", "class_name": "Sequential",
        "config": {"layers": [{"module": "keras.layers", "class_name": "Lambda",
                               "config": {"function": {"class_name": "__lambda__"}}}]},
    }  # fmt: skip
    report = scan(_keras(tmp_path, config))
    assert report.format == "keras"
    assert any(i.rule == "keras-lambda" and i.verdict is Verdict.DANGEROUS for i in report.issues)


def test_cve_2025_1550_keras_config_names_an_arbitrary_module(tmp_path: Path) -> None:
    config = {
        "module": "keras", "class_name": "Sequential",
        "config": {"layers": [{"module": "keras.layers", "class_name": "Dense", "config": {
            "activation": {"module": "builtins", "class_name": "function", "config": "exec",
                           "registered_name": "function"}}}]},
    }  # fmt: skip
    report = scan(_keras(tmp_path, config))
    (issue,) = [i for i in report.issues if i.rule == "keras-module"]
    assert issue.verdict is Verdict.DANGEROUS and issue.global_name == "builtins.exec"


def _onnx_with_external(directory: Path, location: str) -> Path:
    from onnx import TensorProto, helper

    tensor = helper.make_tensor("W", TensorProto.FLOAT, [1], [0.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "4")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([], "g", [], [helper.make_tensor_value_info("W", 1, [1])], [tensor])
    model = helper.make_model(graph)
    path = directory / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_cve_2022_25882_onnx_external_data_path_traversal(tmp_path: Path) -> None:
    report = scan(_onnx_with_external(tmp_path, "../../../../etc/passwd"))
    assert report.worst is Verdict.DANGEROUS
    assert report.issues[0].rule == "onnx-external-data"
    assert scan(_onnx_with_external(tmp_path, "/etc/passwd")).worst is Verdict.DANGEROUS


def test_cve_2024_27318_onnx_traversal_fix_bypass(tmp_path: Path) -> None:
    # the bypass: a path that starts inside the directory, and a symlink that leads out of it
    assert scan(_onnx_with_external(tmp_path, "sub/../../secret")).worst is Verdict.DANGEROUS
    (tmp_path / "weights.bin").symlink_to("/etc/hostname")
    assert scan(_onnx_with_external(tmp_path, "weights.bin")).worst is Verdict.DANGEROUS
    (tmp_path / "inside.bin").write_bytes(b"\x00" * 4)
    assert scan(_onnx_with_external(tmp_path, "inside.bin")).clean


def test_onnx_custom_operator_domain(tmp_path: Path) -> None:
    from onnx import helper

    node = helper.make_node("Evil", ["x"], ["y"], domain="com.attacker")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1])],
                              [helper.make_tensor_value_info("y", 1, [1])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("com.attacker", 1)])
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    assert {i.rule for i in scan(path).issues} == {"onnx-custom-domain"}
    path.write_bytes(struct.pack("B", 8) + model.SerializeToString()[1:-3])
    assert Verdict.UNPARSEABLE in {i.verdict for i in scan(path).issues}


def test_torch_pickle_members_are_walked_whatever_they_start_with(tmp_path: Path) -> None:
    # a protocol 0 data.pkl has no magic; torch unpickles it anyway, so it is always walked
    path = tmp_path / "model.pt"
    path.write_bytes(torch_zip({"archive/data.pkl": b"N" + proto0_call("os", "system", "id")}))
    assert scan(path).worst is Verdict.DANGEROUS
    # bytes no sniffer would call a pickle are still not "clean" when torch would unpickle them
    path.write_bytes(torch_zip({"archive/data.pkl": b"\x00\x01 not a pickle"}))
    assert scan(path).worst is Verdict.UNPARSEABLE
