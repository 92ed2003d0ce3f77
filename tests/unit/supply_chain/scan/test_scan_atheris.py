"""Coverage-guided fuzzing of the scanner's parsers with atheris (libFuzzer), bounded in time:
from a seed corpus of every format the scanner detects, no input may crash or hang it."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from test_scan_savedmodel import BENIGN_FUNCTION, BENIGN_GRAPH, ld, saved_model, varint
from test_scan_savedmodel_text import GRAPH as TEXT_GRAPH
from test_scan_savedmodel_text import model as text_model

from bastion.supply_chain.scan import Verdict, scan_file
from bastion.supply_chain.scan.scanner import INTERNAL_ERROR

TARGET = Path(__file__).with_name("scan_atheris_target.py")
_ARTIFACTS = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")


def _seeds() -> dict[str, bytes]:
    npy = io.BytesIO()
    np.save(npy, np.arange(6, dtype=np.float32).reshape(2, 3))
    torch_zip = io.BytesIO()
    with zipfile.ZipFile(torch_zip, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(OrderedDict(w=[1.0, 2.0]), protocol=2))
        z.writestr("archive/version", "3\n")
        z.writestr("archive/data/0", b"\x00" * 16)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    node = ld(1, "y") + ld(2, "Relu") + ld(3, "x") + ld(4, "")
    onnx = varint(8) + varint(8) + ld(2, "pytorch") + ld(7, ld(1, node) + ld(2, "g"))
    return {
        "pickle": pickle.dumps({"a": [1, 2.0, "x", b"y"], "b": (None, True)}, protocol=4),
        "torch.zip": torch_zip.getvalue(),
        "array.npy": npy.getvalue(),
        "w.safetensors": struct.pack("<Q", len(header)) + header + b"\x00" * 8,
        "model.onnx": onnx,
        "saved_model.pb": saved_model(BENIGN_GRAPH, (BENIGN_FUNCTION,)),
        "saved_model.pbtxt": text_model(TEXT_GRAPH),
    }


#: Found by this fuzzer: a gzip member whose deflate data is corrupt raised ``zlib.error``, which
#: the scanner only caught as an internal error.
CORRUPT_GZIP = base64.b64decode(
    "H4sICBIHcHl0AXkSBFJhcmNoaXZlL2RhdGEucGtsgAJjY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcQApUnEBWAEAAAB3"
    "cQJccQPd3d3d3d3dKEc/8AAAAAAAAEdAAAAAAAAAAGVzLlBLAwQUAAAAAAAAHX1d0Z5nVQIAAAACAAAADwAAAGVsdRoJ"
    "eCIAEgFn"
)


def test_fuzzer_findings_are_ordinary_findings(tmp_path: Path) -> None:
    path = tmp_path / "found.bin"
    path.write_bytes(CORRUPT_GZIP)
    (issue,) = scan_file(path).issues
    assert issue.verdict is Verdict.UNPARSEABLE and issue.format == "gzip"
    assert not issue.reason.startswith(INTERNAL_ERROR)


@pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris (coverage-guided fuzzer, the dev extra) is not installed",
)
def test_atheris_finds_no_crash_or_hang(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in _seeds().items():
        (corpus / name).write_bytes(data)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    # The fuzzing process itself grows to about 1 GB in 15 s (corpus and coverage maps; one
    # run peaked at 1036 MB on an input that scans in 20 MB), so the limit that catches an
    # input blowing up memory sits above that.
    flags = ["-max_total_time=15", "-rss_limit_mb=2048", "-timeout=5", "-seed=1"]
    flags += [f"-artifact_prefix={artifacts}/", "-print_final_stats=1"]
    run = subprocess.run(
        [sys.executable, str(TARGET), str(corpus), *flags],
        capture_output=True,
        env={**os.environ, "BASTION_ATHERIS_WORKDIR": str(tmp_path)},
        text=True,
        timeout=60,
        check=False,
    )
    found = sorted(p.name for p in artifacts.iterdir() if p.name.startswith(_ARTIFACTS))
    assert run.returncode == 0 and not found, (found, run.stderr[-4000:])
    assert "stat::number_of_executed_units" in run.stderr  # the fuzzer really ran
