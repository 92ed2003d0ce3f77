"""Input validation from the model's input spec, before anything reaches the model.

A request body is checked in the order that keeps the cost of a hostile body small: its size,
then its JSON nesting depth (by a linear scan, before the parser recurses), then the JSON
itself, then the array's dtype, shape, finiteness, bounds and batch size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bastion.core.errors import ValidationError
from bastion.core.validation import check_bounds, check_int, check_type
from bastion.defenses.guards.interface import Action, Guard, Query, Verdict
from bastion.models import as_batch, check_in_bounds

__all__ = ["InputGuard", "json_depth"]


def json_depth(body: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON text, brackets inside strings ignored."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


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
        depth = json_depth(body)
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
        batch = as_batch(
            array.astype(np.float32), self.input_shape, name="inputs", allow_single=True
        )
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
