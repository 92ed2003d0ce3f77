"""Input validation from the model's input spec, before anything reaches the model.

A request body is checked in the order that keeps the cost of a hostile body small: its size,
then its JSON nesting depth (by a linear scan, before the parser recurses), then the JSON
itself, then the array's dtype, shape, finiteness, bounds and batch size.

An uploaded image is checked the same way: its size, then its type by magic bytes (never by
file name or Content-Type) against an allow-list of formats, then its pixel count read from
the header before any pixel is decoded (a decompression bomb declares huge dimensions in a
few bytes), then a full decode restricted to that one format's parser. What reaches the
model is re-encoded: the decoded pixels converted to the model's channels and size and
copied into a fresh array, never the uploaded bytes. Pillow is imported only when an image
arrives (see `bastion.defenses.guards.images`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bastion.core.errors import ValidationError
from bastion.core.validation import check_bounds, check_choice, check_int, check_type, fail
from bastion.defenses.guards.images import (
    DEFAULT_IMAGE_FORMATS,
    DEFAULT_MAX_IMAGE_PIXELS,
    IMAGE_FORMATS,
    ImagePixelLimitError,
    check_image_header,
    check_image_type,
    decode_image,
    image_layout,
)
from bastion.defenses.guards.interface import Action, Guard, Query, Verdict
from bastion.models import as_batch, check_in_bounds
from bastion.models.tensors import BOUNDS_TOLERANCE

__all__ = ["InputGuard", "json_depth"]


# Every byte but the four brackets, for `bytes.translate` to delete.
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")


def _max_depth(brackets: np.ndarray) -> int:
    """The deepest running depth of a sequence of bracket bytes."""
    if brackets.size == 0:
        return 0
    step = np.where((brackets == 0x5B) | (brackets == 0x7B), 1, -1)
    return max(0, int(np.cumsum(step).max()))


def json_depth(body: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON text, brackets inside strings ignored.

    Linear, in C-speed byte operations rather than a Python loop over every byte (a 1 MB
    body takes milliseconds, not tenths of a second). Without backslashes, strings are the
    odd pieces between quotes; with them, a quote opens or closes a string unless an odd run
    of backslashes precedes it. On valid JSON the result is exact; on invalid JSON it can
    differ only after the first backslash outside a string, where any parser stops anyway.
    """
    if b"\\" not in body:
        outside = b"".join(body.split(b'"')[0::2])
        return _max_depth(np.frombuffer(outside.translate(None, _NOT_BRACKETS), np.uint8))
    data = np.frombuffer(body, dtype=np.uint8)
    positions = np.arange(data.size)
    # Index of the last non-backslash byte before each position (-1 if none).
    last_plain = np.maximum.accumulate(np.where(data == 0x5C, -1, positions))
    run = positions - 1 - np.concatenate(([-1], last_plain[:-1]))
    quote = (data == 0x22) & (run % 2 == 0)
    outside_mask = (np.cumsum(quote) - quote) % 2 == 0  # a string's quotes count as inside it
    bracket = (data == 0x5B) | (data == 0x7B) | (data == 0x5D) | (data == 0x7D)
    return _max_depth(data[outside_mask & bracket])


