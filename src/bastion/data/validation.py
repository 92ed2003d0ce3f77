"""Turning caller data into validated numpy arrays, with errors that say what was wrong.

Every check raises (never asserts, so it holds under ``python -O``), names the argument,
says what was expected and shows what came: the shape, the dtype, how many rows hold NaN,
the value range against the declared bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bastion.core.errors import BoundsError, NonFiniteError, ShapeError, ValidationError
from bastion.core.validation import check_bounds, describe

__all__ = [
    "BOUNDS_TOLERANCE",
    "check_bounds",
    "infer_bounds",
    "validate_features",
    "validate_labels",
]

# Values a hair outside the bounds (float rounding of a rescale or a clip) are accepted.
BOUNDS_TOLERANCE = 1e-5

_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float; never complex, object, str, bytes


def _as_array(name: str, value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise ValidationError(
                f"Expected {name} to hold real numbers, but got a tensor of dtype={value.dtype}"
            )
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)):
        try:
            return np.asarray(value)
        except (TypeError, ValueError) as exc:
            # ragged nested lists: numpy refuses them since 1.24
            raise ValidationError(
                f"Expected {name} to be a rectangular numeric array, but got a ragged "
                f"{type(value).__name__}: {exc}"
            ) from exc
    raise ValidationError(
        f"Expected {name} to be a numpy.ndarray, torch.Tensor or nested list of numbers, "
        f"but got {describe(name, value)}"
    )


def _check_numeric(name: str, arr: np.ndarray, what: str) -> None:
    if arr.dtype.kind not in _NUMERIC_KINDS:
        kinds = {"c": "complex numbers", "O": "Python objects", "U": "strings", "S": "bytes"}
        got = kinds.get(arr.dtype.kind, f"dtype={arr.dtype}")
        raise ValidationError(f"Expected {name} to hold {what}, but got {got} (dtype={arr.dtype})")


def infer_bounds(x: np.ndarray) -> tuple[float, float]:
    """The bounds to declare for data that came without any.

    Returns ``(0, 1)`` when every value lies inside ``[0, 1]`` (the usual scaled case),
    else the data's own ``(min, max)``; constant data ``c`` gets ``(c, c + 1)`` so that
    ``low < high`` still holds.
    """
    low, high = float(np.min(x)), float(np.max(x))
    if low >= 0.0 and high <= 1.0:
        return (0.0, 1.0)
    if low == high:
        return (low, low + 1.0)
    return (low, high)


def validate_features(
    x: Any,
    *,
    name: str = "x",
    input_shape: Sequence[int] | None = None,
    bounds: tuple[float, float] | None = None,
) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 array of shape ``(n, *input_shape)``.

    Accepts a numpy array, a torch tensor or a nested list of real numbers with at least one
    sample and one feature. With ``input_shape`` the per-sample shape must match exactly;
    with ``bounds`` every value must lie inside ``[low, high]`` (up to `BOUNDS_TOLERANCE`).

    Raises:
        ValidationError: not an array of real numbers (object, complex, strings), or ragged.
        ShapeError: fewer than two dimensions, no samples, or the wrong per-sample shape.
        NonFiniteError: NaN or infinity, also values that overflow float32; the message
            counts the rows and names the first.
        BoundsError: values outside ``bounds``; the message gives the data's min and max.
    """
    arr = _as_array(name, x)
    _check_numeric(name, arr, "real numbers")
    if arr.ndim < 2:
        raise ShapeError(
            f"Expected {name} to have shape (n, *input_shape) with at least 2 dimensions, "
            f"but got shape {arr.shape}"
        )
    if input_shape is not None:
        shape = tuple(int(d) for d in input_shape)
        if arr.shape[1:] != shape:
            dims = ", ".join(map(str, shape))
            raise ShapeError(
                f"Expected {name} to have shape (n, {dims}), but got shape {arr.shape}"
            )
    if arr.size == 0:
        raise ShapeError(f"Expected {name} to hold at least one sample, but got shape {arr.shape}")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(out).reshape(len(out), -1).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        overflow = np.isfinite(arr).all() if arr.dtype.kind == "f" else True
        cause = "values too large for float32" if overflow else "NaN or infinity"
        raise NonFiniteError(
            f"Expected {name} to be finite, but {len(bad)} of {len(out)} rows hold {cause} "
            f"(first at row {int(bad[0])})"
        )
    if bounds is not None:
        low, high = check_bounds("bounds", bounds)
        lo, hi = float(out.min()), float(out.max())
        if lo < low - BOUNDS_TOLERANCE or hi > high + BOUNDS_TOLERANCE:
            raise BoundsError(
                f"Expected {name} to lie within bounds [{low:g}, {high:g}], but its values range "
                f"from {lo:g} to {hi:g}; rescale the data or declare its bounds"
            )
    return out


def validate_labels(
    y: Any, n: int, *, name: str = "y", num_classes: int | None = None
) -> np.ndarray:
    """Return ``y`` as a C-contiguous int64 vector of ``n`` class indices.

    Integer arrays are taken as they are; float arrays only when every value is a whole
    number. Labels must be ``>= 0`` and, with ``num_classes``, ``< num_classes``.

    Raises:
        ValidationError: not integer labels (bool, fractional, object, strings), or out of range.
        ShapeError: not one-dimensional, or not ``n`` labels.
    """
    arr = _as_array(name, y)
    if arr.dtype.kind == "b":
        raise ValidationError(f"Expected {name} to hold integer class labels, but got dtype=bool")
    _check_numeric(name, arr, "integer class labels")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ShapeError(f"Expected {name} to have shape ({n},), but got shape {arr.shape}")
    if arr.dtype.kind == "f":
        whole = np.isfinite(arr) & (arr == np.round(arr))
        if not whole.all():
            first = int(np.flatnonzero(~whole)[0])
            raise ValidationError(
                f"Expected {name} to hold integer class labels, but {name}[{first}]="
                f"{arr[first]!r} is not a whole number"
            )
    if arr.dtype.kind == "u" and arr.dtype.itemsize >= 8 and arr.size and arr.max() > 2**62:
        raise ValidationError(
            f"Expected {name} to hold class labels, but got values up to {arr.max()}"
        )
    out = np.ascontiguousarray(arr, dtype=np.int64)
    if out.size:
        lo, hi = int(out.min()), int(out.max())
        top = None if num_classes is None else num_classes - 1
        if lo < 0 or (top is not None and hi > top):
            expected = "labels >= 0" if top is None else f"labels in [0, {top}]"
            raise ValidationError(
                f"Expected {name} to hold {expected}, but got values from {lo} to {hi}"
            )
    return out
