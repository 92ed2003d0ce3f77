"""The embedded model zoo: small models trained on the embedded data sets, ready in seconds.

Every command's no-argument default runs on one of these. Training is deterministic (fixed
seeds, a local generator, the caller's global RNG untouched) and takes a few seconds on one
CPU thread (about ten for the 32x32 CNN); torch weights are cached as safetensors under
``<cache>/zoo/`` and never pickled.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from sklearn.ensemble import GradientBoostingClassifier
from torch import nn

from bastion.core.errors import ConfigError
from bastion.core.validation import check_bool, check_choice
from bastion.data._cache import cache_root, read_weights, write_weights
from bastion.data.datasets import Dataset
from bastion.data.embedded import load_breast_cancer, load_digits_images, load_digits_images_32
from bastion.data.networks import CancerMLP, DigitsCNN, WideDigitsCNN

__all__ = [
    "ZOO",
    "CancerMLP",
    "DigitsCNN",
    "WideDigitsCNN",
    "ZooEntry",
    "load_zoo_model",
    "zoo_cache_dir",
    "zoo_name",
]

ZOO_VERSION = 1
"""Bump when a recipe changes in a way its config hash would not see; forces a retrain."""

# Training touches process-global torch state (the default RNG inside fork_rng); one lock
# keeps concurrent callers from interleaving, and guards the GBM memo.
_LOCK = threading.Lock()
_GBM_MEMO: dict[str, tuple[GradientBoostingClassifier, float]] = {}


@dataclass(frozen=True, eq=False)
class ZooEntry:
    """A trained zoo model with its data and everything an adapter needs to wrap it.

    Attributes:
        name: the zoo name, e.g. ``"digits-cnn"``.
        model: an ``nn.Module`` in eval mode (framework ``"torch"``) or a fitted
            scikit-learn estimator (``"sklearn"``); each call returns a fresh object.
        framework: ``"torch"`` or ``"sklearn"``.
        train: the split the model was trained on.
        test: the held-out split its accuracy was measured on.
        input_shape: one sample's shape, e.g. ``(1, 8, 8)``.
        num_classes: how many classes the model tells apart.
        bounds: the valid input range ``(low, high)`` of the raw (unnormalised) data.
        mean: what the torch model expects subtracted from raw inputs, one value per channel
            (first axis of ``input_shape``); None for scikit-learn models, which take raw input.
        std: what the torch model expects the centred inputs divided by; None for sklearn.
        test_accuracy: accuracy on ``test``, measured when the entry was built.
        cache_path: the cached safetensors weights, or None (sklearn, or an unwritable cache).
    """

    name: str
    model: nn.Module | BaseEstimator
    framework: str
    train: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    bounds: tuple[float, float]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    test_accuracy: float
    cache_path: Path | None

    def adapter_options(self) -> dict[str, Any]:
        """Keyword arguments the matching adapter (``TorchModel``/``SklearnModel``) takes."""
        options: dict[str, Any] = {"input_shape": self.input_shape, "bounds": self.bounds}
        if self.framework == "torch":
            options.update(num_classes=self.num_classes, mean=self.mean, std=self.std)
        return options


def zoo_name(spec: str) -> str | None:
    """The zoo name ``spec`` names (``zoo:NAME``, or a bare NAME of the zoo), else None.

    Raises `ConfigError` for ``zoo:`` followed by a name the zoo does not have.
    """
    name = spec[4:] if spec.startswith("zoo:") else spec
    if name in ZOO:
        return name
    if spec.startswith("zoo:"):
        raise ConfigError(f"Expected zoo:NAME with NAME one of {', '.join(ZOO)}, but got {spec!r}")
    return None


@dataclass(frozen=True)
class _TorchRecipe:
    architecture: str
    build: Callable[[], nn.Module]
    data: Callable[[], Dataset]
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int = 0
    # "constant" keeps ``lr`` throughout; "one-cycle" warms up to ``lr`` over the first 15 %
    # of the steps and anneals to nearly zero (torch's OneCycleLR), which makes the final
    # weights, and so the accuracy, depend much less on where the last epoch stops.
    schedule: str = "constant"


_TORCH: dict[str, _TorchRecipe] = {
    "digits-cnn": _TorchRecipe(
        "DigitsCNN",
        DigitsCNN,
        load_digits_images,
        epochs=15,
        batch_size=64,
        lr=3e-3,
        weight_decay=1e-4,
    ),
    "digits32-cnn": _TorchRecipe(
        "WideDigitsCNN",
        WideDigitsCNN,
        load_digits_images_32,
        epochs=8,
        batch_size=64,
        lr=3e-3,
        weight_decay=1e-4,
        schedule="one-cycle",
    ),
    "cancer-mlp": _TorchRecipe(
        "CancerMLP",
        CancerMLP,
        load_breast_cancer,
        epochs=60,
        batch_size=32,
        lr=1e-3,
        weight_decay=1e-4,
    ),
}
_GBM_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.1,
    "max_depth": 3,
    "random_state": 0,
}

ZOO: tuple[str, ...] = (*_TORCH, "cancer-gbm")
"""The names `load_zoo_model` accepts."""


def zoo_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where `load_zoo_model` caches weights: ``<cache>/zoo``.

    ``<cache>`` is ``cache_dir``, else the environment variable ``BASTION_CACHE_DIR``, else
    ``platformdirs.user_cache_dir("bastion")``. Nothing is created; returns the path.
    """
    return cache_root(cache_dir) / "zoo"


