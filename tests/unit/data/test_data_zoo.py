"""The model zoo: accuracy floors, the safetensors cache, determinism, RNG hygiene.

The three models train once into a module-scoped cache; the tests that need a retrain use
cancer-mlp, which trains in well under a second.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy
import torch
from torch import nn

import bastion.data.zoo as zoo_module
from bastion.core.errors import ValidationError
from bastion.data import ZOO, CancerMLP, DigitsCNN, ZooEntry, load_zoo_model, zoo_cache_dir

FLOORS = {"digits-cnn": 0.95, "cancer-mlp": 0.93, "cancer-gbm": 0.92}
TESTED_ELSEWHERE = {"digits32-cnn"}  # its own file, test_zoo_digits32.py, trains it once


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bastion-cache")


@pytest.fixture(scope="module")
def cold(cache: Path) -> dict[str, tuple[ZooEntry, float]]:
    """Each zoo model loaded once into an empty cache, with the seconds it took."""
    out = {}
    for name in FLOORS:
        start = time.perf_counter()
        entry = load_zoo_model(name, cache_dir=cache, retrain=True)
        out[name] = (entry, time.perf_counter() - start)
    return out


@pytest.fixture()
def count_fits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every torch training run."""
    calls: list[str] = []
    original: Callable[..., None] = zoo_module._fit

    def counting(recipe: Any, *args: Any) -> None:
        calls.append(recipe.architecture)
        original(recipe, *args)

    monkeypatch.setattr(zoo_module, "_fit", counting)
    return calls


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_zoo_names() -> None:
    assert set(ZOO) == set(FLOORS) | TESTED_ELSEWHERE


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_each_model_reaches_its_accuracy_floor(
    cold: dict[str, tuple[ZooEntry, float]], name: str
) -> None:
    entry, _ = cold[name]
    assert entry.test_accuracy >= FLOORS[name]
    if entry.framework == "torch":
        assert isinstance(entry.model, nn.Module)
        x = (torch.from_numpy(entry.test.x) - _stat(entry.mean, entry)) / _stat(entry.std, entry)
        with torch.no_grad():
            measured = float((entry.model(x).argmax(1).numpy() == entry.test.y).mean())
    else:
        measured = float((entry.model.predict(entry.test.x) == entry.test.y).mean())
    assert measured == pytest.approx(entry.test_accuracy)


def _stat(values: tuple[float, ...] | None, entry: ZooEntry) -> torch.Tensor:
    assert values is not None
    shape = (1, len(values)) + (1,) * (len(entry.input_shape) - 1)
    return torch.tensor(values, dtype=torch.float32).view(shape)


def test_entries_describe_their_models(
    cold: dict[str, tuple[ZooEntry, float]], cache: Path
) -> None:
    digits, _ = cold["digits-cnn"]
    assert isinstance(digits.model, DigitsCNN) and not digits.model.training
    assert digits.framework == "torch"
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert digits.bounds == (0.0, 1.0)
    assert digits.mean is not None and len(digits.mean) == 1
    assert digits.std is not None and len(digits.std) == 1
    assert digits.mean[0] == pytest.approx(float(digits.train.x.mean()), abs=1e-5)
    assert digits.cache_path == cache / "zoo" / "digits-cnn.safetensors"
    assert (len(digits.train), len(digits.test)) == (1347, 450)

    mlp, _ = cold["cancer-mlp"]
    assert isinstance(mlp.model, CancerMLP) and not mlp.model.training
    assert mlp.input_shape == (30,) and mlp.num_classes == 2
    assert mlp.mean is not None and len(mlp.mean) == 30
    assert np.allclose(mlp.mean, mlp.train.x.mean(axis=0), atol=1e-5)

    gbm, _ = cold["cancer-gbm"]
    assert gbm.framework == "sklearn"
    assert gbm.mean is None and gbm.std is None and gbm.cache_path is None
    assert np.array_equal(gbm.test.y, mlp.test.y)  # same stratified split with seed 0


