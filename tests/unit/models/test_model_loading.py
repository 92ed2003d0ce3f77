"""load_model: each spec form, and every refusal a clear bastion error."""

from __future__ import annotations

import pickle
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.linear_model import LogisticRegression

from bastion.core.errors import LoadError, UnsafeFileError, ValidationError
from bastion.models import OnnxModel, SklearnModel, TorchModel, load_model

FACTORY = """
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

def broken():
    raise RuntimeError("no GPU here")

def not_a_module():
    return "a string"

class Holder:
    make = staticmethod(build)

VALUE = 3
"""


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    package = tmp_path / "zoo_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(textwrap.dedent(FACTORY))
    (package / "bad.py").write_text("raise ImportError('missing dependency foo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "zoo_pkg.nets"
    for name in [m for m in sys.modules if m == "zoo_pkg" or m.startswith("zoo_pkg.")]:
        del sys.modules[name]


def test_onnx_spec(
    tmp_path: Path, make_onnx: Callable[..., Path], onnx_weights: tuple[np.ndarray, np.ndarray]
) -> None:
    path = make_onnx(tmp_path / "m.onnx", *onnx_weights)
    model = load_model(str(path), budget=10, mean=0.5, std=0.5)
    assert isinstance(model, OnnxModel)
    assert (model.num_classes, model.counter.budget) == (3, 10)
    with pytest.raises(ValidationError, match="weights only with"):
        load_model(path, weights=tmp_path / "w.safetensors")


def test_factory_with_safetensors_weights(factory: str, tmp_path: Path) -> None:
    module = load_model(f"{factory}:build", input_shape=(4,))
    assert isinstance(module, TorchModel)
    trained = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for p in trained.parameters():
            p.fill_(0.25)
    weights = tmp_path / "w.safetensors"
    save_file(trained.state_dict(), str(weights))
    model = load_model(f"{factory}:build", weights=weights, input_shape=(4,), num_classes=3)
    assert isinstance(model, TorchModel)
    assert all(bool((p == 0.25).all()) for p in model.module.parameters())
    nested = load_model(f"{factory}:Holder.make", input_shape=(4,))
    assert isinstance(nested, TorchModel)


def test_factory_weights_must_fit(factory: str, tmp_path: Path) -> None:
    weights = tmp_path / "small.safetensors"
    save_file({"0.weight": torch.zeros(2, 2)}, str(weights))
    with pytest.raises(LoadError, match="do not fit"):
        load_model(f"{factory}:build", weights=weights, input_shape=(4,))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00\x01 not safetensors")
    with pytest.raises(LoadError, match="safetensors"):
        load_model(f"{factory}:build", weights=corrupt, input_shape=(4,))
    with pytest.raises(LoadError, match="no such weights file"):
        load_model(f"{factory}:build", weights=tmp_path / "gone.safetensors", input_shape=(4,))
    with pytest.raises(LoadError, match=r"\.safetensors"):
        load_model(f"{factory}:build", weights=tmp_path / "w.npz", input_shape=(4,))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_pickled_torch_weights_refused(factory: str, tmp_path: Path, suffix: str) -> None:
    weights = tmp_path / f"model{suffix}"
    weights.write_bytes(pickle.dumps({"payload": 1}))
    with pytest.raises(UnsafeFileError, match=r"pickle.*safetensors"):
        load_model(f"{factory}:build", weights=weights, input_shape=(4,))
    with pytest.raises(UnsafeFileError, match="safetensors"):
        load_model(weights)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (":build", "package.module:callable"),
        ("zoo_pkg.nowhere:build", "importable module"),
        ("zoo_pkg.bad:build", "missing dependency foo"),
        ("zoo_pkg.nets:absent", "'absent' is missing"),
        ("zoo_pkg.nets:VALUE", "not callable"),
        ("zoo_pkg.nets:broken", "raised RuntimeError: no GPU here"),
        ("zoo_pkg.nets:not_a_module", "return a torch.nn.Module, but it returned str"),
    ],
)
def test_bad_factories(factory: str, spec: str, message: str) -> None:
    with pytest.raises(LoadError, match=message) as info:
        load_model(spec, input_shape=(4,))
    assert info.value.__cause__ is not None or ":" in spec


def test_factory_needs_input_shape(factory: str) -> None:
    with pytest.raises(ValidationError, match="input_shape"):
        load_model(f"{factory}:build")


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib"])
def test_pickles_need_trust(
    tmp_path: Path, logreg: LogisticRegression, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / f"model{suffix}"
    joblib.dump(logreg, path)
    calls: list[object] = []
    monkeypatch.setattr(joblib, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(UnsafeFileError, match="--trust-pickle"):
        load_model(path)
    assert calls == []  # refused before anything was read


def test_trusted_pickle_loads(tmp_path: Path, logreg: LogisticRegression) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(logreg))
    model = load_model(path, trust_pickle=True, num_classes=3)
    assert isinstance(model, SklearnModel)
    assert model.num_classes == 3
    with pytest.raises(ValidationError, match="num_classes"):
        load_model(path, trust_pickle=True, num_classes=4)
    with pytest.raises(ValidationError, match="mean/std"):
        load_model(path, trust_pickle=True, mean=0.5)
    other = tmp_path / "list.pkl"
    other.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(LoadError, match="scikit-learn classifier, but it holds list"):
        load_model(other, trust_pickle=True)
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(b"not a pickle at all")
    with pytest.raises(LoadError, match="Cannot unpickle"):
        load_model(corrupt, trust_pickle=True)


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    for name in ("gone.onnx", "gone.pkl", "gone.pt", "gone.xyz"):
        with pytest.raises(LoadError, match="no such model file"):
            load_model(tmp_path / name, trust_pickle=True)
    odd = tmp_path / "model.h5"
    odd.write_bytes(b"")
    with pytest.raises(LoadError, match=r"Expected a \.onnx file"):
        load_model(odd)
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(LoadError, match="weights only"):
        load_model(weights)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"spec": 3}, "spec"), ({"spec": "x.onnx", "trust_pickle": "yes"}, "trust_pickle")],
)
def test_invalid_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_model(**kwargs)  # type: ignore[arg-type]
