"""Loading the served model and the benign data its guards are calibrated on."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bastion.core.errors import ConfigError
from bastion.data import load_data, load_zoo_model
from bastion.data.zoo import zoo_name
from bastion.gateway.settings import GatewaySettings
from bastion.models import Model, SklearnModel, TorchModel, load_model

__all__ = ["Served", "load_served"]


@dataclass(frozen=True)
class Served:
    """The model behind the gateway and what the guards learn normal traffic from.

    Attributes:
        model: the adapter the gateway queries.
        name: what the settings called it.
        calibration: benign inputs ``(n, *input_shape)``, or None when none were given.
    """

    model: Model
    name: str
    calibration: torch.Tensor | None


def load_served(settings: GatewaySettings) -> Served:
    """Load ``settings.model``: ``zoo:NAME`` from the embedded zoo, anything else by `load_model`.

    Pickled models load only with ``trust_pickle``; `load_model` refuses them otherwise.
    """
    spec = settings.model
    name = zoo_name(spec)
    if name is not None:
        entry = load_zoo_model(name, cache_dir=settings.zoo_cache)
        adapter_cls = TorchModel if entry.framework == "torch" else SklearnModel
        model: Model = adapter_cls(entry.model, **entry.adapter_options())
        return Served(model, spec, torch.from_numpy(entry.train.x).to(torch.float32))
    model = load_model(
        spec,
        weights=settings.weights,
        input_shape=settings.input_shape,
        num_classes=settings.num_classes,
        bounds=settings.bounds or (0.0, 1.0),
        mean=settings.mean,
        std=settings.std,
        trust_pickle=settings.trust_pickle,
    )
    calibration = None
    if settings.calibration_data is not None:
        data = load_data(settings.calibration_data)
        if tuple(data.input_shape) != tuple(model.input_shape):
            raise ConfigError(
                f"Expected calibration_data with samples of shape {model.input_shape}, "
                f"but {settings.calibration_data} has {data.input_shape}"
            )
        calibration = torch.from_numpy(data.x).to(torch.float32)
    return Served(model, spec, calibration)
