"""Turning what a user names on the command line into a model adapter and an evaluation set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bastion.core.errors import ConfigError, LoadError
from bastion.data import Dataset, load_data, load_zoo_model
from bastion.data.zoo import zoo_name
from bastion.models import Model, SklearnModel, TorchModel, load_model

__all__ = ["DEFAULT_MODEL", "Target", "resolve_target"]

DEFAULT_MODEL = "zoo:digits-cnn"


@dataclass(frozen=True)
class Target:
    """A model ready to attack and the labelled data to attack it on."""

    model: Model
    data: Dataset
    model_name: str
    data_name: str


def resolve_target(
    model: str = DEFAULT_MODEL,
    data: str | None = None,
    *,
    weights: str | None = None,
    trust_pickle: bool = False,
    bounds: tuple[float, float] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 256,
    max_samples: int | None = None,
    cache_dir: str | Path | None = None,
) -> Target:
    """Load the model named by ``model`` and the data named by ``data``.

    ``model`` is ``zoo:NAME`` (an embedded model bastion trains and caches), an ``.onnx`` file,
    an importable torch factory ``package.module:callable`` (with ``weights`` in safetensors),
    or a scikit-learn pickle (only with ``trust_pickle``). ``data`` is an embedded data set
    name or a file; a zoo model without ``data`` is evaluated on its own held-out split.
    """
    zoo = zoo_name(model)
    if zoo is not None:
        entry = load_zoo_model(zoo, cache_dir=cache_dir)
        dataset = entry.test if data is None else load_data(data)
        if dataset.input_shape != tuple(entry.input_shape):
            raise ConfigError(
                f"Expected --data with samples of shape {tuple(entry.input_shape)} for {model}, "
                f"but {dataset.name} has samples of shape {dataset.input_shape}"
            )
        adapter_cls = TorchModel if entry.framework == "torch" else SklearnModel
        adapter: Model = adapter_cls(entry.model, **entry.adapter_options(), batch_size=batch_size)
        model_name = f"zoo:{zoo}"
    else:
        is_factory = ":" in model and not Path(model).suffix
        if not is_factory and not Path(model).exists():
            raise LoadError(f"no such model file: {model}")
        if data is None:
            raise ConfigError(
                "Expected --data naming labelled data to attack (a .npz, .npy, .csv file, an "
                "image folder or an embedded set) when --model is not an embedded zoo model"
            )
        dataset = load_data(data)
        adapter = load_model(
            model,
            weights=weights,
            input_shape=dataset.input_shape,
            num_classes=dataset.num_classes,
            bounds=bounds or dataset.bounds,
            mean=mean,
            std=std,
            trust_pickle=trust_pickle,
            batch_size=batch_size,
        )
        model_name = model
    if max_samples is not None:
        dataset = dataset.take(max_samples)
    return Target(model=adapter, data=dataset, model_name=model_name, data_name=dataset.name)
