"""Image uploads to ``POST /v1/predict``: refused with a clear 4xx before the model, or served."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from bastion.core.errors import ConfigError
from bastion.data.zoo import ZooEntry
from bastion.gateway import Store, load_settings

Build = Callable[..., tuple[TestClient, Store, dict[str, str]]]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def rows(store: Store, sql: str) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(text(sql)).all())


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt)
    return out.getvalue()


def digit_png(entry: ZooEntry, index: int) -> tuple[bytes, torch.Tensor]:
    """A held-out digit as an 8x8 grey PNG, and the input the model should then see."""
    pixels = np.round(entry.test.x[index, 0] * 255).astype(np.uint8)
    return encode(pixels), torch.from_numpy(pixels / 255.0).float().reshape(1, 1, 8, 8)


def png_bomb(side: int = 100_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 4096, 9))
        + chunk(b"IEND", b"")
    )


def upload(
    client: TestClient, key: str, data: bytes, name: str = "digit.png", kind: str = "image/png"
) -> Any:
    return client.post("/v1/predict", headers=bearer(key), files={"image": (name, data, kind)})


def test_a_digit_image_is_re_encoded_and_predicted(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    client, store, keys = make_client()
    pipeline = client.app.state.pipeline  # type: ignore[attr-defined]
    for index in range(3):
        data, seen = digit_png(digits_entry, index)
        answer = upload(client, keys["admin"], data)
        assert answer.status_code == 200, answer.text
        prediction = answer.json()["predictions"][0]
        expected = pipeline.model.scores(seen)[0]
        assert prediction["label"] == int(expected.argmax())
        assert prediction["scores"] == pytest.approx(expected.tolist(), abs=1e-4)
    recorded = rows(store, "SELECT status, reached_model, samples, input_hash FROM requests")
    assert [r[:3] for r in recorded] == [(200, 1, 1)] * 3
    assert all(len(r[3]) == 64 for r in recorded)


BAD_UPLOADS = [
    ("bomb", lambda png: png_bomb(), "digit.png", 413, "decompression bomb"),
    ("elf-named-png", lambda png: b"\x7fELF" + b"\0" * 200, "digit.png", 415, "ELF executable"),
    (
        "jpeg-named-png",
        lambda png: encode(np.zeros((8, 8), np.uint8), "JPEG"),
        "digit.png",
        None,  # JPEG is allowed: accepted by its bytes, whatever the name says
        "",
    ),
    ("gif-named-png", lambda png: encode(np.zeros((8, 8), np.uint8), "GIF"), "x.png", 415, "GIF"),
    ("truncated-png", lambda png: png[: len(png) - 20], "digit.png", 422, "truncated"),
    ("oversized", lambda png: png + b"\0" * 60_000, "digit.png", 413, "larger than"),
]


@pytest.mark.parametrize(
    ("case", "make", "name", "status", "message"), BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS]
)
def test_bad_uploads_get_4xx_are_recorded_and_never_reach_the_model(
    make_client: Build,
    digits_entry: ZooEntry,
    case: str,
    make: Callable[[bytes], bytes],
    name: str,
    status: int | None,
    message: str,
) -> None:
    client, store, keys = make_client(max_body_bytes=50_000)
    model = client.app.state.pipeline.model  # type: ignore[attr-defined]
    before = model.counter.count
    answer = upload(client, keys["client"], make(digit_png(digits_entry, 0)[0]), name)
    recorded = rows(store, "SELECT status, reached_model, error, action FROM requests")
    if status is None:
        assert answer.status_code == 200 and recorded[0][1] == 1
        return
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]["message"]
    assert model.counter.count == before
    assert len(recorded) == 1
    assert recorded[0][0] == status and recorded[0][1] == 0 and message in recorded[0][2]
    assert recorded[0][3] == "block"


def test_the_allowed_formats_and_pixel_limit_are_settings(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    client, _, keys = make_client(image_formats=["GIF"], max_image_pixels=64)
    gif = encode(np.zeros((8, 8), np.uint8), "GIF")
    assert upload(client, keys["client"], gif, "a.gif", "image/gif").status_code == 200
    png = digit_png(digits_entry, 0)[0]
    refused = upload(client, keys["client"], png)
    assert refused.status_code == 415 and "one of GIF" in refused.json()["error"]["message"]
    big = encode(np.zeros((9, 9), np.uint8), "GIF")
    assert upload(client, keys["client"], big, "a.gif", "image/gif").status_code == 413


def test_malformed_forms_are_400_and_charged_to_the_rate_limit(make_client: Build) -> None:
    client, store, keys = make_client(rate_limit_identity="2/minute")
    headers = {**bearer(keys["client"]), "Content-Type": "multipart/form-data; boundary=xyz"}
    broken = client.post("/v1/predict", headers=headers, content=b"--xyz\r\nnot a part")
    assert broken.status_code == 400
    wrong_field = client.post(
        "/v1/predict", headers=bearer(keys["client"]), files={"photo": ("a.png", b"x")}
    )
    assert wrong_field.status_code == 400
    assert "one file field 'image'" in wrong_field.json()["error"]["message"]
    third = client.post(
        "/v1/predict", headers=bearer(keys["client"]), files={"photo": ("a.png", b"x")}
    )
    assert third.status_code == 429
    assert [r[0] for r in rows(store, "SELECT reached_model FROM requests")] == [0, 0, 0]


def test_openapi_documents_json_and_image_bodies(make_client: Build) -> None:
    client, _, _ = make_client()
    spec = client.app.openapi()  # type: ignore[attr-defined]
    content = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    field = content["multipart/form-data"]["schema"]["properties"]["image"]
    assert field["format"] == "binary"
    json.dumps(spec)  # serialisable as served


def test_image_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="image_formats"):
        load_settings(None, guards={"image_formats": ["EXE"]})
    with pytest.raises(ConfigError, match="image_formats"):
        load_settings(None, guards={"image_formats": []})
    with pytest.raises(ConfigError, match="max_image_pixels"):
        load_settings(None, guards={"max_image_pixels": 0})
    assert load_settings(None).guards.image_formats == ("PNG", "JPEG")
