"""Small models shared by the adapter tests: a torch net, fitted estimators, ONNX graphs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

FEATURES = 4
CLASSES = 3


def make_data(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points in [0, 1]^4 with three classes split along the first two features."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, FEATURES))
    y = (x[:, 0] > 0.5).astype(int) + (x[:, 1] > 0.5).astype(int)
    return x, y


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_data()


@pytest.fixture
def x_batch() -> torch.Tensor:
    return torch.from_numpy(make_data(7, seed=1)[0]).float()


@pytest.fixture
def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU(), nn.Linear(8, CLASSES))


@pytest.fixture
def logreg(data: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    x, y = data
    return LogisticRegression(max_iter=500).fit(x, y)


def linear_onnx(
    path: Path,
    weight: np.ndarray,
    bias: np.ndarray,
    *,
    output: str = "logits",
    batch: int | str | None = "N",
    features: int | str | None = None,
    out_classes: int | str | None = None,
) -> Path:
    """Save a MatMul+Add classifier; ``output`` adds Softmax or ArgMax on top of the logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f, k = weight.shape
    inp = helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [batch, f if features is None else features]
    )
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Add", ["h", "B"], ["logits" if output != "logits" else "y"]),
    ]
    out_dims: list[Any] = [batch, k if out_classes is None else out_classes]
    elem = TensorProto.FLOAT
    if output == "probabilities":
        nodes.append(helper.make_node("Softmax", ["logits"], ["y"], axis=1))
    elif output == "labels":
        nodes.append(helper.make_node("ArgMax", ["logits"], ["y"], axis=1, keepdims=0))
        out_dims, elem = [batch], TensorProto.INT64
    graph = helper.make_graph(
        nodes,
        "linear",
        [inp],
        [helper.make_tensor_value_info("y", elem, out_dims)],
        initializer=[
            numpy_helper.from_array(weight.astype(np.float32), "W"),
            numpy_helper.from_array(bias.astype(np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def onnx_weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.normal(size=(FEATURES, CLASSES)), rng.normal(size=CLASSES)


def scores_handler(
    estimator: Any, *, key: str = "inputs", answer: str = "scores"
) -> Callable[[Any], Any]:
    """An httpx MockTransport handler that answers like a real endpoint backed by ``estimator``."""
    import httpx

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        x = np.asarray(body[key], dtype=np.float64).reshape(len(body[key]), -1)
        if answer == "labels":
            return httpx.Response(200, json={"labels": estimator.predict(x).tolist()})
        return httpx.Response(200, json={"scores": estimator.predict_proba(x).tolist()})

    return handle


@pytest.fixture
def make_onnx() -> Callable[..., Path]:
    """`linear_onnx`, as a fixture so test modules need not import conftest."""
    return linear_onnx


@pytest.fixture
def make_handler() -> Callable[..., Callable[[Any], Any]]:
    """`scores_handler`, as a fixture."""
    return scores_handler
