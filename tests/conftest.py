"""Shared fixtures: the embedded digits CNN, trained once per session into a private cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bastion.data import load_zoo_model
from bastion.data.zoo import ZooEntry
from bastion.models import TorchModel


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One zoo cache for the whole session, so each model trains once."""
    return tmp_path_factory.mktemp("zoo-cache")


@pytest.fixture(scope="session")
def digits_entry(zoo_cache: Path) -> ZooEntry:
    """The embedded digits CNN with its train/test splits."""
    return load_zoo_model("digits-cnn", cache_dir=zoo_cache)


@pytest.fixture()
def digits_model(digits_entry: ZooEntry) -> Iterator[TorchModel]:
    """A fresh adapter (fresh query counter) over the digits CNN."""
    yield TorchModel(digits_entry.model, **digits_entry.adapter_options())


@pytest.fixture()
def digits_batch(digits_entry: ZooEntry) -> tuple[torch.Tensor, torch.Tensor]:
    """64 held-out digits and their labels."""
    test = digits_entry.test
    return torch.from_numpy(test.x[:64]), torch.from_numpy(test.y[:64])
