"""OnnxModel on tiny graphs built with onnx.helper: shapes, outputs, normalisation, bad files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from bastion.core.errors import AccessError, LoadError, ShapeError, ValidationError
from bastion.core.threat_model import Access
from bastion.models import OnnxModel

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def weights(onnx_weights: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return onnx_weights


def test_logits_graph(
    tmp_path: Path, make_onnx: Callable[..., Path], weights: tuple, x_batch: torch.Tensor
) -> None:
    w, b = weights
    model = OnnxModel(make_onnx(tmp_path / "m.onnx", w, b))
    assert (model.input_shape, model.num_classes, model.access) == ((4,), 3, Access.SCORES)
    expected = softmax(x_batch.numpy().astype(np.float64) @ w + b)
    np.testing.assert_allclose(model.scores(x_batch).numpy(), expected, rtol=1e-4, atol=1e-6)
    assert model.labels(x_batch).tolist() == expected.argmax(axis=1).tolist()
    assert model.counter.count == 2 * len(x_batch)
    assert "m.onnx" in repr(model)
    with pytest.raises(AccessError):
        model.logits(x_batch)


def test_probabilities_output(
    tmp_path: Path, make_onnx: Callable[..., Path], weights: tuple, x_batch: torch.Tensor
) -> None:
    w, b = weights
    path = make_onnx(tmp_path / "p.onnx", w, b, output="probabilities")
    model = OnnxModel(path, output="probabilities")
    expected = softmax(x_batch.numpy().astype(np.float64) @ w + b)
    np.testing.assert_allclose(model.scores(x_batch).numpy(), expected, rtol=1e-4, atol=1e-6)


def test_labels_output(
    tmp_path: Path, make_onnx: Callable[..., Path], weights: tuple, x_batch: torch.Tensor
) -> None:
    w, b = weights
    path = make_onnx(tmp_path / "l.onnx", w, b, output="labels")
    with pytest.raises(ValidationError, match="num_classes"):
        OnnxModel(path, output="labels")
    with pytest.raises(ValidationError, match="output='labels'"):
        OnnxModel(path)
    model = OnnxModel(path, output="labels", num_classes=3)
    assert model.access is Access.LABELS
    expected = (x_batch.numpy().astype(np.float64) @ w + b).argmax(axis=1)
    assert model.labels(x_batch).tolist() == expected.tolist()
    with pytest.raises(AccessError):
        model.scores(x_batch)
    eye = make_onnx(tmp_path / "e.onnx", np.eye(4)[:, :3], np.zeros(3), output="labels")
    with pytest.raises(ValidationError, match=r"labels in \[0, 1\]"):
        OnnxModel(eye, output="labels", num_classes=2).labels(torch.tensor([[0.0, 0, 1, 0]]))


def test_normalisation(
    tmp_path: Path, make_onnx: Callable[..., Path], x_batch: torch.Tensor
) -> None:
    w, b = np.eye(4)[:, :3], np.zeros(3)
    model = OnnxModel(make_onnx(tmp_path / "n.onnx", w, b), mean=0.5, std=0.25)
    plain = OnnxModel(tmp_path / "n.onnx")
    normalised = (x_batch - 0.5) / 0.25
    assert torch.allclose(model.scores(x_batch), plain.scores(normalised), atol=1e-6)
    with pytest.raises(ValidationError, match="positive"):
        OnnxModel(tmp_path / "n.onnx", std=0)


def test_dynamic_shape_needs_input_shape(
    tmp_path: Path, make_onnx: Callable[..., Path], weights: tuple
) -> None:
    w, b = weights
    path = make_onnx(tmp_path / "d.onnx", w, b, features="F", out_classes="K")
    with pytest.raises(ValidationError, match="dynamic"):
        OnnxModel(path)
    model = OnnxModel(path, input_shape=(4,))  # num_classes from a dry run
    assert model.num_classes == 3
    assert model.counter.count == 0
    with pytest.raises(ValidationError, match="match the graph"):
        OnnxModel(path, input_shape=(4,), num_classes=5)


def test_input_shape_must_match_static_graph(
    tmp_path: Path, make_onnx: Callable[..., Path], weights: tuple
) -> None:
    w, b = weights
    path = make_onnx(tmp_path / "s.onnx", w, b)
    with pytest.raises(ShapeError, match="match the graph"):
        OnnxModel(path, input_shape=(5,))
    with pytest.raises(ShapeError):
        OnnxModel(path, input_shape=(2, 2))


def test_fixed_batch_graph(
    tmp_path: Path, make_onnx: Callable[..., Path], weights: tuple, x_batch: torch.Tensor
) -> None:
    w, b = weights
    fixed = OnnxModel(make_onnx(tmp_path / "f.onnx", w, b, batch=2))
    free = OnnxModel(make_onnx(tmp_path / "g.onnx", w, b))
    assert torch.allclose(fixed.scores(x_batch), free.scores(x_batch), atol=1e-6)  # 7 = 2+2+2+1


def test_session_and_names(
    tmp_path: Path, make_onnx: Callable[..., Path], weights: tuple, x_batch: torch.Tensor
) -> None:
    import onnxruntime as ort

    w, b = weights
    path = make_onnx(tmp_path / "m.onnx", w, b)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = OnnxModel(session, input_name="x", output_name="y")
    assert model.scores(x_batch).shape == (7, 3)
    assert "<session>" in repr(model)
    with pytest.raises(ValidationError, match="output_name"):
        OnnxModel(session, output_name="nope")
    with pytest.raises(ValidationError, match="input_name"):
        OnnxModel(session, input_name="nope")
    with pytest.raises(ValidationError, match="output"):
        OnnxModel(session, output="softmax")


def test_missing_corrupt_and_wrong_files(tmp_path: Path, make_onnx: Callable[..., Path]) -> None:
    with pytest.raises(LoadError, match="no such model file"):
        OnnxModel(tmp_path / "missing.onnx")
    with pytest.raises(LoadError, match="not a regular file"):
        OnnxModel(tmp_path)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage that is not a protobuf \xff\xfe" * 10)
    with pytest.raises(LoadError, match="ONNX Runtime can load"):
        OnnxModel(corrupt)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(LoadError):
        OnnxModel(empty)
    text = tmp_path / "text.onnx"
    text.write_text("import os; os.system('echo pwned')")
    with pytest.raises(LoadError):
        OnnxModel(text)
    with pytest.raises(ValidationError, match="path_or_session"):
        OnnxModel(42)
