"""Uploaded images as hostile input: type by magic bytes, a header pixel limit, re-encoding.

Everything here treats the bytes as an attacker's. The type comes from the first bytes of the
file, never from its name or a Content-Type header. The pixel count is read from the header
before any pixel is decoded: for PNG straight from the IHDR chunk, for other formats from
Pillow's header parse (``Image.open`` reads no pixel data). Decoding is restricted to the one
sniffed format's parser, so a file cannot steer Pillow to another plug-in. The decoded image
is converted to the model's channels and size and copied into a fresh float array.

Pillow is imported inside `decode_image`, so importing the guards costs nothing for a model
that never takes images.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence

import numpy as np

from bastion.core.errors import ValidationError

__all__ = [
    "DEFAULT_IMAGE_FORMATS",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "IMAGE_FORMATS",
    "ImagePixelLimitError",
    "check_image_header",
    "check_png_chunks",
    "check_image_type",
    "decode_image",
    "header_pixels",
    "image_layout",
    "sniff",
]

#: Formats the gateway can be allowed to accept (Pillow's format names).
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")

#: Formats accepted unless configured otherwise.
DEFAULT_IMAGE_FORMATS = ("PNG", "JPEG")

#: Largest image accepted by default, in pixels (width times height).
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096

_PNG = b"\x89PNG\r\n\x1a\n"

# Signatures of common non-image files, only to say what arrived instead of an image.
_OTHER = (
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip stream"),
    (b"<svg", "an SVG document"),
    (b"<?xml", "an XML document"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)


def sniff(data: bytes) -> str | None:
    """The image format ``data`` starts with (a name from `IMAGE_FORMATS`), or None."""
    if data.startswith(_PNG):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data.startswith(b"BM") and len(data) >= 26:
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _what(data: bytes) -> str:
    for magic, name in _OTHER:
        if data.startswith(magic):
            return name
    return f"unrecognised bytes {data[:8].hex()}" if data else "an empty file"


def header_pixels(data: bytes) -> int | None:
    """Width times height as a PNG header declares it, without decoding; None if not a PNG."""
    if not data.startswith(_PNG) or len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    return width * height


def image_layout(input_shape: Sequence[int]) -> tuple[int, int, int] | None:
    """``(channels, height, width)`` for a model taking ``(C, H, W)`` or ``(H, W)`` images.

    None when the shape is not an image with 1 or 3 channels.
    """
    shape = tuple(input_shape)
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape[0], shape[1], shape[2]
    return None


class ImagePixelLimitError(ValidationError):
    """An image whose header declares more pixels than allowed (a possible decompression bomb)."""


def _pixel_error(pixels: int, max_pixels: int) -> ImagePixelLimitError:
    return ImagePixelLimitError(
        f"Expected an image of at most {max_pixels} pixels, but its header declares "
        f"{pixels} (a possible decompression bomb)"
    )


def check_image_type(data: bytes, allowed: Sequence[str]) -> str:
    """The sniffed format of ``data``; raise `ValidationError` unless it is in ``allowed``."""
    fmt = sniff(data)
    if fmt is None:
        raise ValidationError(
            f"Expected an image in one of {', '.join(allowed)} (checked by its bytes), "
            f"but got {_what(data)}"
        )
    if fmt not in allowed:
        raise ValidationError(
            f"Expected an image in one of {', '.join(allowed)}, but got a {fmt} image"
        )
    return fmt


def check_image_header(data: bytes, fmt: str, max_pixels: int) -> None:
    """Refuse a PNG whose IHDR declares more than ``max_pixels``, before Pillow sees it."""
    if fmt == "PNG":
        pixels = header_pixels(data)
        if pixels is None:
            raise ValidationError("Expected a PNG with an IHDR header, but the header is broken")
        if pixels > max_pixels:
            raise _pixel_error(pixels, max_pixels)


def check_png_chunks(data: bytes) -> None:
    """Walk a PNG's chunks: each must fit in the file with a matching CRC, up to ``IEND``.

    Pillow decodes a PNG that lost its end (the last IDAT's checksum, the IEND chunk)
    without complaint; a truncated upload is refused here instead.

    Raises:
        ValidationError: a chunk overruns the file, a CRC differs, or IEND is missing.
    """
    offset = len(_PNG)
    while True:
        if offset + 12 > len(data):
            raise ValidationError(
                f"Expected a complete PNG image, but it is truncated at byte {offset} "
                "(no IEND chunk)"
            )
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        name = kind.decode("ascii", "replace")
        end = offset + 12 + length
        if end > len(data):
            raise ValidationError(
                f"Expected a complete PNG image, but it is truncated: its {name} chunk at "
                f"byte {offset} runs past the end of the file ({length} bytes declared)"
            )
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[offset + 4 : end - 4]) != crc:
            raise ValidationError(
                f"Expected a valid PNG image, but the CRC of its {name} chunk at byte "
                f"{offset} does not match"
            )
        if kind == b"IEND":
            return
        offset = end


def decode_image(
    data: bytes,
    fmt: str,
    *,
    layout: tuple[int, int, int],
    bounds: tuple[float, float],
    max_pixels: int,
) -> np.ndarray:
    """Decode ``data`` (already sniffed as ``fmt``) into a fresh ``(1, C, H, W)`` float32 array.

    The header's size is checked against ``max_pixels`` before the pixels are decoded; the
    image is converted to ``layout``'s channels (grey or RGB), resized to its height and
    width, and scaled from 0..255 to ``bounds``.

    Raises:
        ValidationError: the image is too large, truncated, or does not decode.
    """
    from PIL import Image  # Pillow only when an image arrives

    channels, height, width = layout
    if fmt == "PNG":
        check_png_chunks(data)
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            pixels = img.size[0] * img.size[1]
            if pixels > max_pixels:
                raise _pixel_error(pixels, max_pixels)
            img.load()
            converted = img.convert("L" if channels == 1 else "RGB")
    except ValidationError:
        raise
    except Exception as exc:  # any decoder failure is a refusal, never a 500
        detail = str(exc).split(" <", 1)[0] or type(exc).__name__  # no object reprs
        raise ValidationError(
            f"Expected a complete {fmt} image, but it does not decode ({detail})"
        ) from None
    if converted.size != (width, height):
        converted = converted.resize((width, height), Image.Resampling.BILINEAR)
    array = np.array(converted, dtype=np.float32)  # a copy, detached from Pillow's buffer
    array = array[None, None] if channels == 1 else array.transpose(2, 0, 1)[None]
    low, high = bounds
    return np.ascontiguousarray(low + (high - low) * (array / 255.0), dtype=np.float32)
