"""RemoteModel rotating over several API keys: round-robin per request, never shown."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import torch

from bastion.core.errors import RemoteModelError, ValidationError
from bastion.models import RemoteModel

URL = "https://ml.example.com/v1/predict"
KEYS = ["key-alpha-0001", "key-bravo-0002", "key-charlie-0003"]


def keyed(handler: Any, **kwargs: Any) -> RemoteModel:
    options: dict[str, Any] = {"input_shape": (4,), "num_classes": 3, "backoff": 0.0}
    options.update(kwargs)
    return RemoteModel(URL, transport=httpx.MockTransport(handler), **options)


def test_keys_rotate_one_per_request_and_keep_other_headers() -> None:
    seen: list[tuple[str, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["authorization"], request.headers["x-version"]))
        n = len(json.loads(request.content)["inputs"])
        return httpx.Response(200, json={"scores": [[0.2, 0.3, 0.5]] * n})

    model = keyed(handle, api_keys=KEYS, headers={"X-Version": "2"}, batch_size=2)
    model.scores(torch.zeros(5, 4))  # 3 requests: 2 + 2 + 1 samples
    model.labels(torch.zeros(2, 4))  # the 4th request starts the round again
    assert [auth for auth, _ in seen] == [f"Bearer {k}" for k in (*KEYS, KEYS[0])]
    assert {version for _, version in seen} == {"2"}
    assert model.counter.count == 7


def test_custom_header_and_bare_key() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["x-api-key"])
        assert "authorization" not in request.headers
        return httpx.Response(200, json={"scores": [[0.2, 0.3, 0.5]]})

    model = keyed(handle, api_keys=KEYS[:2], api_key_header="X-Api-Key", api_key_scheme="")
    for _ in range(3):
        model.scores(torch.zeros(1, 4))
    assert seen == [KEYS[0], KEYS[1], KEYS[0]]


def test_retry_keeps_the_same_key() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        if len(seen) == 1:
            return httpx.Response(503)
        return httpx.Response(200, json={"scores": [[0.2, 0.3, 0.5]]})

    keyed(handle, api_keys=KEYS).scores(torch.zeros(1, 4))
    keyed(handle, api_keys=KEYS).scores(torch.zeros(1, 4))
    assert seen == [f"Bearer {KEYS[0]}"] * 3


def test_keys_never_shown_in_repr_or_errors() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text=f"unknown key {request.headers['authorization']}")

    model = keyed(echo, api_keys=KEYS)
    assert "api_keys=3" in repr(model)
    assert not any(k in repr(model) for k in KEYS)
    for _ in KEYS:
        with pytest.raises(RemoteModelError, match="HTTP 401") as info:
            model.scores(torch.zeros(1, 4))
        assert not any(k in str(info.value) for k in KEYS)
        assert "Bearer ***" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"api_keys": []}, "non-empty list"),
        ({"api_keys": "key-alpha-0001"}, "non-empty list.*str"),
        ({"api_keys": ["key-alpha-0001", ""]}, r"entries \[1\]"),
        ({"api_keys": ["secret-with-space "]}, r"entries \[0\]"),
        ({"api_keys": KEYS, "headers": {"authorization": "Bearer x"}}, "api_key_header"),
        ({"api_keys": KEYS, "api_key_header": ""}, "api_key_header"),
        ({"api_key_scheme": 3}, "api_key_scheme"),
    ],
)
def test_invalid_key_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        keyed(lambda request: httpx.Response(200), **kwargs)
    assert "secret-with-space" not in str(info.value)
