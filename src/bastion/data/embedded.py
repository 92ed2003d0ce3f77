"""Data sets that ship inside scikit-learn, so every command has a default with no download.

All of them are scaled into ``[0, 1]`` and declare ``bounds=(0, 1)``, the space attacks work in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import datasets as sk_datasets

from bastion.core.validation import check_choice, check_int, fail
from bastion.data.datasets import Dataset

__all__ = [
    "EMBEDDED",
    "load_breast_cancer",
    "load_digits_features",
    "load_digits_images",
    "load_digits_images_32",
    "load_embedded",
    "upsample_bilinear",
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


def _bilinear_weights(source: int, target: int) -> np.ndarray:
    """The ``(target, source)`` matrix of 1-D bilinear interpolation with half-pixel centres.

    Output pixel ``i`` samples the source at ``(i + 0.5) * source / target - 0.5``, clamped to
    the edge pixels (the convention of ``torch.nn.functional.interpolate`` with
    ``align_corners=False`` and of most image libraries); each row sums to 1.
    """
    position = (np.arange(target, dtype=np.float64) + 0.5) * (source / target) - 0.5
    position = np.clip(position, 0.0, source - 1)
    left = np.floor(position).astype(np.int64)
    right = np.minimum(left + 1, source - 1)
    frac = position - left
    weights = np.zeros((target, source), dtype=np.float64)
    rows = np.arange(target)
    np.add.at(weights, (rows, left), 1.0 - frac)
    np.add.at(weights, (rows, right), frac)
    return weights


def upsample_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinearly resize square images ``(n, c, h, h)`` to ``(n, c, size, size)``, float32.

    A fixed separable interpolation (see `_bilinear_weights`), computed in float64 with
    NumPy, so the result is the same on every machine and thread count. Every output pixel
    is a convex combination of input pixels, so values stay within the input's range.

    Raises:
        ValidationError: ``images`` is not a 4-D array of square images, or ``size`` is not
            a positive integer.
    """
    check_int("size", size, low=1)
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[2] != images.shape[3]:
        shape = getattr(images, "shape", type(images).__name__)
        raise fail("images", "a NumPy array of square images (n, c, h, h)", shape)
    weights = _bilinear_weights(int(images.shape[2]), size)
    resized = np.einsum("ih,nchw,jw->ncij", weights, images.astype(np.float64), weights)
    # a convex combination cannot leave the input's range; clipping removes rounding only
    out: np.ndarray = np.clip(resized, images.min(), images.max()).astype(np.float32)
    return out


def load_digits_images_32() -> Dataset:
    """The 8x8 digits of `load_digits_images` upsampled bilinearly to 32x32: ``(n, 1, 32, 32)``.

    Same samples, labels and order; values stay in ``[0, 1]``. Returns a `Dataset` named
    ``"digits32"``. Made for benchmarks and models that need larger inputs than 8x8.
    """
    digits = load_digits_images()
    return Dataset(
        x=upsample_bilinear(digits.x, 32),
        y=digits.y,
        name="digits32",
        bounds=(0.0, 1.0),
        class_names=_DIGIT_NAMES,
    )


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
    "digits32": load_digits_images_32,
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
