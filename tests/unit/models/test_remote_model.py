"""RemoteModel against httpx.MockTransport: mappings, retries, every failure a RemoteModelError."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from bastion.core.errors import AccessError, QueryBudgetExceeded, RemoteModelError, ValidationError
from bastion.core.threat_model import Access
from bastion.models import RemoteModel

URL = "https://ml.example.com/v1/predict"
SECRET = "Bearer s3cr3t-t0ken-value"


def remote(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> RemoteModel:
    options: dict[str, Any] = {"input_shape": (4,), "num_classes": 3, "backoff": 0.0}
    options.update(kwargs)
    return RemoteModel(URL, transport=httpx.MockTransport(handler), **options)


def answer(payload: Any, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=payload)


def test_happy_path(
    logreg: LogisticRegression, make_handler: Callable[..., Any], x_batch: torch.Tensor
) -> None:
    with remote(make_handler(logreg), batch_size=3) as model:
        assert (model.access, model.scores_are_probabilities) == (Access.SCORES, False)
        scores = model.scores(x_batch)
        expected = logreg.predict_proba(x_batch.numpy().astype(np.float64))
        np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-5)
        assert model.labels(x_batch).tolist() == expected.argmax(axis=1).tolist()
        assert model.counter.count == 14


def test_request_body_and_headers() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"scores": [[0.2, 0.3, 0.5]]})

    model = remote(handle, headers={"Authorization": SECRET})
    model.scores(torch.full((1, 4), 0.5))
    assert seen[0].method == "POST"
    assert str(seen[0].url) == URL
    assert seen[0].headers["authorization"] == SECRET
    assert json.loads(seen[0].content) == {"inputs": [[0.5, 0.5, 0.5, 0.5]]}


def test_custom_mapping(x_batch: torch.Tensor) -> None:
    bodies: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        n = len(body["data"]["instances"])
        return httpx.Response(200, json={"result": {"probabilities": [[0.1, 0.9]] * n}})

    model = RemoteModel(
        URL,
        input_shape=(1, 2, 2),
        num_classes=2,
        request={"key": "data.instances", "flatten": True, "extra": {"data": {"v": 2}}},
        response={"key": "result.probabilities", "probabilities": True},
        transport=httpx.MockTransport(handle),
    )
    assert model.scores_are_probabilities
    scores = model.scores(x_batch.reshape(7, 1, 2, 2))
    assert scores.shape == (7, 2)
    assert bodies[0]["data"]["v"] == 2
    assert len(bodies[0]["data"]["instances"][0]) == 4  # flattened


def test_label_responses_with_class_names() -> None:
    model = remote(
        answer({"out": [{"label": "dog", "p": 0.9}]}),
        access="labels",
        response={"key": "out.*.label", "classes": ["cat", "dog", "emu"]},
    )
    assert model.access is Access.LABELS
    assert model.labels(torch.zeros(1, 4)).tolist() == [1]
    model2 = remote(
        answer({"labels": ["emu", "cat"]}),
        access="labels",
        response={"classes": ["cat", "dog", "emu"]},
    )
    assert model2.labels(torch.zeros(2, 4)).tolist() == [2, 0]
    with pytest.raises(AccessError):
        model2.scores(torch.zeros(2, 4))
    first = remote(
        answer({"batches": [{"labels": [2]}]}),
        response={"key": "batches.0.labels"},
        access="labels",
    )
    assert first.labels(torch.zeros(1, 4)).tolist() == [2]
    ints = remote(answer({"labels": [1, 2.0]}), access="labels")
    assert ints.labels(torch.zeros(2, 4)).tolist() == [1, 2]


def test_label_access_over_a_score_response() -> None:
    model = remote(
        answer({"scores": [[0.1, 0.7, 0.2]]}), access="labels", response={"holds": "scores"}
    )
    assert model.labels(torch.zeros(1, 4)).tolist() == [1]
    with pytest.raises(AccessError):
        model.scores(torch.zeros(1, 4))


def test_retries_on_503_then_succeeds() -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json={"scores": [[1.0, 0.0, 0.0]]})

    assert remote(handle, retries=2).labels(torch.zeros(1, 4)).tolist() == [0]
    assert len(calls) == 3


def test_retries_exhausted_on_500() -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(500)

    with pytest.raises(RemoteModelError, match=r"HTTP 500; gave up after 2 attempts"):
        remote(handle, retries=1).scores(torch.zeros(1, 4))
    assert len(calls) == 2


def test_no_retry_on_400() -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, text="bad input shape")

    with pytest.raises(RemoteModelError, match=r"HTTP 400 Bad Request.*bad input shape") as info:
        remote(handle, retries=5).scores(torch.zeros(1, 4))
    assert len(calls) == 1
    assert URL in str(info.value)


@pytest.mark.parametrize(
    ("exc", "message"),
    [(httpx.ReadTimeout, "timed out"), (httpx.ConnectError, "could not be reached")],
)
def test_timeouts_and_connect_errors_are_retried(exc: type[Exception], message: str) -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise exc("boom", request=request)  # type: ignore[call-arg]

    with pytest.raises(RemoteModelError, match=f"{message}.*gave up after 3 attempts"):
        remote(handle).scores(torch.zeros(1, 4))
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"predictions": []}, r"hold 'scores'.*found keys \['predictions'\]"),
        ({"scores": [[0.1, 0.9]]}, "list 0 holds 2 values"),
        ({"scores": [[0.1, 0.2, 0.7], [0.1, 0.2, 0.7]]}, "got 2 lists"),
        ({"scores": [[0.1, "x", 0.7]]}, "list 0 is"),
        ({"scores": [[0.1, True, 0.7]]}, "list 0 is"),
        ({"scores": "nope"}, "a list of 1 lists of 3 numbers"),
        ([1, 2], r"hold 'scores'.*found list"),
    ],
)
def test_malformed_answers(payload: Any, message: str) -> None:
    with pytest.raises(RemoteModelError, match=message):
        remote(answer(payload)).scores(torch.zeros(1, 4))


def test_nan_and_bad_json() -> None:
    nan = remote(lambda r: httpx.Response(200, text='{"scores": [[NaN, 0.5, 0.5]]}'))
    with pytest.raises(RemoteModelError, match="NaN or infinity"):
        nan.scores(torch.zeros(1, 4))
    html = remote(lambda r: httpx.Response(200, text="<html>oops</html>"))
    with pytest.raises(RemoteModelError, match="expected a JSON body, but got '<html>oops"):
        html.scores(torch.zeros(1, 4))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([5], r"labels in \[0, 2\]"),
        ([0.5], "integer"),
        ([True], "list of 1 labels"),
        ([0, 1], r"shape \(1,\)"),
    ],
)
def test_malformed_labels(labels: Any, message: str) -> None:
    with pytest.raises(RemoteModelError, match=message):
        remote(answer({"labels": labels}), access="labels").labels(torch.zeros(1, 4))


def test_secrets_never_shown() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text=f"bad token {request.headers['authorization']}")

    model = RemoteModel(
        URL + "?api_key=k3y-in-query",
        input_shape=(4,),
        num_classes=3,
        headers={"Authorization": SECRET},
        transport=httpx.MockTransport(echo),
    )
    text = repr(model)
    assert "Authorization" in text
    assert "s3cr3t" not in text and "k3y-in-query" not in text
    with pytest.raises(RemoteModelError) as info:
        model.scores(torch.zeros(1, 4))
    assert "HTTP 401" in str(info.value)
    assert "s3cr3t" not in str(info.value) and "k3y-in-query" not in str(info.value)


def test_budget_and_bad_input_cost_no_request() -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, json={"scores": [[1.0, 0.0, 0.0]]})

    model = remote(handle, budget=1)
    with pytest.raises(QueryBudgetExceeded):
        model.scores(torch.zeros(2, 4))
    with pytest.raises(ValidationError):
        model.scores(torch.full((1, 4), float("nan")))
    assert calls == []


def test_closed_client() -> None:
    model = remote(answer({"scores": [[1.0, 0.0, 0.0]]}))
    model.close()
    with pytest.raises(RemoteModelError, match="request failed"):
        model.scores(torch.zeros(1, 4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"access": "gradients"}, "no gradients"),
        ({"access": "scores", "response": {"holds": "labels"}}, "access"),
        ({"request": {"inputs": "x"}}, "request"),
        ({"response": {"key": "a..b"}}, "dotted"),
        ({"response": {"classes": ["a", "b", "c"]}}, "classes"),
        ({"timeout": 0}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"headers": {"X-Key": 42}}, r"\['X-Key'\]"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        remote(answer({}), **kwargs)


@pytest.mark.parametrize("url", ["ftp://host/x", "not a url", "file:///etc/passwd"])
def test_invalid_url(url: str) -> None:
    with pytest.raises(ValidationError, match="url"):
        RemoteModel(url, input_shape=(4,), num_classes=3)


def test_per_item_response_path() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        n = len(json.loads(request.content)["inputs"])
        items = [{"probabilities": [0.2, 0.5, 0.3], "id": i} for i in range(n)]
        return httpx.Response(200, json={"predictions": items})

    model = remote(handle, response={"key": "predictions.*.probabilities"})
    assert model.labels(torch.zeros(3, 4)).tolist() == [1, 1, 1]


def test_password_in_url_is_hidden() -> None:
    model = RemoteModel(
        "https://user:hunter22@ml.example.com/p",
        input_shape=(4,),
        num_classes=3,
        retries=0,
        headers={"X-Version": "2"},
        transport=httpx.MockTransport(lambda request: httpx.Response(502)),
    )
    assert "hunter22" not in repr(model)
    with pytest.raises(RemoteModelError, match=r"HTTP 502; gave up after 1 attempt$") as info:
        model.scores(torch.zeros(2, 4))
    assert "hunter22" not in str(info.value)
    assert str(info.value).startswith("Remote model https://ml.example.com/p:")
