"""validate_features / validate_labels: accepted forms, and an error naming each bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bastion.core.errors import BoundsError, NonFiniteError, ShapeError, ValidationError
from bastion.data import check_bounds, infer_bounds, validate_features, validate_labels


def test_features_become_contiguous_float32_from_arrays_lists_and_tensors() -> None:
    for value in (
        np.arange(6, dtype=np.int64).reshape(3, 2),
        [[0, 1], [2, 3], [4, 5]],
        torch.ones(3, 2),
    ):
        out = validate_features(value)
        assert out.dtype == np.float32
        assert out.shape == (3, 2)
        assert out.flags.c_contiguous
    fortran = np.asfortranarray(np.ones((4, 3), dtype=np.float32))
    assert validate_features(fortran).flags.c_contiguous


def test_nan_rows_are_counted_and_the_first_is_named() -> None:
    x = np.zeros((5, 3))
    x[1, 2] = np.nan
    x[3, 0] = np.inf
    with pytest.raises(
        NonFiniteError, match=r"features to be finite, but 2 of 5 rows .*first at row 1"
    ):
        validate_features(x, name="features")


def test_float64_values_that_overflow_float32_are_refused() -> None:
    with pytest.raises(NonFiniteError, match="too large for float32"):
        validate_features(np.array([[1e300, 0.0]]))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.zeros(4), r"at least 2 dimensions, but got shape \(4,\)"),
        (np.zeros((0, 3)), r"at least one sample, but got shape \(0, 3\)"),
        (np.zeros((3, 0)), r"at least one sample"),
    ],
)
def test_bad_shapes_raise_shape_error(value: np.ndarray, match: str) -> None:
    with pytest.raises(ShapeError, match=match):
        validate_features(value)


def test_input_shape_must_match() -> None:
    with pytest.raises(
        ShapeError, match=r"images to have shape \(n, 1, 8, 8\), but got shape \(2, 8, 8\)"
    ):
        validate_features(np.zeros((2, 8, 8)), name="images", input_shape=(1, 8, 8))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.array([[1, "a"]], dtype=object), "Python objects"),
        (np.array([["1", "2"]]), "strings"),
        (np.array([[b"1", b"2"]]), "bytes"),
        (np.ones((2, 2), dtype=complex), "complex"),
        (torch.ones(2, 2, dtype=torch.complex64), "real numbers"),
        ({"x": 1}, r"numpy.ndarray.*type=dict"),
        ([[1, 2], [3]], "ragged"),
    ],
)
def test_non_numeric_features_are_refused(value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        validate_features(value)


def test_values_outside_bounds_report_the_range() -> None:
    with pytest.raises(
        BoundsError, match=r"within bounds \[0, 1\], but its values range from -0.5 to 2"
    ):
        validate_features(np.array([[-0.5, 2.0]]), bounds=(0.0, 1.0))
    # float rounding of a clip is tolerated
    assert validate_features(np.array([[1.0 + 1e-7]]), bounds=(0.0, 1.0)).shape == (1, 1)


@pytest.mark.parametrize("bounds", [(1.0, 0.0), (0.0, float("nan")), (0.0,), "01", None])
def test_check_bounds_refuses_bad_pairs(bounds: object) -> None:
    with pytest.raises(ValidationError, match="bounds"):
        check_bounds("bounds", bounds)


def test_infer_bounds() -> None:
    assert infer_bounds(np.array([[0.2, 0.9]])) == (0.0, 1.0)
    assert infer_bounds(np.array([[-3.0, 7.5]])) == (-3.0, 7.5)
    assert infer_bounds(np.array([[4.0, 4.0]])) == (4.0, 5.0)


def test_labels_become_int64() -> None:
    out = validate_labels(np.array([0.0, 2.0, 1.0]), 3)
    assert out.dtype == np.int64
    assert out.tolist() == [0, 2, 1]
    assert validate_labels([1, 0], 2, num_classes=2).dtype == np.int64
    assert validate_labels(np.array([3], dtype=np.uint8), 1).tolist() == [3]


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "match"),
    [
        (np.array([0.0, 1.5]), {}, ValidationError, r"y\[1\]=.*1.5.* not a whole number"),
        (np.array([0.0, np.nan]), {}, ValidationError, "not a whole number"),
        (np.array([-1, 0]), {}, ValidationError, "labels >= 0, but got values from -1 to 0"),
        (
            np.array([0, 5]),
            {"num_classes": 3},
            ValidationError,
            r"labels in \[0, 2\], but got values from 0 to 5",
        ),
        (np.array([[0, 1]]), {}, ShapeError, r"shape \(2,\), but got shape \(1, 2\)"),
        (np.array([0, 1, 1]), {}, ShapeError, r"shape \(2,\), but got shape \(3,\)"),
        (np.array([True, False]), {}, ValidationError, "dtype=bool"),
        (np.array(["a", "b"]), {}, ValidationError, "strings"),
        (np.array([1, None], dtype=object), {}, ValidationError, "Python objects"),
    ],
)
def test_bad_labels(
    value: np.ndarray, kwargs: dict[str, int], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        validate_labels(value, 2, **kwargs)
