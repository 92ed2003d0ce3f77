"""A pickle-based model is served only with the operator's consent and a clean scan."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from bastion.core.errors import UnsafeFileError
from bastion.gateway import GatewaySettings, load_served


class _Payload:
    """Unpickling this would create ``trace`` (it must never happen)."""

    def __init__(self, trace: Path) -> None:
        self.trace = trace

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.trace}",))


@pytest.fixture(scope="module")
def classifier() -> LogisticRegression:
    x, y = load_digits(return_X_y=True)
    return LogisticRegression(max_iter=200).fit(x[:400] / 16.0, y[:400])


def test_a_trusted_pickle_the_scanner_passes_is_served(
    tmp_path: Path, classifier: LogisticRegression
) -> None:
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(classifier, protocol=4))
    served = load_served(GatewaySettings(model=str(path), trust_pickle=True))
    assert served.model.num_classes == 10


def test_a_trusted_pickle_with_a_payload_is_refused_unopened(tmp_path: Path) -> None:
    trace = tmp_path / "ran"
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(_Payload(trace), protocol=4))
    with pytest.raises(UnsafeFileError, match=r"scanner found 1 issue\(s\), the worst dangerous"):
        load_served(GatewaySettings(model=str(path), trust_pickle=True))
    assert not trace.exists()


def test_a_trusted_pickle_the_scanner_cannot_parse_is_refused(
    tmp_path: Path, classifier: LogisticRegression
) -> None:
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(classifier, protocol=4)[:-40])  # truncated
    with pytest.raises(UnsafeFileError, match="unparseable"):
        load_served(GatewaySettings(model=str(path), trust_pickle=True))


def test_a_clean_pickle_still_needs_consent(tmp_path: Path, classifier: LogisticRegression) -> None:
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(classifier, protocol=4))
    with pytest.raises(UnsafeFileError, match="trust-pickle"):
        load_served(GatewaySettings(model=str(path)))
