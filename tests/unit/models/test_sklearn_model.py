"""SklearnModel: access from what the estimator exposes, class indices, unfitted refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier

from bastion.core.errors import AccessError, ValidationError
from bastion.core.threat_model import Access
from bastion.models import SklearnModel


class LabelsOnly:
    """A duck-typed classifier with predict alone: labels are 'low'/'high' by feature sum."""

    classes_ = np.array(["high", "low"])
    n_features_in_ = 4

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.where(x.sum(axis=1) > 2.0, "high", "low")


def test_predict_proba_gives_probability_scores(logreg: LogisticRegression, data: tuple) -> None:
    x, _ = data
    model = SklearnModel(logreg)
    assert (model.access, model.scores_are_probabilities) == (Access.SCORES, True)
    assert (model.input_shape, model.num_classes) == ((4,), 3)
    scores = model.scores(x[:10])
    assert scores.dtype == torch.float32
    np.testing.assert_allclose(scores.numpy(), logreg.predict_proba(x[:10]), rtol=1e-5)
    assert model.labels(x[:10]).tolist() == logreg.predict(x[:10]).tolist()
    assert model.counter.count == 20


def test_binary_decision_function_becomes_two_scores(data: tuple) -> None:
    x, y = data
    svm = LinearSVC().fit(x, y > 0)
    model = SklearnModel(svm)
    assert (model.access, model.scores_are_probabilities) == (Access.SCORES, False)
    scores = model.scores(x[:5])
    d = svm.decision_function(x[:5])
    np.testing.assert_allclose(scores.numpy(), np.stack([-d, d], axis=1), rtol=1e-5)
    assert model.labels(x[:5]).tolist() == svm.predict(x[:5]).astype(int).tolist()


def test_multiclass_decision_function(data: tuple) -> None:
    x, y = data
    model = SklearnModel(LinearSVC().fit(x, y))
    assert model.scores(x[:5]).shape == (5, 3)


def test_ovo_decision_function_refused(data: tuple) -> None:
    x, y = data
    with pytest.raises(ValidationError, match="ovo"):
        SklearnModel(SVC(decision_function_shape="ovo").fit(x, y))


def test_labels_only_estimator_with_string_classes() -> None:
    model = SklearnModel(LabelsOnly())
    assert model.access is Access.LABELS
    assert model.classes_.tolist() == ["high", "low"]
    x = torch.tensor([[0.9] * 4, [0.1] * 4])
    assert model.labels(x).tolist() == [0, 1]  # indices into classes_
    with pytest.raises(AccessError, match="grants only 'labels'"):
        model.scores(x)
    assert model.counter.count == 2


def test_string_classes_with_predict_proba(data: tuple) -> None:
    x, y = data
    names = np.array(["cat", "dog", "emu"])[y]
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, names)
    model = SklearnModel(tree)
    assert model.classes_.tolist() == ["cat", "dog", "emu"]
    labels = model.labels(x[:20])
    assert model.classes_[labels.numpy()].tolist() == tree.predict(x[:20]).tolist()


def test_images_are_flattened(data: tuple) -> None:
    x, y = data
    model = SklearnModel(LogisticRegression().fit(x, y), input_shape=(1, 2, 2))
    images = torch.from_numpy(x[:3]).float().reshape(3, 1, 2, 2)
    assert model.scores(images).shape == (3, 3)
    with pytest.raises(ValidationError, match="4 features"):
        SklearnModel(LogisticRegression().fit(x, y), input_shape=(1, 3, 3))


def test_unfitted_and_non_classifiers_refused(data: tuple) -> None:
    with pytest.raises(ValidationError, match=r"is not; call its fit"):
        SklearnModel(LogisticRegression())
    x, y = data
    with pytest.raises(ValidationError, match="classes_"):
        SklearnModel(LinearRegression().fit(x, y))
    with pytest.raises(ValidationError, match="classes_"):
        SklearnModel(object())


def test_input_shape_needed_without_n_features_in() -> None:
    class NoFeatures(LabelsOnly):
        n_features_in_ = None

    with pytest.raises(ValidationError, match="input_shape"):
        SklearnModel(NoFeatures())
    assert SklearnModel(NoFeatures(), input_shape=(4,)).input_shape == (4,)


def test_estimator_answering_unknown_class_is_reported() -> None:
    class Liar(LabelsOnly):
        def predict(self, x: np.ndarray) -> np.ndarray:
            return np.array(["??"] * len(x))

    with pytest.raises(ValidationError, match="one of classes_"):
        SklearnModel(Liar()).labels(torch.zeros(2, 4))


def test_no_feature_name_warning_and_estimator_untouched(data: tuple) -> None:
    x, y = data
    est = LogisticRegression().fit(x, y)
    est.feature_names_in_ = np.array(["a", "b", "c", "d"], dtype=object)
    coef = est.coef_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SklearnModel(est).scores(x[:3])
    assert np.array_equal(est.coef_, coef)
