"""The gateway's configuration: one frozen pydantic model, read from a JSON or TOML file.

Unknown keys are refused (a typo must not silently turn a guard off), and the settings cannot
change once the app is built from them.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic import ValidationError as PydanticError

from bastion.core.errors import ConfigError

__all__ = [
    "GatewaySettings",
    "GuardSettings",
    "OutputSettings",
    "load_settings",
]

ActionName = Literal["record", "flag", "slow", "block"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardSettings(_Frozen):
    """Which guards run, their limits and what each does when it fires."""

    rate_limit_identity: str = Field(default="600/minute", description="Samples per API key.")
    rate_limit_address: str = Field(
        default="1200/minute", description="Samples per client address."
    )
    rate_limit_storage: str = Field(
        default="memory://", description="memory:// or redis://host:port"
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=(), description="Proxies whose X-Forwarded-For counts."
    )
    max_batch: int = Field(default=64, ge=1, description="Most samples per request.")
    max_body_bytes: int = Field(default=1_000_000, ge=64, description="Largest request body.")
    max_depth: int | None = Field(default=None, ge=2, description="Deepest JSON nesting accepted.")
    blacklight: bool = True
    blacklight_action: ActionName = "flag"
    nearest_neighbour: bool = True
    nearest_neighbour_action: ActionName = "flag"
    nearest_neighbour_k: int = Field(default=5, ge=1)
    nearest_neighbour_fpr: float = Field(default=0.001, gt=0, lt=1)
    nearest_neighbour_threshold: float | None = Field(
        default=None, ge=0, description="Set it directly when there is no calibration data."
    )
    boundary: bool = True
    boundary_action: ActionName = "flag"
    boundary_near_margin: float | None = Field(
        default=None, ge=0, description="Set it directly when there is no calibration data."
    )
    slow_seconds: float = Field(
        default=0.5, ge=0, le=30, description="Delay for the 'slow' action."
    )


class OutputSettings(_Frozen):
    """What one role sees of the model's answer (see `bastion.defenses.guards.OutputPolicy`)."""

    mode: Literal["label", "top-k", "scores"] = "label"
    k: int = Field(default=1, ge=1)
    decimals: int = Field(default=2, ge=0, le=8)


def _default_outputs() -> dict[str, OutputSettings]:
    return {
        "client": OutputSettings(mode="label"),
        "admin": OutputSettings(mode="scores", decimals=4),
    }


class GatewaySettings(_Frozen):
    """Everything `create_app` needs.

    ``model`` is ``zoo:NAME`` (an embedded model) or anything `bastion.models.load_model`
    accepts; for a model outside the zoo, ``input_shape`` is needed for a torch factory, and
    ``calibration_data`` (any `bastion.data.load_data` source of benign inputs) calibrates
    the nearest-neighbour and boundary guards unless their thresholds are given.
    """

    model: str = "zoo:digits-cnn"
    weights: str | None = None
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    bounds: tuple[float, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    trust_pickle: bool = False
    zoo_cache: str | None = None
    calibration_data: str | None = None
    database_url: str = "sqlite:///bastion-gateway.db"
    guards: GuardSettings = GuardSettings()
    outputs: dict[str, OutputSettings] = Field(default_factory=_default_outputs)
    secret: SecretStr | None = Field(
        default=None, description="Salt of the Blacklight hashes; random per process when unset."
    )


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> GatewaySettings:
    """Read settings from a ``.json`` or ``.toml`` file (or defaults), then apply overrides.

    Raises:
        ConfigError: the file is missing, unreadable, or holds an invalid or unknown setting.
    """
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"Cannot read the gateway config {file}: {exc}") from exc
        try:
            data = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"Expected {file} to be valid JSON or TOML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"Expected {file} to hold a table of settings")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return GatewaySettings.model_validate(data)
    except PydanticError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"Invalid gateway settings: {problems}") from None
