"""as_batch, as_labels, check_in_bounds: every bad input named in a ValidationError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bastion.core.errors import BoundsError, NonFiniteError, ShapeError, ValidationError
from bastion.models import as_batch, as_labels, check_in_bounds


@pytest.mark.parametrize(
    "value",
    [torch.zeros(2, 3, dtype=torch.float64), np.zeros((2, 3)), [[0, 0, 0], [1, 1, 1]]],
)
def test_as_batch_accepts_tensors_arrays_lists(value: object) -> None:
    batch = as_batch(value, (3,))
    assert batch.dtype == torch.float32
    assert batch.shape == (2, 3)


def test_as_batch_detaches() -> None:
    x = torch.zeros(2, 3, requires_grad=True)
    assert not as_batch(x, (3,)).requires_grad


def test_as_batch_single_sample_only_when_allowed() -> None:
    assert as_batch(torch.zeros(3), (3,), allow_single=True).shape == (1, 3)
    with pytest.raises(ShapeError, match=r"shape \(n, 3\)"):
        as_batch(torch.zeros(3), (3,))


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (torch.zeros(2, 4), ShapeError, "shape"),
        (torch.zeros(0, 3), ShapeError, "empty"),
        (torch.tensor([[0.0, float("nan"), 0.0]]), NonFiniteError, "1 sample"),
        (torch.tensor([[0.0, float("inf"), 0.0]]), NonFiniteError, "finite"),
        ("abc", ValidationError, "torch.Tensor or numpy.ndarray"),
        (np.array([["a", "b", "c"]], dtype=object), ValidationError, "dtype=object"),
        ([[0, "x", 1]], ValidationError, "numeric"),
    ],
)
def test_as_batch_refuses(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        as_batch(value, (3,))


def test_as_labels() -> None:
    assert as_labels(np.array([0.0, 2.0]), 2, 3).dtype == torch.int64
    assert as_labels([1, 2], 2, 3).tolist() == [1, 2]
    with pytest.raises(ValidationError, match="integer"):
        as_labels(np.array([0.5, 1.0]), 2, 3)
    with pytest.raises(ValidationError, match="integer"):
        as_labels(torch.tensor([0.0, 1.0]), 2, 3)
    with pytest.raises(ShapeError, match=r"\(3,\)"):
        as_labels([0, 1], 3, 3)
    with pytest.raises(ValidationError, match=r"\[0, 2\]"):
        as_labels([0, 3], 2, 3)


def test_check_in_bounds() -> None:
    check_in_bounds(torch.tensor([0.0, 1.0 + 1e-7]), (0.0, 1.0))
    with pytest.raises(BoundsError, match=r"range from -0\.5 to 1"):
        check_in_bounds(torch.tensor([-0.5, 1.0]), (0.0, 1.0))


def test_all_finite_survives_a_sum_that_overflows() -> None:
    from bastion.models.tensors import all_finite

    big = torch.full((4, 8), 3e38)  # every value finite, their float32 sum is not
    assert all_finite(big)
    assert not all_finite(torch.tensor([[1.0, float("nan")]]))
    assert not all_finite(torch.tensor([[float("inf"), -float("inf")]]))
    assert all_finite(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(NonFiniteError, match="1 sample"):
        as_batch(torch.tensor([[1.0, 2.0], [float("nan"), 3e38]]), (2,))
    assert as_batch(big, (8,)).shape == (4, 8)