def test_splits_are_the_stratified_75_25_split_with_seed_0(
    cold: dict[str, tuple[ZooEntry, float]],
) -> None:
    digits, _ = cold["digits-cnn"]
    train, test = zoo_module.load_digits_images().split(test_fraction=0.25, seed=0)
    assert np.array_equal(digits.test.x, test.x) and np.array_equal(digits.train.y, train.y)


@pytest.mark.parametrize("name", ["digits-cnn", "cancer-mlp"])
def test_second_load_comes_from_the_cache(
    cold: dict[str, tuple[ZooEntry, float]], cache: Path, name: str, count_fits: list[str]
) -> None:
    first, cold_seconds = cold[name]
    start = time.perf_counter()
    again = load_zoo_model(name, cache_dir=cache)
    warm_seconds = time.perf_counter() - start
    assert count_fits == []
    assert warm_seconds < cold_seconds
    assert again.model is not first.model
    assert _same_weights(again.model, first.model)
    assert again.test_accuracy == first.test_accuracy
    assert again.cache_path == first.cache_path


def test_gbm_is_memoised_but_each_caller_gets_its_own_copy(
    cold: dict[str, tuple[ZooEntry, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = cold["cancer-gbm"]
    fits: list[object] = []

    def no_fit(self: object, *args: object, **kwargs: object) -> object:
        fits.append(self)
        raise AssertionError("the memoised GBM was refitted")

    monkeypatch.setattr(zoo_module.GradientBoostingClassifier, "fit", no_fit)
    again = load_zoo_model("cancer-gbm")
    assert fits == []
    assert again.model is not first.model
    assert np.array_equal(
        again.model.predict_proba(first.test.x), first.model.predict_proba(first.test.x)
    )


def _copy_cache(cache: Path, target: Path) -> Path:
    shutil.copytree(cache, target)
    return target


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: blob[: len(blob) // 2],  # truncated
        lambda blob: blob[:-100] + bytes(b ^ 0xFF for b in blob[-100:]),  # flipped weight bytes
        lambda blob: b"\x80\x04garbage",  # not safetensors at all
    ],
    ids=["truncated", "flipped", "garbage"],
)
def test_a_damaged_weights_file_is_detected_and_retrained(
    cold: dict[str, tuple[ZooEntry, float]],
    cache: Path,
    tmp_path: Path,
    count_fits: list[str],
    damage: Callable[[bytes], bytes],
) -> None:
    root = _copy_cache(cache, tmp_path / "cache")
    weights = root / "zoo" / "cancer-mlp.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    entry = load_zoo_model("cancer-mlp", cache_dir=root)
    assert count_fits == ["CancerMLP"]
    # training is deterministic: the retrained weights equal the first ones, and are rewritten
    assert _same_weights(entry.model, cold["cancer-mlp"][0].model)
    assert weights.read_bytes() == (cache / "zoo" / "cancer-mlp.safetensors").read_bytes()
    load_zoo_model("cancer-mlp", cache_dir=root)
    assert count_fits == ["CancerMLP"]  # repaired: the next load reads the cache again


@pytest.mark.parametrize("edit", ["config_hash", "garbage", "missing"])
def test_stale_or_broken_metadata_means_retrain(
    cache: Path, tmp_path: Path, count_fits: list[str], edit: str
) -> None:
    root = _copy_cache(cache, tmp_path / "cache")
    meta = root / "zoo" / "cancer-mlp.json"
    if edit == "config_hash":
        record = json.loads(meta.read_text())
        record["config_hash"] = "0" * 64
        meta.write_text(json.dumps(record))
    elif edit == "garbage":
        meta.write_bytes(b"\xff{not json")
    else:
        meta.unlink()
    load_zoo_model("cancer-mlp", cache_dir=root)
    assert count_fits == ["CancerMLP"]
    assert json.loads(meta.read_text())["config_hash"] != "0" * 64


def test_metadata_records_what_was_trained(
    cold: dict[str, tuple[ZooEntry, float]], cache: Path
) -> None:
    entry, _ = cold["digits-cnn"]
    record = json.loads((cache / "zoo" / "digits-cnn.json").read_text())
    assert record["architecture"] == "DigitsCNN"
    assert record["mean"] == list(entry.mean or ())
    assert record["std"] == list(entry.std or ())
    assert record["test_accuracy"] == entry.test_accuracy
    assert len(record["config_hash"]) == 64 and len(record["weights_sha256"]) == 64


def test_nothing_pickled_is_written(cold: dict[str, tuple[ZooEntry, float]], cache: Path) -> None:
    files = sorted(p for p in cache.rglob("*") if p.is_file())
    assert [p.name for p in files] == [
        "cancer-mlp.json",
        "cancer-mlp.safetensors",
        "digits-cnn.json",
        "digits-cnn.safetensors",
    ]
    for path in files:
        head = path.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK", (
            f"{path} looks like a pickle or torch.save zip"
        )
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            tensors = safetensors.numpy.load_file(path)
            assert all(t.dtype == np.float32 for t in tensors.values())


def test_training_leaves_the_callers_rng_and_threads_alone(tmp_path: Path) -> None:
    torch.manual_seed(1234)
    np.random.seed(99)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    threads = torch.get_num_threads()
    load_zoo_model("cancer-mlp", cache_dir=tmp_path, retrain=True)
    load_zoo_model("cancer-mlp", cache_dir=tmp_path)  # the cached path builds a module too
    load_zoo_model("cancer-gbm", retrain=True)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    assert torch.get_num_threads() == threads  # training runs on one thread, then restores


def test_training_works_inside_no_grad_and_is_deterministic(
    cold: dict[str, tuple[ZooEntry, float]], tmp_path: Path
) -> None:
    with torch.no_grad():
        entry = load_zoo_model("cancer-mlp", cache_dir=tmp_path, retrain=True)
    assert _same_weights(entry.model, cold["cancer-mlp"][0].model)


def test_unwritable_cache_still_trains(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    entry = load_zoo_model("cancer-mlp", cache_dir=blocker)
    assert entry.cache_path is None
    assert entry.test_accuracy >= FLOORS["cancer-mlp"]


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BASTION_CACHE_DIR", str(tmp_path / "env"))
    assert zoo_cache_dir() == tmp_path / "env" / "zoo"
    assert zoo_cache_dir(tmp_path / "arg") == tmp_path / "arg" / "zoo"
    monkeypatch.delenv("BASTION_CACHE_DIR")
    assert zoo_cache_dir().name == "zoo" and "bastion" in str(zoo_cache_dir())


def test_bad_arguments() -> None:
    with pytest.raises(
        ValidationError, match=r"one of 'digits-cnn', 'digits32-cnn', 'cancer-mlp', 'cancer-gbm'"
    ):
        load_zoo_model("resnet50")
    with pytest.raises(ValidationError, match="retrain"):
        load_zoo_model("cancer-mlp", retrain=1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cache_dir"):
        load_zoo_model("cancer-mlp", cache_dir=3)  # type: ignore[arg-type]


def test_model_classes_produce_logits() -> None:
    assert DigitsCNN()(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert CancerMLP()(torch.zeros(2, 30)).shape == (2, 2)


def test_zoo_name_reads_prefixed_and_bare_names_and_refuses_unknown_zoo_names() -> None:
    from bastion.core.errors import ConfigError
    from bastion.data import zoo_name

    assert zoo_name("zoo:digits-cnn") == "digits-cnn"
    assert zoo_name("cancer-gbm") == "cancer-gbm"
    assert zoo_name("model.onnx") is None
    with pytest.raises(ConfigError, match="zoo:NAME"):
        zoo_name("zoo:nope")
