"""The 32x32 digits and the wider CNN trained on them: upsampling, accuracy, cache, determinism.

The full recipe trains once per session, into the shared ``zoo_cache``; the determinism test
trains a two-epoch variant of the same recipe on 400 of the digits twice, which exercises the
same upsampling, weight initialisation, shuffling and learning-rate schedule in seconds.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bastion.data.zoo as zoo_module
from bastion.core.errors import ValidationError
from bastion.data import (
    WideDigitsCNN,
    ZooEntry,
    load_digits_images,
    load_digits_images_32,
    load_embedded,
    load_zoo_model,
    upsample_bilinear,
)

NAME = "digits32-cnn"


@pytest.fixture(scope="module")
def entry(zoo_cache: Path) -> ZooEntry:
    """The wider CNN, trained at most once per session (later loads read the cache)."""
    return load_zoo_model(NAME, cache_dir=zoo_cache)


def test_upsampling_is_torch_bilinear_with_half_pixel_centres() -> None:
    small = load_digits_images()
    large = load_digits_images_32()
    reference = F.interpolate(
        torch.from_numpy(small.x), size=32, mode="bilinear", align_corners=False
    ).numpy()
    np.testing.assert_allclose(large.x, reference, atol=1e-6)
    assert large.x.shape == (1797, 1, 32, 32) and large.x.dtype == np.float32
    assert np.array_equal(large.y, small.y)
    assert large.name == "digits32" and large.bounds == (0.0, 1.0)
    assert float(large.x.min()) == 0.0 and float(large.x.max()) == 1.0
    assert np.array_equal(load_embedded("digits32").x, large.x)  # same bytes on every call


def test_upsampling_keeps_constant_images_constant_and_checks_its_arguments() -> None:
    flat = np.full((2, 3, 4, 4), 0.25, dtype=np.float32)
    out = upsample_bilinear(flat, 9)
    assert out.shape == (2, 3, 9, 9) and np.all(out == np.float32(0.25))
    same = upsample_bilinear(flat[:, :1] + np.arange(4, dtype=np.float32), 4)
    assert np.array_equal(same, flat[:, :1] + np.arange(4, dtype=np.float32))  # identity size
    with pytest.raises(ValidationError, match="size"):
        upsample_bilinear(flat, 0)
    with pytest.raises(ValidationError, match="square images"):
        upsample_bilinear(np.zeros((2, 1, 4, 5), dtype=np.float32), 8)
    with pytest.raises(ValidationError, match="square images"):
        upsample_bilinear(np.zeros((4, 4), dtype=np.float32), 8)


def test_the_wider_cnn_reaches_97_percent_on_held_out_digits(entry: ZooEntry) -> None:
    assert entry.test_accuracy >= 0.97
    assert isinstance(entry.model, WideDigitsCNN) and not entry.model.training
    assert entry.input_shape == (1, 32, 32) and entry.num_classes == 10
    assert (len(entry.train), len(entry.test)) == (1347, 450)
    assert entry.mean is not None and entry.std is not None
    x = (torch.from_numpy(entry.test.x) - entry.mean[0]) / entry.std[0]
    with torch.no_grad():
        measured = float((entry.model(x).argmax(1).numpy() == entry.test.y).mean())
    assert measured == pytest.approx(entry.test_accuracy)


def test_same_split_as_the_8x8_model(entry: ZooEntry, digits_entry: ZooEntry) -> None:
    assert np.array_equal(entry.test.y, digits_entry.test.y)
    expected = upsample_bilinear(digits_entry.test.x, 32)
    assert np.array_equal(entry.test.x, expected)


def test_reloads_from_the_sha256_checked_safetensors_cache(
    entry: ZooEntry, zoo_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert entry.cache_path == zoo_cache / "zoo" / f"{NAME}.safetensors"
    record = json.loads((zoo_cache / "zoo" / f"{NAME}.json").read_text())
    assert record["architecture"] == "WideDigitsCNN"
    assert record["test_accuracy"] == pytest.approx(entry.test_accuracy)

    def no_training(*args: Any) -> None:
        raise AssertionError("the cached weights should have been read, not retrained")

    monkeypatch.setattr(zoo_module, "_fit", no_training)
    again = load_zoo_model(NAME, cache_dir=zoo_cache)
    assert again.model is not entry.model
    state, again_state = entry.model.state_dict(), again.model.state_dict()
    assert state.keys() == again_state.keys()
    assert all(torch.equal(state[k], again_state[k]) for k in state)
    assert again.test_accuracy == entry.test_accuracy


def test_training_is_deterministic_and_leaves_the_global_rng_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = dataclasses.replace(
        zoo_module._TORCH[NAME], epochs=2, data=lambda: load_digits_images_32().take(400, seed=0)
    )
    monkeypatch.setitem(zoo_module._TORCH, NAME, short)
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    first = load_zoo_model(NAME, cache_dir=tmp_path / "a")
    assert torch.equal(torch.get_rng_state(), before)
    second = load_zoo_model(NAME, cache_dir=tmp_path / "b")
    assert first.cache_path is not None and second.cache_path is not None
    assert first.cache_path.read_bytes() == second.cache_path.read_bytes()
    assert first.test_accuracy == second.test_accuracy
    assert first.test_accuracy > 0.2  # twice chance after two short epochs: it really trained
