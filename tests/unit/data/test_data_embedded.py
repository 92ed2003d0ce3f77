"""The embedded data sets: shapes, dtypes, bounds and names users rely on."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.core.errors import ValidationError
from bastion.data import EMBEDDED, load_embedded

EXPECTED = {
    "digits": ((1797, 1, 8, 8), 10, None),
    "digits32": ((1797, 1, 32, 32), 10, None),
    "digits-features": ((1797, 64), 10, 64),
    "breast-cancer": ((569, 30), 2, 30),
    "wine": ((178, 13), 3, 13),
}


def test_embedded_names() -> None:
    assert set(EMBEDDED) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes_dtypes_bounds_and_names(name: str) -> None:
    shape, classes, features = EXPECTED[name]
    data = load_embedded(name)
    assert data.name == name
    assert data.x.shape == shape
    assert data.x.dtype == np.float32
    assert data.y.dtype == np.int64
    assert data.bounds == (0.0, 1.0)
    assert float(data.x.min()) == 0.0
    assert float(data.x.max()) == 1.0
    assert data.num_classes == classes
    assert sorted(set(data.y.tolist())) == list(range(classes))
    if features is None:
        assert data.feature_names is None
    else:
        assert data.feature_names is not None and len(data.feature_names) == features


def test_tabular_features_are_min_max_scaled_per_column() -> None:
    for name in ("breast-cancer", "wine"):
        x = load_embedded(name).x
        assert np.allclose(x.min(axis=0), 0.0)
        assert np.allclose(x.max(axis=0), 1.0)


def test_digits_images_are_pixels_over_16() -> None:
    images, flat = load_embedded("digits"), load_embedded("digits-features")
    assert np.array_equal(images.x.reshape(len(images), -1), flat.x)
    assert set(np.unique(images.x * 16).tolist()) <= set(range(17))
    assert images.class_names == tuple(str(i) for i in range(10))


def test_class_names() -> None:
    assert load_embedded("breast-cancer").class_names == ("malignant", "benign")
    assert load_embedded("wine").class_names == ("class_0", "class_1", "class_2")


def test_each_call_is_a_fresh_copy() -> None:
    first = load_embedded("wine")
    original = float(first.x[0, 0])
    first.x[0, 0] = original + 0.25
    assert float(load_embedded("wine").x[0, 0]) == original


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(
        ValidationError,
        match=r"one of 'digits', 'digits32', 'digits-features', 'breast-cancer', 'wine'",
    ):
        load_embedded("mnist")
