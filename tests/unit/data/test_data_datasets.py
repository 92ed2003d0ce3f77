"""Dataset: validation on creation, stratified deterministic splits, take, batches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bastion.core.errors import BoundsError, NonFiniteError, ShapeError, ValidationError
from bastion.data import Dataset


def _data(n_per_class: tuple[int, ...] = (40, 20, 10)) -> Dataset:
    y = np.concatenate([np.full(k, c) for c, k in enumerate(n_per_class)])
    # feature 0 is a unique row id, so subsets can be traced back to the original rows
    x = np.stack([np.arange(len(y)) / len(y), np.linspace(0, 1, len(y))], axis=1)
    return Dataset(x=x, y=y, name="toy", class_names=("a", "b", "c"), feature_names=("id", "f"))


def _ids(data: Dataset) -> list[int]:
    return np.rint(data.x[:, 0] * 70).astype(int).tolist()


def test_fields_are_converted_and_described() -> None:
    data = _data()
    assert data.x.dtype == np.float32
    assert data.y.dtype == np.int64
    assert len(data) == 70
    assert data.input_shape == (2,)
    assert data.num_classes == 3
    assert data.bounds == (0.0, 1.0)
    assert "n=70" in repr(data)


def test_class_names_default_to_label_indices() -> None:
    data = Dataset(x=np.zeros((3, 1)), y=[0, 3, 1])
    assert data.class_names == ("0", "1", "2", "3")
    assert data.num_classes == 4


def test_dataset_is_frozen() -> None:
    data = _data()
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": np.full((2, 2), np.nan)}, NonFiniteError, "2 of 2 rows"),
        ({"x": np.full((2, 2), 3.0)}, BoundsError, "from 3 to 3"),
        ({"x": np.zeros((2, 2)), "bounds": (1, 0)}, ValidationError, "low < high"),
        ({"y": [0, 1, 1]}, ShapeError, r"shape \(2,\)"),
        ({"y": [0, 2], "class_names": ("a", "b")}, ValidationError, r"labels in \[0, 1\]"),
        ({"class_names": "ab"}, ValidationError, "tuple of strings"),
        ({"feature_names": ("only-one",)}, ValidationError, "2 names .* but got 1"),
        ({"name": 3}, ValidationError, "name"),
    ],
)
def test_invalid_datasets_are_refused(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"x": np.zeros((2, 2)), "y": [0, 1]}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        Dataset(**args)  # type: ignore[arg-type]


def test_split_is_stratified_disjoint_and_complete() -> None:
    data = _data()
    train, test = data.split(test_fraction=0.3, seed=0)
    assert (len(train), len(test)) == (49, 21)
    assert np.bincount(test.y).tolist() == [12, 6, 3]
    assert np.bincount(train.y).tolist() == [28, 14, 7]
    assert sorted(_ids(train) + _ids(test)) == list(range(70))
    assert (train.name, test.name) == ("toy/train", "toy/test")
    assert train.class_names == data.class_names
    assert test.feature_names == ("id", "f")


def test_split_is_deterministic_per_seed() -> None:
    data = _data()
    first, again, other = data.split(seed=0), data.split(seed=0), data.split(seed=1)
    assert _ids(first[1]) == _ids(again[1])
    assert _ids(first[1]) != _ids(other[1])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, float("nan"), "0.2"])
def test_split_refuses_bad_fractions(fraction: object) -> None:
    with pytest.raises(ValidationError, match="test_fraction"):
        _data().split(test_fraction=fraction)  # type: ignore[arg-type]


def test_split_refuses_a_class_with_one_sample() -> None:
    with pytest.raises(ValidationError, match=r"classes \['c'\] hold only one"):
        _data((5, 5, 1)).split()


def test_split_refuses_a_test_set_smaller_than_the_classes() -> None:
    with pytest.raises(ValidationError, match="one sample per class"):
        _data((10, 10, 10)).split(test_fraction=0.05)


def test_take_first_and_seeded_subsets() -> None:
    data = _data()
    assert _ids(data.take(5)) == [0, 1, 2, 3, 4]
    subset = data.take(10, seed=3)
    assert _ids(subset) == _ids(data.take(10, seed=3))
    assert _ids(subset) == sorted(_ids(subset))
    assert len(set(_ids(subset))) == 10
    assert _ids(subset) != _ids(data.take(10, seed=4))
    assert len(data.take(1000)) == 70
    with pytest.raises(ValidationError, match="n to be an int >= 1"):
        data.take(0)


def test_batches_cover_everything_in_order() -> None:
    data = _data()
    chunks = list(data.batches(32))
    assert [len(x) for x, _ in chunks] == [32, 32, 6]
    assert np.array_equal(np.concatenate([x for x, _ in chunks]), data.x)
    assert np.array_equal(np.concatenate([y for _, y in chunks]), data.y)
    with pytest.raises(ValidationError, match="batch_size"):
        data.batches(0)  # refused at the call, not at the first next()
