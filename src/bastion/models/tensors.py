"""Turning caller input into validated float tensors, with errors that say what was wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bastion.core.errors import BoundsError, NonFiniteError, ShapeError, ValidationError
from bastion.core.validation import describe

__all__ = ["as_batch", "as_labels", "check_in_bounds"]

# Inputs a hair outside the bounds (float rounding of a clip) are accepted.
BOUNDS_TOLERANCE = 1e-5


def _to_tensor(name: str, value: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(dtype)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise ValidationError(f"Expected {name} to be a numeric array, but got dtype=object")
        try:
            return torch.as_tensor(np.ascontiguousarray(value), dtype=dtype, device="cpu")
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"Expected {name} to be a numeric array: {exc}") from exc
    if isinstance(value, (list, tuple)):
        try:
            return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype, device="cpu")
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"Expected {name} to be a numeric array, but got a list that is not: {exc}"
            ) from exc
    raise ValidationError(
        f"Expected {name} to be a torch.Tensor or numpy.ndarray, but got {describe(name, value)}"
    )


def all_finite(t: torch.Tensor) -> bool:
    """Whether every value of ``t`` is finite (no NaN, no infinity).

    One reduction on the fast path: any NaN or infinity makes the sum non-finite; a finite
    sum proves the values finite, and only a non-finite one (possibly an overflow of large
    finite values) pays for the element-wise check.
    """
    if not t.is_floating_point() or bool(torch.isfinite(t.sum())):
        return True
    return bool(torch.isfinite(t).all())


def as_batch(
    x: Any, input_shape: Sequence[int], *, name: str = "x", allow_single: bool = False
) -> torch.Tensor:
    """Return ``x`` as a float32 batch of shape ``(n, *input_shape)``; refuse NaN and infinity.

    With ``allow_single`` a single sample of ``input_shape`` becomes a batch of one.
    """
    tensor = _to_tensor(name, x, torch.float32)
    shape = tuple(input_shape)
    if allow_single and tuple(tensor.shape) == shape:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != len(shape) + 1 or tuple(tensor.shape[1:]) != shape:
        raise ShapeError(
            f"Expected {name} to have shape (n, {', '.join(map(str, shape))}), "
            f"but got shape {tuple(tensor.shape)}"
        )
    if tensor.shape[0] == 0:
        raise ShapeError(f"Expected {name} to hold at least one sample, but got an empty batch")
    if not all_finite(tensor):
        bad = int((~torch.isfinite(tensor)).flatten(1).any(1).sum())
        raise NonFiniteError(
            f"Expected {name} to be finite, but {bad} sample(s) hold NaN or infinity"
        )
    return tensor


def as_labels(y: Any, n: int, num_classes: int, *, name: str = "y") -> torch.Tensor:
    """Return ``y`` as an int64 vector of ``n`` class indices in ``[0, num_classes)``."""
    if isinstance(y, np.ndarray) and y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValidationError(
                f"Expected {name} to hold integer class labels, but got dtype={y.dtype}"
            )
    if isinstance(y, torch.Tensor) and (y.is_floating_point() or y.is_complex()):
        raise ValidationError(
            f"Expected {name} to hold integer class labels, but got dtype={y.dtype}"
        )
    labels = _to_tensor(name, y, torch.int64)
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ShapeError(
            f"Expected {name} to have shape ({n},), but got shape {tuple(labels.shape)}"
        )
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValidationError(
            f"Expected {name} to hold labels in [0, {num_classes - 1}], "
            f"but got values from {int(labels.min())} to {int(labels.max())}"
        )
    return labels


def check_in_bounds(x: torch.Tensor, bounds: tuple[float, float], *, name: str = "x") -> None:
    """Raise `BoundsError` if a value of ``x`` lies outside ``bounds`` (with a small tolerance)."""
    low, high = bounds
    lo, hi = float(x.min()), float(x.max())
    if lo < low - BOUNDS_TOLERANCE or hi > high + BOUNDS_TOLERANCE:
        raise BoundsError(
            f"Expected {name} to lie within bounds [{low:g}, {high:g}], "
            f"but its values range from {lo:g} to {hi:g}; rescale the data or declare its bounds"
        )
