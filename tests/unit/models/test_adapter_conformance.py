"""check_adapter over every adapter, and proof that it catches adapters that break the rules."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from torch import nn

import bastion.models
from bastion.core.errors import BastionError, ValidationError
from bastion.core.threat_model import Access
from bastion.models import (
    BaseModel,
    Model,
    OnnxModel,
    RemoteModel,
    SklearnModel,
    TorchModel,
)
from bastion.testing.adapters import ConformanceError, check_adapter


class LabelsOnly:
    classes_ = np.array(["a", "b", "c"])
    n_features_in_ = 4

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[np.clip((x[:, 0] * 3).astype(int), 0, 2)]


def _remote(estimator: Any, handler: Callable[..., Any]) -> RemoteModel:
    return RemoteModel(
        "http://model.internal/predict",
        input_shape=(4,),
        num_classes=3,
        transport=httpx.MockTransport(handler(estimator)),
        backoff=0.0,
    )


@pytest.fixture(
    params=[
        "torch",
        "torch-restricted-scores",
        "torch-restricted-labels",
        "sklearn-proba",
        "sklearn-decision",
        "sklearn-labels",
        "onnx",
        "onnx-labels",
        "remote",
        "remote-labels",
    ]
)
def adapter(
    request: pytest.FixtureRequest,
    net: nn.Module,
    data: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    make_onnx: Callable[..., Path],
    make_handler: Callable[..., Any],
    onnx_weights: tuple[np.ndarray, np.ndarray],
) -> Iterator[tuple[Model, Access]]:
    x, y = data
    kind: str = request.param
    if kind.startswith("torch"):
        model: Model = TorchModel(net, input_shape=(4,), mean=0.5, std=0.3, batch_size=4)
        if kind == "torch-restricted-scores":
            model = model.restricted("scores")
        elif kind == "torch-restricted-labels":
            model = model.restricted("labels")
    elif kind == "sklearn-proba":
        model = SklearnModel(LogisticRegression(max_iter=500).fit(x, y))
    elif kind == "sklearn-decision":
        model = SklearnModel(LinearSVC().fit(x, y))
    elif kind == "sklearn-labels":
        model = SklearnModel(LabelsOnly())
    elif kind == "onnx":
        model = OnnxModel(make_onnx(tmp_path / "m.onnx", *onnx_weights), batch_size=3)
    elif kind == "onnx-labels":
        path = make_onnx(tmp_path / "l.onnx", *onnx_weights, output="labels")
        model = OnnxModel(path, output="labels", num_classes=3)
    else:
        estimator = LogisticRegression(max_iter=500).fit(x, y)
        model = _remote(estimator, make_handler)
        if kind == "remote-labels":
            model = model.restricted("labels")
    expected = {
        "torch": Access.GRADIENTS,
        "sklearn-labels": Access.LABELS,
        "onnx-labels": Access.LABELS,
        "torch-restricted-labels": Access.LABELS,
        "remote-labels": Access.LABELS,
    }.get(kind, Access.SCORES)
    yield model, expected
    if isinstance(model, RemoteModel):
        model.close()


def test_every_adapter_conforms(adapter: tuple[Model, Access], x_batch: torch.Tensor) -> None:
    model, expected = adapter
    count = model.counter.count
    check_adapter(model, x_batch, expected_access=expected)
    assert model.counter.count == count  # the kit works on copies


# --- the kit catches broken adapters ---------------------------------------------------------
class Linear(BaseModel):
    access = Access.SCORES

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(input_shape=(4,), num_classes=3, **kwargs)
        self.weight = torch.from_numpy(np.random.default_rng(0).normal(size=(4, 3))).float()

    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x @ self.weight, dim=1)


class WrongShape(Linear):
    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        return super()._scores_batch(x)[:, :2]


class DoubleCharge(Linear):
    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        self.counter.charge(x.shape[0])
        return super()._scores_batch(x)


class Noisy(Linear):
    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x @ self.weight + torch.randn(x.shape[0], 3), dim=1)


class BatchDependent(Linear):
    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        return super()._scores_batch(x - x.mean(dim=0))


class ChargesLate(Linear):
    """Answers chunk by chunk without charging up front: a refused call has already queried."""

    def labels(self, x: Any) -> torch.Tensor:
        batch = torch.as_tensor(np.asarray(x, dtype=np.float32))
        out = []
        for row in batch:
            self.counter.charge(1)
            out.append(self._scores_batch(row[None]).argmax(dim=1))
        return torch.cat(out)


class TypeErrorOnBadInput(Linear):
    def labels(self, x: Any) -> torch.Tensor:
        if isinstance(x, str):
            raise TypeError("strings are not arrays")
        return super().labels(x)


class ClaimsProbabilities(Linear):
    scores_are_probabilities = True

    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


@pytest.mark.parametrize(
    ("model", "broken"),
    [
        (WrongShape(), {"scores"}),
        (DoubleCharge(), {"scores"}),
        (Noisy(), {"deterministic", "batching"}),
        (BatchDependent(), {"batching"}),
        (ChargesLate(), {"budget"}),
        (TypeErrorOnBadInput(), {"bad-input"}),
        (ClaimsProbabilities(), {"scores"}),
    ],
)
def test_broken_adapters_are_caught(
    model: BaseModel, broken: set[str], x_batch: torch.Tensor
) -> None:
    with pytest.raises(ConformanceError) as info:
        check_adapter(model, x_batch)
    assert broken <= set(info.value.failed), str(info.value)
    assert isinstance(info.value, BastionError)
    for name in broken:
        assert f"- {name}:" in str(info.value)


def test_wrong_expected_access_and_non_models(x_batch: torch.Tensor) -> None:
    with pytest.raises(ConformanceError, match=r"protocol.*expected 'gradients'"):
        check_adapter(Linear(), x_batch, expected_access="gradients")
    with pytest.raises(ConformanceError, match="protocol"):
        check_adapter(object(), x_batch)


def test_check_adapter_validates_its_arguments(x_batch: torch.Tensor) -> None:
    with pytest.raises(ValidationError, match="at least 2"):
        check_adapter(Linear(), x_batch[:1])
    with pytest.raises(ValidationError, match="shape"):
        check_adapter(Linear(), torch.zeros(3, 5))
    with pytest.raises(ValidationError, match="expected_access"):
        check_adapter(Linear(), x_batch, expected_access="root")


def test_conformance_error_takes_a_plain_message() -> None:
    error = ConformanceError("x_adv leaves the input bounds")
    assert (str(error), error.failed) == ("x_adv leaves the input bounds", ())


# --- the package ----------------------------------------------------------------------------
def test_all_is_complete() -> None:
    from bastion.models import (
        base,
        counter,
        loading,
        onnx_model,
        preprocessed,
        remote,
        sklearn_model,
        tensors,
        torch_model,
    )

    modules = [
        base,
        counter,
        loading,
        onnx_model,
        preprocessed,
        remote,
        sklearn_model,
        tensors,
        torch_model,
    ]
    exported = {name for module in modules for name in module.__all__}
    assert exported == set(bastion.models.__all__)
    for name in bastion.models.__all__:
        assert getattr(bastion.models, name).__doc__, name


def test_import_needs_neither_onnxruntime_nor_httpx() -> None:
    code = (
        "import sys, json, bastion.models; "
        "print(json.dumps([m for m in ('onnxruntime', 'httpx', 'onnx') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
