"""Fixtures of the scanner tests: a marker file that must never appear."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from scan_payloads import Evil


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """Where a payload would leave its trace; asserted absent after each test."""
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a scanned payload ran"


@pytest.fixture
def evil_pickle(marker: Path) -> Callable[[int], bytes]:
    """``evil_pickle(protocol)`` -> a pickle that would run ``touch marker``."""
    return lambda protocol: pickle.dumps(Evil(marker), protocol=protocol)