def _fingerprint(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Dataset):
            digest.update(part.x.tobytes())
            digest.update(part.y.tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _normalisation(train: Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (images) or per-feature (tabular) mean and std of the training split."""
    x = train.x.astype(np.float64)
    axes = (0, *range(2, x.ndim))  # everything but the first sample axis
    mean = x.mean(axis=axes)
    std = x.std(axis=axes)
    std[std < 1e-8] = 1.0  # a constant feature carries nothing; do not divide by zero
    return tuple(float(np.float32(v)) for v in mean), tuple(float(np.float32(v)) for v in std)


def _normalised(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    shape = (1, len(mean)) + (1,) * (x.ndim - 2)
    m = torch.tensor(mean, dtype=torch.float32).view(shape)
    s = torch.tensor(std, dtype=torch.float32).view(shape)
    return (torch.from_numpy(np.ascontiguousarray(x)) - m) / s


def _accuracy(model: nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    with torch.no_grad():
        predicted = model(x).argmax(dim=1).numpy()
    return float(np.mean(predicted == y))


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the caller's setting.

    These models are far too small to gain from parallel kernels, and on a busy machine
    spinning worker threads make training several times slower (2 s become 17 s for the
    digits CNN on two shared cores). One thread also keeps results independent of the core
    count. The setting is process-wide, which is one reason training holds ``_LOCK``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _fit(recipe: _TorchRecipe, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Mini-batch Adam; shuffling draws from a local generator, never the global one."""
    generator = torch.Generator().manual_seed(recipe.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = None
    if recipe.schedule == "one-cycle":
        per_epoch = -(-len(x) // recipe.batch_size)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=recipe.lr, total_steps=recipe.epochs * per_epoch, pct_start=0.15
        )
    model.train()
    with torch.enable_grad():  # the caller may be inside torch.no_grad()
        for _ in range(recipe.epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), recipe.batch_size):
                batch = order[start : start + recipe.batch_size]
                optimiser.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[batch]), y[batch]).backward()
                optimiser.step()
                if scheduler is not None:
                    scheduler.step()
    optimiser.zero_grad(set_to_none=True)
    model.eval()


