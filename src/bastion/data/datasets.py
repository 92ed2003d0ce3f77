"""`Dataset`: labelled samples with their input bounds and names, validated once on creation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from bastion.core.errors import ValidationError
from bastion.core.validation import check_int, check_number, check_type, fail
from bastion.data.validation import check_bounds, validate_features, validate_labels

__all__ = ["Dataset"]


def _names(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise fail(name, "a tuple of strings", value)
    for i, item in enumerate(value):
        check_type(f"{name}[{i}]", item, str)
    return tuple(value)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Labelled samples for one classification task.

    The arrays are validated and converted on creation; a `Dataset` never holds NaN, labels
    outside its classes, or values outside its bounds.

    Attributes:
        x: the inputs, float32 of shape ``(n, *input_shape)``, e.g. ``(n, 1, 8, 8)`` for
            images (channels first) or ``(n, d)`` for tabular data.
        y: the class index of each sample, int64 of shape ``(n,)``.
        name: a short name for reports, e.g. ``"digits"`` or ``"digits/test"``.
        bounds: the valid input range ``(low, high)``; every value of ``x`` lies inside it.
        class_names: one name per class, index ``i`` naming class ``i``; defaults to
            ``("0", "1", ...)`` up to the largest label.
        feature_names: one name per feature of a tabular data set, or None.
    """

    x: np.ndarray
    y: np.ndarray
    name: str = "data"
    bounds: tuple[float, float] = (0.0, 1.0)
    class_names: tuple[str, ...] = ()
    feature_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_type("name", self.name, str)
        bounds = check_bounds("bounds", self.bounds)
        x = validate_features(self.x, name="x", bounds=bounds)
        if self.class_names:
            class_names = _names("class_names", self.class_names)
            y = validate_labels(self.y, len(x), name="y", num_classes=len(class_names))
        else:
            y = validate_labels(self.y, len(x), name="y")
            class_names = tuple(str(i) for i in range(int(y.max()) + 1))
        features = self.feature_names
        if features is not None:
            features = _names("feature_names", features)
            per_sample = int(np.prod(x.shape[1:]))
            if len(features) != per_sample:
                raise ValidationError(
                    f"Expected feature_names to hold {per_sample} names (one per feature of "
                    f"input_shape {x.shape[1:]}), but got {len(features)}"
                )
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "class_names", class_names)
        object.__setattr__(self, "feature_names", features)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n={len(self)}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, bounds={self.bounds})"
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample, without the batch dimension."""
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        """How many classes the data set names (some may have no sample in a subset)."""
        return len(self.class_names)

    def _subset(self, index: np.ndarray, name: str) -> Dataset:
        return Dataset(
            x=self.x[index],
            y=self.y[index],
            name=name,
            bounds=self.bounds,
            class_names=self.class_names,
            feature_names=self.feature_names,
        )

    def split(self, test_fraction: float = 0.25, seed: int = 0) -> tuple[Dataset, Dataset]:
        """Split into ``(train, test)``, stratified by class and deterministic for a ``seed``.

        Each class keeps its share in both parts (scikit-learn's ``train_test_split``), so
        every class needs at least two samples. Returns two new data sets named
        ``"<name>/train"`` and ``"<name>/test"``; this one is unchanged.
        """
        fraction = check_number(
            "test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True
        )
        check_int("seed", seed, low=0, high=2**32 - 1)
        counts = np.bincount(self.y, minlength=self.num_classes)
        present = counts[counts > 0]
        if present.min() < 2:
            rare = [self.class_names[i] for i in np.flatnonzero(counts == 1)]
            raise ValidationError(
                f"Expected every class of {self.name!r} to hold at least 2 samples for a "
                f"stratified split, but classes {rare} hold only one"
            )
        n_test = int(np.ceil(fraction * len(self)))
        if n_test < len(present) or len(self) - n_test < len(present):
            raise ValidationError(
                f"Expected test_fraction to leave at least one sample per class ({len(present)}) "
                f"on both sides of the split, but test_fraction={fraction:g} of {len(self)} "
                f"samples gives {n_test} test samples"
            )
        index = np.arange(len(self))
        train, test = train_test_split(
            index, test_size=fraction, random_state=seed, stratify=self.y
        )
        return (
            self._subset(np.sort(train), f"{self.name}/train"),
            self._subset(np.sort(test), f"{self.name}/test"),
        )

    def take(self, n: int, seed: int | None = None) -> Dataset:
        """Return at most ``n`` samples: the first ``n``, or with a ``seed`` a random subset.

        The random subset is drawn without replacement and keeps the original order. When the
        data set holds fewer than ``n`` samples, all of them are returned.
        """
        count = min(check_int("n", n, low=1), len(self))
        if seed is None:
            index = np.arange(count)
        else:
            check_int("seed", seed, low=0)
            rng = np.random.default_rng(seed)
            index = np.sort(rng.choice(len(self), size=count, replace=False))
        return self._subset(index, self.name)

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(x, y)`` chunks of at most ``batch_size`` samples, in order.

        The chunks are views into this data set's arrays, not copies.
        """
        size = check_int("batch_size", batch_size, low=1)  # checked now, not at the first next()
        return ((self.x[i : i + size], self.y[i : i + size]) for i in range(0, len(self), size))
