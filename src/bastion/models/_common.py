"""Pieces several adapters share: per-channel normalisation and checks on what a model returned."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bastion.core.errors import BastionError, ValidationError
from bastion.core.validation import check_number, fail

__all__ = ["channel_stat", "check_label_array", "check_score_array", "normalize"]


def channel_stat(
    name: str, value: Any, input_shape: tuple[int, ...], *, positive: bool = False
) -> torch.Tensor | None:
    """Turn a scalar or per-channel ``mean``/``std`` into a tensor that broadcasts over a batch.

    Channels are the first axis of ``input_shape``. Returns None when ``value`` is None.
    """
    if value is None:
        return None
    if isinstance(value, (torch.Tensor, np.ndarray)):
        values: list[Any] = value.reshape(-1).tolist()
    elif isinstance(value, (list, tuple)):
        values = list(value)
    else:
        values = [value]
    numbers = [check_number(f"{name}[{i}]", v) for i, v in enumerate(values)]
    channels = input_shape[0]
    if len(numbers) not in (1, channels):
        raise fail(name, f"a number or {channels} numbers (one per channel)", value)
    if positive and any(v <= 0 for v in numbers):
        raise fail(name, "positive numbers", value)
    stat = torch.tensor(numbers, dtype=torch.float32, device="cpu")
    return stat.view(-1, *([1] * (len(input_shape) - 1)))


def normalize(x: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None) -> torch.Tensor:
    """``(x - mean) / std``, skipping whichever is None."""
    if mean is not None:
        x = x - mean.to(x.device)
    if std is not None:
        x = x / std.to(x.device)
    return x


def check_score_array(
    what: str,
    value: Any,
    n: int,
    num_classes: int,
    *,
    error: type[BastionError] = ValidationError,
) -> np.ndarray:
    """Return ``value`` as a finite float64 array of shape ``(n, num_classes)`` or raise ``error``.

    ``what`` names the producer in the message, e.g. ``"the estimator's predict_proba"``.
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise error(f"Expected {what} to return numbers, but got {type(value).__name__}") from exc
    if array.shape != (n, num_classes):
        raise error(
            f"Expected {what} to return shape ({n}, {num_classes}), but got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).any(axis=1).sum())
        raise error(
            f"Expected {what} to return finite scores, but {bad} row(s) hold NaN or infinity"
        )
    return array


def check_label_array(
    what: str,
    value: Any,
    n: int,
    num_classes: int,
    *,
    error: type[BastionError] = ValidationError,
) -> np.ndarray:
    """Return ``value`` as ``n`` int64 labels in ``[0, num_classes)``, or raise ``error``.

    A column ``(n, 1)`` is accepted; whole-numbered floats are accepted as labels.
    """
    array = np.asarray(value)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.shape != (n,):
        raise error(f"Expected {what} to return shape ({n},), but got shape {array.shape}")
    if array.dtype.kind == "f" and np.isfinite(array).all() and (array == np.round(array)).all():
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise error(f"Expected {what} to return integer class labels, but got dtype={array.dtype}")
    array = array.astype(np.int64)
    if n and (array.min() < 0 or array.max() >= num_classes):
        raise error(
            f"Expected {what} to return labels in [0, {num_classes - 1}], "
            f"but got values from {array.min()} to {array.max()}"
        )
    return array