def _load_torch(name: str, folder: Path, retrain: bool) -> ZooEntry:
    recipe = _TORCH[name]
    train, test = recipe.data().split(test_fraction=0.25, seed=0)
    mean, std = _normalisation(train)
    config = {
        "zoo_version": ZOO_VERSION,
        "name": name,
        "architecture": recipe.architecture,
        "recipe": {k: v for k, v in vars(recipe).items() if not callable(v)},
        "mean": mean,
        "std": std,
    }
    config_hash = _fingerprint(config, train, test)
    x_test = _normalised(test.x, mean, std)
    # Building a module draws its initial weights from the global CPU RNG: fork it so the
    # caller's stream is exactly as it was, and seed it so the weights are reproducible.
    # Only the CPU generator is seeded (not torch.manual_seed, which also reseeds CUDA
    # generators that fork_rng(devices=[]) would not restore).
    with _LOCK, _one_thread(), torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(recipe.seed)
        model = recipe.build()
        cached = None
        if not retrain:
            cached = read_weights(folder, name, model, recipe.architecture, config_hash)
        if cached is None:
            _fit(recipe, model, _normalised(train.x, mean, std), torch.from_numpy(train.y))
    model.eval()
    accuracy = _accuracy(model, x_test, test.y)
    if cached is not None:
        cache_path: Path | None = folder / f"{name}.safetensors"
    else:
        meta = {
            "architecture": recipe.architecture,
            "config_hash": config_hash,
            "zoo_version": ZOO_VERSION,
            "mean": list(mean),
            "std": list(std),
            "test_accuracy": accuracy,
            "torch_version": torch.__version__,
        }
        cache_path = write_weights(folder, name, model, meta)
    return ZooEntry(
        name=name,
        model=model,
        framework="torch",
        train=train,
        test=test,
        input_shape=train.input_shape,
        num_classes=train.num_classes,
        bounds=train.bounds,
        mean=mean,
        std=std,
        test_accuracy=accuracy,
        cache_path=cache_path,
    )


def _load_gbm(retrain: bool) -> ZooEntry:
    """Gradient boosting is never pickled to disk: it is refitted, and memoised in-process."""
    train, test = load_breast_cancer().split(test_fraction=0.25, seed=0)
    key = _fingerprint({"zoo_version": ZOO_VERSION, "gbm": _GBM_PARAMS}, train, test)
    with _LOCK:
        if retrain or key not in _GBM_MEMO:
            estimator = GradientBoostingClassifier(**_GBM_PARAMS).fit(train.x, train.y)
            _GBM_MEMO[key] = (estimator, float(estimator.score(test.x, test.y)))
        fitted, accuracy = _GBM_MEMO[key]
        model = copy.deepcopy(fitted)  # callers may refit theirs; the memo stays as trained
    return ZooEntry(
        name="cancer-gbm",
        model=model,
        framework="sklearn",
        train=train,
        test=test,
        input_shape=train.input_shape,
        num_classes=train.num_classes,
        bounds=train.bounds,
        mean=None,
        std=None,
        test_accuracy=accuracy,
        cache_path=None,
    )


def load_zoo_model(
    name: str, *, cache_dir: str | os.PathLike[str] | None = None, retrain: bool = False
) -> ZooEntry:
    """Return the zoo model ``name`` (one of `ZOO`), trained on the first call and cached.

    ``"digits-cnn"`` is a `DigitsCNN` on the 8x8 digit images, ``"digits32-cnn"`` a
    `WideDigitsCNN` on the same digits upsampled bilinearly to 32x32, ``"cancer-mlp"`` a
    `CancerMLP` on breast cancer, ``"cancer-gbm"`` scikit-learn gradient boosting on breast
    cancer. Each uses the stratified 75/25 split with seed 0 of its embedded data set.

    Torch weights are read from ``zoo_cache_dir(cache_dir)`` when a cache for the same
    configuration exists and its SHA-256 matches; otherwise (or with ``retrain``) the model
    is trained and the cache rewritten atomically. An unwritable cache folder is not an
    error: the model is trained and returned with ``cache_path=None``. The gradient-boosting
    model is retrained on demand and memoised in this process, never written to disk.

    Returns:
        A `ZooEntry` with a fresh model object, its splits, normalisation and test accuracy.

    Raises:
        ValidationError: ``name`` is not one of `ZOO` (the message lists them), or a bad
            ``cache_dir`` or ``retrain``.
    """
    check_choice("name", name, ZOO)
    check_bool("retrain", retrain)
    folder = zoo_cache_dir(cache_dir)
    if name in _TORCH:
        # Built and trained on the CPU (bit for bit reproducible) whatever the caller's
        # default device; move ``entry.model`` to a GPU afterwards if wanted.
        with torch.device("cpu"):
            return _load_torch(name, folder, retrain)
    return _load_gbm(retrain)
