"""No false positives on files saved by torch, joblib/scikit-learn, NumPy, safetensors, ONNX;
and the allow-list is exactly what those files need. Nothing scanned is ever loaded."""

from __future__ import annotations

import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest
from scan_corpus import build_benign
from scan_payloads import Evil

from bastion.supply_chain.scan import classify_global, scan_paths


@pytest.fixture(scope="module")
def benign(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return build_benign(tmp_path_factory.mktemp("benign"))


def test_benign_files_are_clean_and_recognised(benign: list[Path]) -> None:
    reports = scan_paths(benign)
    formats = {Path(r.path).name: r.format for r in reports}
    dirty = [(r.path, r.issues) for r in reports if not r.clean]
    assert not dirty
    assert formats["checkpoint.pt"] == "torch-zip"
    assert formats["legacy.pt"] == "torch-legacy"
    assert formats["model.joblib"] == "joblib"
    assert (formats["model_zlib.joblib"], formats["model_gz.joblib"]) == ("zlib", "gzip")
    assert formats["objects.npy"] == "npy" and formats["arrays.npz"] == "npz"
    assert formats["w.safetensors"] == "safetensors"
    assert formats["model.onnx"] == "onnx"


def _globals(data: bytes) -> set[str]:
    """Globals of a plain pickle, resolved with a model of the memo that tracks strings only."""
    found: set[str] = set()
    pushed: list[str | None] = []
    memo: dict[int, str | None] = {}
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            found.add(arg.replace(" ", "."))
        if op.name == "STACK_GLOBAL":
            found.add(f"{pushed[-2]}.{pushed[-1]}")
        if op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1]
        elif op.name.endswith("PUT"):
            memo[int(arg)] = pushed[-1]
        elif op.name.endswith("GET"):
            pushed.append(memo[int(arg)])
        elif op.stack_after:
            pushed.append(arg if isinstance(arg, str) else None)
    return found


def test_allow_list_covers_the_globals_real_files_need(benign: list[Path]) -> None:
    import zipfile

    needed: set[str] = set()
    with zipfile.ZipFile(next(p for p in benign if p.name == "checkpoint.pt")) as z:
        needed |= _globals(z.read(next(n for n in z.namelist() if n.endswith("data.pkl"))))
    for path in benign:
        if path.suffix == ".pkl":
            needed |= _globals(path.read_bytes())
    needed |= _globals(pickle.dumps(np.array([1.5], dtype=object), protocol=2))
    assert "torch._utils._rebuild_tensor_v2" in needed
    assert any(n.startswith("sklearn.") for n in needed)
    refused = {n for n in needed if classify_global(*n.rsplit(".", 1))[0] is not None}
    assert not refused


def test_scanning_never_loads(
    benign: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, marker: Path
) -> None:
    import joblib
    import torch

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the scanner deserialised a file")

    for owner, name in [
        (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load"),
        (np, "load"), (joblib, "load"),
    ]:  # fmt: skip
        monkeypatch.setattr(owner, name, refuse)
    assert all(r.clean for r in scan_paths(benign))
    evil = Evil(marker)
    for protocol in range(6):
        (tmp_path / f"evil{protocol}.pkl").write_bytes(pickle.dumps(evil, protocol=protocol))
    np.save(tmp_path / "evil.npy", np.array([evil], dtype=object), allow_pickle=True)
    torch.save({"x": evil}, tmp_path / "evil.pt")
    joblib.dump({"x": evil, "a": np.ones(3)}, tmp_path / "evil.joblib")
    reports = scan_paths([tmp_path])
    assert len(reports) == 9 and all(r.worst is not None for r in reports)
