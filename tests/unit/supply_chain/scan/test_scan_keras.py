"""Keras configs that only load with safe mode off, or that turn it off themselves: Lambda and
``__lambda__`` bytecode, the safe-mode bypasses through Keras' own functions (CVE-2025-9906,
CVE-2025-8747), loaders of outside files, and lookup vocabularies read from outside paths."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.supply_chain.scan import ScanIssue, ScanReport, Verdict, scan_paths


def keras_file(tmp_path: Path, layers: list[dict[str, Any]]) -> Path:
    """A Keras 3 ``.keras`` archive whose Sequential model holds ``layers``."""
    config = {
        "module": "keras", "class_name": "Sequential", "registered_name": None,
        "config": {"name": "sequential", "layers": layers},
    }  # fmt: skip
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.10.0"}))
        z.writestr("config.json", json.dumps(config))
    return path


def fn(module: str, name: str) -> dict[str, Any]:
    """How Keras 3 serialises a reference to a function."""
    return {"module": module, "class_name": "function", "config": name, "registered_name": name}


def dense(activation: object = "relu") -> dict[str, Any]:
    return {
        "module": "keras.layers", "class_name": "Dense", "registered_name": None,
        "config": {"name": "dense", "units": 4, "activation": activation},
    }  # fmt: skip


def lambda_layer() -> dict[str, Any]:
    code = {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA", "defaults": None}}
    return {"module": "keras.layers", "class_name": "Lambda", "config": {"function": code}}


def issues(path: Path, rule: str) -> list[ScanIssue]:
    (report,) = scan_paths([path])
    return [i for i in report.issues if i.rule == rule]


def report_of(path: Path) -> ScanReport:
    (report,) = scan_paths([path])
    return report


def test_benign_keras_config_is_clean(tmp_path: Path) -> None:
    layers = [
        dense(),
        dense(fn("keras.activations", "relu")),
        {"module": "keras.layers", "class_name": "StringLookup",
         "config": {"vocabulary": ["a", "b"], "name": "lookup"}},
        {"module": "keras_hub.layers", "class_name": "TokenAndPositionEmbedding", "config": {}},
    ]  # fmt: skip
    report = report_of(keras_file(tmp_path, layers))
    assert report.format == "keras" and report.clean, report.issues


def test_cve_2025_9906_config_turns_safe_mode_off_before_a_lambda(tmp_path: Path) -> None:
    layers = [dense(fn("keras.config", "enable_unsafe_deserialization")), lambda_layer()]
    path = keras_file(tmp_path, layers)
    (bypass,) = issues(path, "keras-safe-mode-bypass")
    assert bypass.verdict is Verdict.DANGEROUS
    assert bypass.global_name == "keras.config.enable_unsafe_deserialization"
    assert "safe mode off" in bypass.reason
    assert issues(path, "keras-lambda")
    # the same call through the internal module path
    path = keras_file(tmp_path, [dense(fn("keras.src.saving.serialization_lib",
                                          "enable_unsafe_deserialization"))])  # fmt: skip
    assert issues(path, "keras-safe-mode-bypass")


def test_cve_2025_8747_config_calls_get_file(tmp_path: Path) -> None:
    payload = {
        "module": "keras.utils", "class_name": "function", "config": "get_file",
        "registered_name": "get_file",
    }  # fmt: skip
    (issue,) = issues(keras_file(tmp_path, [dense(payload)]), "keras-safe-mode-bypass")
    assert issue.verdict is Verdict.DANGEROUS and issue.global_name == "keras.utils.get_file"
    assert "downloads" in issue.reason


def test_lambda_bytecode_outside_a_lambda_layer(tmp_path: Path) -> None:
    code = {"class_name": "__lambda__", "config": {"code": "4wEAAAAA", "defaults": None}}
    (issue,) = issues(keras_file(tmp_path, [dense(code)]), "keras-lambda")
    assert issue.verdict is Verdict.DANGEROUS and "__lambda__" in issue.reason


def test_layers_that_load_outside_files(tmp_path: Path) -> None:
    tfsm = {"module": "keras.layers", "class_name": "TFSMLayer",
            "config": {"filepath": "/tmp/other_saved_model", "call_endpoint": "serve"}}  # fmt: skip
    (issue,) = issues(keras_file(tmp_path, [tfsm]), "keras-safe-mode-bypass")
    assert issue.verdict is Verdict.DANGEROUS and "SavedModel" in issue.reason


@pytest.mark.parametrize("vocab", ["/etc/passwd", "../../secrets.txt", "https://x.test/v.txt"])
def test_lookup_vocabulary_from_outside(tmp_path: Path, vocab: str) -> None:
    layer = {"module": "keras.layers", "class_name": "StringLookup",
             "config": {"vocabulary": vocab}}  # fmt: skip
    (issue,) = issues(keras_file(tmp_path, [layer]), "keras-external-file")
    assert issue.verdict is Verdict.SUSPICIOUS and vocab in issue.reason
    inside = {"module": "keras.layers", "class_name": "StringLookup",
              "config": {"vocabulary": "assets/vocab.txt"}}  # fmt: skip
    assert report_of(keras_file(tmp_path, [inside])).clean


def test_hdf5_config_with_a_safe_mode_switch(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "model.h5"
    config = {
        "class_name": "Sequential",
        "config": {"layers": [dense(fn("keras.config", "enable_unsafe_deserialization"))]},
    }
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config)
        h5.create_dataset("w", data=np.ones(4))
    report = report_of(path)
    assert report.format == "hdf5" and report.worst is Verdict.DANGEROUS
    assert {i.rule for i in report.issues} == {"keras-safe-mode-bypass"}
