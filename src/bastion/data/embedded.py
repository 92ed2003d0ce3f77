"""Data sets that ship inside scikit-learn, so every command has a default with no download.

All of them are scaled into ``[0, 1]`` and declare ``bounds=(0, 1)``, the space attacks work in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import datasets as sk_datasets

from bastion.core.validation import check_choice
from bastion.data.datasets import Dataset

__all__ = [
    "EMBEDDED",
    "load_breast_cancer",
    "load_digits_features",
    "load_digits_images",
    "load_embedded",
    "load_wine",
]

_DIGIT_NAMES = tuple(str(i) for i in range(10))


def _min_max(x: np.ndarray) -> np.ndarray:
    """Scale each column to ``[0, 1]`` over all rows; a constant column becomes 0."""
    x = np.asarray(x, dtype=np.float64)
    low = x.min(axis=0)
    span = x.max(axis=0) - low
    span[span == 0] = 1.0
    scaled: np.ndarray = np.clip((x - low) / span, 0.0, 1.0).astype(np.float32)
    return scaled


def load_digits_images() -> Dataset:
    """The 1,797 handwritten 8x8 digits as images: ``x`` of shape ``(n, 1, 8, 8)``.

    Pixel intensities (0 to 16 in the source) are divided by 16, so they lie in ``[0, 1]``.
    Returns a `Dataset` named ``"digits"`` with classes ``"0"`` to ``"9"``.
    """
    raw = sk_datasets.load_digits()
    x = (np.asarray(raw.images, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return Dataset(x=x, y=raw.target, name="digits", bounds=(0.0, 1.0), class_names=_DIGIT_NAMES)


def load_digits_features() -> Dataset:
    """The same digits flattened to 64 features in ``[0, 1]``: ``x`` of shape ``(n, 64)``.

    Feature ``pixel_r_c`` is the pixel in row ``r``, column ``c``. Returns a `Dataset` named
    ``"digits-features"``.
    """
    raw = sk_datasets.load_digits()
    x = np.asarray(raw.data, dtype=np.float32) / 16.0
    names = tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8))
    return Dataset(
        x=x,
        y=raw.target,
        name="digits-features",
        bounds=(0.0, 1.0),
        class_names=_DIGIT_NAMES,
        feature_names=names,
    )


def load_breast_cancer() -> Dataset:
    """The Wisconsin breast-cancer data: 569 tumours, 30 features, ``malignant``/``benign``.

    Each feature is min-max scaled to ``[0, 1]`` over the *whole* data set (train and test
    together), so bounds of ``(0, 1)`` are the feature ranges observed in the data. This
    leaks the test set's range into the scaling, which is harmless for a demo and keeps one
    fixed input space for attacks. Returns a `Dataset` named ``"breast-cancer"``.
    """
    raw = sk_datasets.load_breast_cancer()
    return Dataset(
        x=_min_max(raw.data),
        y=raw.target,
        name="breast-cancer",
        bounds=(0.0, 1.0),
        class_names=tuple(str(c) for c in raw.target_names),
        feature_names=tuple(str(f) for f in raw.feature_names),
    )


def load_wine() -> Dataset:
    """The wine-recognition data: 178 wines, 13 chemical features, three cultivars.

    Features are min-max scaled to ``[0, 1]`` over the whole data set, as for
    `load_breast_cancer`. Returns a `Dataset` named ``"wine"``.
    """
    raw = sk_datasets.load_wine()
    return Dataset(
        x=_min_max(raw.data),
        y=raw.target,
        name="wine",
        bounds=(0.0, 1.0),
        class_names=tuple(str(c) for c in raw.target_names),
        feature_names=tuple(str(f) for f in raw.feature_names),
    )


_LOADERS: dict[str, Callable[[], Dataset]] = {
    "digits": load_digits_images,
    "digits-features": load_digits_features,
    "breast-cancer": load_breast_cancer,
    "wine": load_wine,
}

EMBEDDED: tuple[str, ...] = tuple(_LOADERS)
"""The names `load_embedded` accepts."""


def load_embedded(name: str) -> Dataset:
    """Load the embedded data set called ``name`` (one of `EMBEDDED`); each call is a fresh copy.

    Raises:
        ValidationError: ``name`` is not one of `EMBEDDED`; the message lists them.
    """
    check_choice("name", name, EMBEDDED)
    return _LOADERS[name]()