class InputGuard(Guard):
    """Refuse a request body that does not fit the model's input spec; always blocks.

    The body is ``{"inputs": [sample, ...]}`` with each sample a nested list of numbers of
    ``input_shape`` (a single sample of ``input_shape`` is accepted as a batch of one).

    Args:
        input_shape: one sample's shape.
        bounds: the valid value range ``(low, high)``.
        max_batch: most samples per request.
        max_body_bytes: largest body accepted.
        max_depth: deepest JSON nesting accepted; by default ``len(input_shape) + 3``.
        image_formats: image formats `parse_image` accepts, by Pillow name (from
            ``IMAGE_FORMATS``: PNG, JPEG, GIF, BMP, WEBP).
        max_image_pixels: largest image (width times height) `parse_image` decodes.
    """

    name = "input"

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        bounds: tuple[float, float] = (0.0, 1.0),
        max_batch: int = 64,
        max_body_bytes: int = 1_000_000,
        max_depth: int | None = None,
        image_formats: Sequence[str] = DEFAULT_IMAGE_FORMATS,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        super().__init__(action=Action.BLOCK)
        check_type("input_shape", input_shape, (tuple, list), "a tuple of positive ints")
        self.input_shape = tuple(
            check_int(f"input_shape[{i}]", d, low=1) for i, d in enumerate(input_shape)
        )
        self.bounds = check_bounds("bounds", bounds)
        self.max_batch = check_int("max_batch", max_batch, low=1)
        self.max_body_bytes = check_int("max_body_bytes", max_body_bytes, low=2)
        default_depth = len(self.input_shape) + 3
        self.max_depth = check_int(
            "max_depth", default_depth if max_depth is None else max_depth, low=2
        )
        check_type("image_formats", image_formats, (tuple, list), "a sequence of format names")
        formats = tuple(
            check_choice(f"image_formats[{i}]", str(f).upper(), IMAGE_FORMATS)
            for i, f in enumerate(image_formats)
        )
        if not formats:
            raise fail("image_formats", f"at least one of {IMAGE_FORMATS}", image_formats)
        self.image_formats = formats
        self.max_image_pixels = check_int("max_image_pixels", max_image_pixels, low=1)
        #: (channels, height, width) of an image sample, or None when the model takes none.
        self.image_layout = image_layout(self.input_shape)

    def parse(self, body: bytes) -> torch.Tensor:
        """Return the validated batch in ``body``; raise `ValidationError` saying what is wrong."""
        return self._parse(body, [])

    def _parse(self, body: bytes, stages: list[str]) -> torch.Tensor:
        stages.append("size")
        if len(body) > self.max_body_bytes:
            raise ValidationError(
                f"Expected a request body of at most {self.max_body_bytes} bytes, "
                f"but got {len(body)} bytes"
            )
        stages.append("json")
        # Nesting cannot exceed the number of opening brackets: most bodies skip the scan.
        openers = body.count(b"[") + body.count(b"{")
        depth = json_depth(body) if openers > self.max_depth else openers
        if depth > self.max_depth:
            raise ValidationError(
                f"Expected JSON nested at most {self.max_depth} levels deep, but got {depth} levels"
            )
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(
                f"Expected a JSON request body, but it is not JSON: {exc}"
            ) from None
        stages.append("content")
        return self.parse_payload(payload)

    def parse_payload(self, payload: Any) -> torch.Tensor:
        """Validate an already decoded ``{"inputs": ...}`` object; see `parse`."""
        if not isinstance(payload, dict) or "inputs" not in payload:
            raise ValidationError(
                'Expected a JSON object {"inputs": [...]}, but got '
                + (
                    f"an object with keys {sorted(payload)[:5]}"
                    if isinstance(payload, dict)
                    else f"a JSON {type(payload).__name__}"
                )
            )
        try:
            array = np.asarray(payload["inputs"])
        except ValueError as exc:
            raise ValidationError(f"Expected inputs to be a rectangular array: {exc}") from None
        if array.dtype.kind not in "iuf":
            what = "ragged or mixed" if array.dtype == object else f"dtype {array.dtype}"
            raise ValidationError(f"Expected inputs to hold only numbers, but got {what} values")
        array = array.astype(np.float32)
        fast = array[None] if array.shape == self.input_shape else array
        if (
            fast.shape[1:] == self.input_shape
            and 0 < fast.shape[0] <= self.max_batch
            and float(fast.min()) >= self.bounds[0] - BOUNDS_TOLERANCE
            and float(fast.max()) <= self.bounds[1] + BOUNDS_TOLERANCE
        ):
            # The common case, checked in NumPy alone (NaN fails both comparisons, infinity
            # the bounds); anything else takes the checks below for their precise message.
            return torch.from_numpy(fast)
        batch = as_batch(array, self.input_shape, name="inputs", allow_single=True)
        if batch.shape[0] > self.max_batch:
            raise ValidationError(
                f"Expected at most {self.max_batch} samples per request, but got {batch.shape[0]}"
            )
        check_in_bounds(batch, self.bounds, name="inputs")
        return batch

    def inspect(self, body: bytes) -> tuple[Verdict, torch.Tensor | None]:
        """`parse` as a verdict: (block with the reason, None) or (allow, the batch).

        A blocking verdict's evidence names the ``stage`` that failed: ``size`` (body too
        large), ``json`` (not JSON, or nested too deep) or ``content`` (not a valid batch).
        """
        stages: list[str] = []
        try:
            batch = self._parse(body, stages)
        except ValidationError as exc:
            return (
                self.fire(
                    str(exc), error=type(exc).__name__, stage=stages[-1], body_bytes=len(body)
                ),
                None,
            )
        return self.allow(samples=int(batch.shape[0])), batch

    def parse_image(self, data: bytes) -> torch.Tensor:
        """Return the re-encoded one-sample batch in an uploaded image; see `inspect_image`."""
        return self._parse_image(data, [])

    def _parse_image(self, data: bytes, stages: list[str]) -> torch.Tensor:
        stages.append("size")
        if len(data) > self.max_body_bytes:
            raise ValidationError(
                f"Expected an image of at most {self.max_body_bytes} bytes, "
                f"but got {len(data)} bytes"
            )
        stages.append("type")
        if self.image_layout is None:
            raise ValidationError(
                f"Expected a JSON batch: this model's input shape {self.input_shape} is not "
                "an image with 1 or 3 channels"
            )
        fmt = check_image_type(data, self.image_formats)
        stages.append("pixels")
        check_image_header(data, fmt, self.max_image_pixels)
        stages.append("decode")
        try:
            array = decode_image(
                data,
                fmt,
                layout=self.image_layout,
                bounds=self.bounds,
                max_pixels=self.max_image_pixels,
            )
        except ImagePixelLimitError:
            stages.append("pixels")
            raise
        batch = torch.from_numpy(array).reshape(1, *self.input_shape)
        check_in_bounds(batch, self.bounds, name="image")
        return batch

    def inspect_image(self, data: bytes) -> tuple[Verdict, torch.Tensor | None]:
        """`parse_image` as a verdict: (block with the reason, None) or (allow, the batch).

        A blocking verdict's evidence names the ``stage`` that failed: ``size`` (file too
        large), ``type`` (not an allowed image format by its magic bytes, or a model that
        takes no images), ``pixels`` (the header declares too many pixels) or ``decode``
        (truncated or corrupt).
        """
        stages: list[str] = []
        try:
            batch = self._parse_image(data, stages)
        except ValidationError as exc:
            return (
                self.fire(
                    str(exc), error=type(exc).__name__, stage=stages[-1], body_bytes=len(data)
                ),
                None,
            )
        return self.allow(samples=1, image=True), batch

    def check(self, query: Query) -> Verdict:
        """Check an already built batch in ``query.x`` against shape, bounds and batch size."""
        try:
            x = self._batch(query)
            as_batch(x, self.input_shape, name="inputs")
            if x.shape[0] > self.max_batch:
                raise ValidationError(
                    f"Expected at most {self.max_batch} samples per request, but got {x.shape[0]}"
                )
            check_in_bounds(x, self.bounds, name="inputs")
        except ValidationError as exc:
            return self.fire(str(exc), error=type(exc).__name__)
        return self.allow(samples=int(x.shape[0]))
