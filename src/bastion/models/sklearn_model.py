"""Adapter for a fitted scikit-learn classifier (and XGBoost or LightGBM through their sklearn API).

The estimator is duck-typed: anything with ``classes_`` and ``predict``, ``predict_proba`` or
``decision_function`` works. Access follows what the estimator exposes: ``predict_proba``
gives probability scores, ``decision_function`` gives raw scores, ``predict`` alone gives
labels only. No gradients: tree ensembles have none, and an attacker of a deployed
scikit-learn model would not see them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bastion.core.errors import AccessError, ValidationError
from bastion.core.threat_model import Access
from bastion.core.validation import describe, fail
from bastion.models._common import check_score_array
from bastion.models.base import BaseModel
from bastion.models.counter import QueryCounter

__all__ = ["SklearnModel"]


def _has(obj: Any, name: str) -> bool:
    # scikit-learn's ``available_if`` makes hasattr() evaluate a condition, which may raise
    try:
        return callable(getattr(obj, name, None))
    except Exception:
        return False


def _fitted_classes(estimator: Any) -> np.ndarray:
    """Return the estimator's ``classes_``; raise `ValidationError` if it is not fitted."""
    try:
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        pass
    else:
        try:
            check_is_fitted(estimator)
        except NotFittedError as exc:
            raise ValidationError(
                f"Expected estimator to be fitted, but {type(estimator).__name__} is not; "
                "call its fit() first"
            ) from exc
        except TypeError:
            pass  # not a scikit-learn estimator (no fit method): duck-typing decides below
    try:
        classes = estimator.classes_
    except Exception as exc:
        raise ValidationError(
            "Expected estimator to be a fitted classifier with classes_, but "
            f"{type(estimator).__name__} has none (is it fitted? is it a regressor?)"
        ) from exc
    array = np.asarray(classes)
    if array.ndim != 1 or array.shape[0] < 2:
        raise fail("estimator.classes_", "a 1-D array of at least 2 classes", classes)
    if len(set(array.tolist())) != array.shape[0]:
        raise fail("estimator.classes_", "distinct classes", classes)
    return array


class SklearnModel(BaseModel):
    """Wrap a fitted classifier with a scikit-learn interface.

    Labels are class *indices* ``0..k-1`` in the order of the estimator's ``classes_`` (kept
    in `classes_`), so ``"cat"``/``"dog"`` become 0/1. Inputs of more than one dimension
    (``input_shape=(1, 8, 8)``) are flattened to ``(n, features)`` before the estimator
    sees them.

    Args:
        estimator: a fitted classifier; unfitted ones are refused.
        input_shape: one sample's shape; defaults to ``(n_features_in_,)``.
        bounds: valid input range.
        batch_size, budget, counter: see `BaseModel`.

    Attributes:
        estimator: the wrapped estimator (never modified).
        classes_: the estimator's classes; label ``i`` means ``classes_[i]``.
        access: ``scores`` with ``predict_proba`` or ``decision_function``, else ``labels``.
        scores_are_probabilities: True when scores come from ``predict_proba``.
    """

    def __init__(
        self,
        estimator: Any,
        *,
        input_shape: Sequence[int] | None = None,
        bounds: tuple[float, float] = (0.0, 1.0),
        batch_size: int = 256,
        budget: int | None = None,
        counter: QueryCounter | None = None,
    ) -> None:
        classes = _fitted_classes(estimator)
        if _has(estimator, "predict_proba"):
            self._method: str | None = "predict_proba"
            access, probabilities = Access.SCORES, True
        elif _has(estimator, "decision_function"):
            self._method = "decision_function"
            access, probabilities = Access.SCORES, False
        elif _has(estimator, "predict"):
            self._method = None
            access, probabilities = Access.LABELS, False
        else:
            raise fail(
                "estimator",
                "a classifier with predict, predict_proba or decision_function",
                estimator,
            )
        if (
            self._method == "decision_function"
            and classes.shape[0] > 2
            and getattr(estimator, "decision_function_shape", "ovr") == "ovo"
        ):
            raise ValidationError(
                "Expected estimator to give one decision score per class, but it uses "
                "decision_function_shape='ovo'; refit with decision_function_shape='ovr'"
            )
        n_features = self._n_features(estimator)
        if input_shape is None:
            if n_features is None:
                raise ValidationError(
                    "Expected input_shape, because the estimator does not record n_features_in_"
                )
            input_shape = (n_features,)
        super().__init__(
            input_shape=tuple(input_shape) if isinstance(input_shape, list) else input_shape,  # type: ignore[arg-type]
            num_classes=classes.shape[0],
            bounds=bounds,
            batch_size=batch_size,
            budget=budget,
            counter=counter,
        )
        features = int(np.prod(self.input_shape))
        if n_features is not None and features != n_features:
            raise ValidationError(
                f"Expected input_shape to hold {n_features} features (the estimator's "
                f"n_features_in_), but {describe('input_shape', self.input_shape)} holds {features}"
            )
        self.estimator = estimator
        self.classes_ = classes
        self.access = access
        self.scores_are_probabilities = probabilities
        self._index = {c: i for i, c in enumerate(classes.tolist())}

    @staticmethod
    def _n_features(estimator: Any) -> int | None:
        try:
            n = getattr(estimator, "n_features_in_", None)
        except Exception:
            return None
        if n is None or isinstance(n, bool):
            return None
        try:
            return int(n)
        except (TypeError, ValueError):
            return None

    def _features(self, x: torch.Tensor) -> np.ndarray:
        return x.detach().cpu().reshape(x.shape[0], -1).numpy().astype(np.float64)

    def _call(self, method: str, x: torch.Tensor) -> Any:
        with warnings.catch_warnings():
            # fitted on a DataFrame, asked with an array: harmless, and noisy on every query
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return getattr(self.estimator, method)(self._features(x))

    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        if self._method is None:
            raise AccessError("scores need 'scores' access, but this model grants only 'labels'")
        n, k = x.shape[0], self.num_classes
        raw = np.asarray(self._call(self._method, x))
        if self._method == "decision_function" and k == 2 and raw.shape in ((n,), (n, 1)):
            # binary: one signed distance for the positive class; make it two symmetric scores
            d = raw.reshape(n).astype(np.float64)
            raw = np.stack([-d, d], axis=1)
        what = f"the estimator's {self._method}"
        scores = check_score_array(what, raw, n, k)
        return torch.from_numpy(scores).to(torch.float32)

    def _labels_batch(self, x: torch.Tensor) -> torch.Tensor:
        if not _has(self.estimator, "predict"):
            return self._scores_batch(x).argmax(dim=1)
        predicted = np.asarray(self._call("predict", x))
        n = x.shape[0]
        if predicted.ndim == 2 and predicted.shape[1] == 1:
            predicted = predicted[:, 0]
        if predicted.shape != (n,):
            raise ValidationError(
                f"Expected the estimator's predict to return shape ({n},), "
                f"but got shape {predicted.shape}"
            )
        indices = [self._index.get(value, -1) for value in predicted.tolist()]
        if -1 in indices:
            unknown = predicted[indices.index(-1)]
            raise ValidationError(
                f"Expected the estimator's predict to return one of classes_, but got {unknown!r}"
            )
        return torch.tensor(indices, dtype=torch.int64, device="cpu")
