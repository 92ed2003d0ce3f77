"""Image uploads through `InputGuard`: magic bytes, allow-list, header pixel limit, re-encoding."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from bastion.core.errors import ValidationError
from bastion.defenses.guards import Action, InputGuard
from bastion.defenses.guards.images import header_pixels, image_layout, sniff


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    """``array`` (uint8, H x W or H x W x 3) as an image file."""
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes of valid PNG structure declaring ``width x height`` grey pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * 4096, 9)  # a real bomb would inflate to width*height bytes
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture()
def guard() -> InputGuard:
    return InputGuard(input_shape=(1, 8, 8), max_body_bytes=20_000, max_image_pixels=64 * 64)


def gradient(h: int = 8, w: int = 8) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) * (255 // (h * w - 1))).astype(np.uint8)


def test_png_is_decoded_into_a_fresh_batch_of_the_model_shape(guard: InputGuard) -> None:
    pixels = gradient()
    batch = guard.parse_image(encode(pixels))
    assert batch.shape == (1, 1, 8, 8) and batch.dtype == torch.float32
    assert torch.allclose(batch[0, 0], torch.from_numpy(pixels / 255.0).float())
    verdict, same = guard.inspect_image(encode(pixels))
    assert not verdict.fired and same is not None and torch.equal(same, batch)


def test_colour_and_larger_images_are_converted_and_resized(guard: InputGuard) -> None:
    rgb = np.zeros((32, 24, 3), np.uint8)
    rgb[..., 0] = 255  # pure red: grey level 76 in Pillow's ITU-R 601-2 conversion
    batch = guard.parse_image(encode(rgb, "JPEG"))
    assert batch.shape == (1, 1, 8, 8)
    assert torch.allclose(batch, torch.full_like(batch, 76 / 255), atol=3 / 255)
    colour = InputGuard(input_shape=(3, 4, 4), bounds=(-1.0, 1.0)).parse_image(encode(rgb))
    assert colour.shape == (1, 3, 4, 4)
    assert torch.allclose(colour[0, 0], torch.ones(4, 4)) and torch.all(colour[0, 1:] == -1)


def test_png_decompression_bomb_is_refused_from_its_header(guard: InputGuard) -> None:
    bomb = png_bomb()
    assert len(bomb) < 200 and header_pixels(bomb) == 10**10
    verdict, batch = guard.inspect_image(bomb)
    assert verdict.action is Action.BLOCK and batch is None
    assert verdict.evidence["stage"] == "pixels"
    assert "decompression bomb" in verdict.reason and str(10**10) in verdict.reason


def test_pixel_limit_also_holds_for_formats_read_by_pillow(guard: InputGuard) -> None:
    big = encode(np.zeros((100, 100), np.uint8), "JPEG")  # 10,000 > 64 * 64 pixels
    verdict, batch = guard.inspect_image(big)
    assert batch is None and verdict.evidence["stage"] == "pixels"


@pytest.mark.parametrize(
    ("data", "stage", "message"),
    [
        (b"\x7fELF\x02\x01\x01" + b"\0" * 60, "type", "ELF executable"),
        (b"GIF89a" + b"\0" * 40, "type", "got a GIF image"),
        (b"%PDF-1.7\n", "type", "PDF document"),
        (b"", "type", "empty file"),
        (b"just text, not an image", "type", "unrecognised bytes"),
    ],
    ids=["elf", "gif-not-allowed", "pdf", "empty", "text"],
)
def test_type_comes_from_magic_bytes(
    guard: InputGuard, data: bytes, stage: str, message: str
) -> None:
    verdict, batch = guard.inspect_image(data)
    assert batch is None and verdict.evidence["stage"] == stage
    assert message in verdict.reason


def test_allow_list_is_configurable(guard: InputGuard) -> None:
    gif = encode(gradient(), "GIF")
    assert sniff(gif) == "GIF" and guard.inspect_image(gif)[1] is None
    gifs = InputGuard(input_shape=(1, 8, 8), image_formats=("gif",))
    assert gifs.parse_image(gif).shape == (1, 1, 8, 8)
    with pytest.raises(ValidationError, match="one of GIF, but got a PNG"):
        gifs.parse_image(encode(gradient()))  # a PNG is not allowed there
    with pytest.raises(ValidationError, match=r"image_formats\[0\]"):
        InputGuard(input_shape=(1, 8, 8), image_formats=("EXE",))
    with pytest.raises(ValidationError, match="image_formats"):
        InputGuard(input_shape=(1, 8, 8), image_formats=())


def test_truncated_and_corrupt_images_are_refused(guard: InputGuard) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (60, 60), dtype=np.uint8)
    png = encode(noise)
    for cut in (png[:40], png[: len(png) // 2], png[:-20]):
        verdict, batch = guard.inspect_image(cut)
        assert batch is None and verdict.evidence["stage"] == "decode"
        assert "truncated" in verdict.reason or "runs past the end" in verdict.reason
    flipped = bytearray(png)
    flipped[60] ^= 0xFF  # inside the IDAT data: its CRC no longer matches
    verdict, batch = guard.inspect_image(bytes(flipped))
    assert batch is None and "CRC" in verdict.reason
    broken_jpeg = encode(noise, "JPEG")[:300]
    verdict, batch = guard.inspect_image(broken_jpeg)
    assert batch is None and verdict.evidence["stage"] == "decode"
    assert "0x" not in verdict.reason  # no object reprs in a client-facing message


def test_oversized_file_and_non_image_models(guard: InputGuard) -> None:
    verdict, batch = guard.inspect_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 30_000)
    assert batch is None and verdict.evidence["stage"] == "size"
    tabular = InputGuard(input_shape=(30,))
    verdict, batch = tabular.inspect_image(encode(gradient()))
    assert batch is None and "not an image" in verdict.reason
    assert image_layout((30,)) is None and image_layout((8, 8)) == (1, 8, 8)
    assert image_layout((3, 4, 5)) == (3, 4, 5) and image_layout((2, 4, 5)) is None
