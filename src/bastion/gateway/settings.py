"""The gateway's configuration: one frozen pydantic model, read from a JSON or TOML file.

Unknown keys are refused (a typo must not silently turn a guard off), and the settings cannot
change once the app is built from them.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator
from pydantic import ValidationError as PydanticError

from bastion.core.errors import ConfigError

__all__ = [
    "GatewaySettings",
    "GuardSettings",
    "OutputSettings",
    "load_settings",
]

ActionName = Literal["record", "flag", "slow", "block"]
ImageFormat = Literal["PNG", "JPEG", "GIF", "BMP", "WEBP"]


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
    blacklight_min_matches: int = Field(
        default=3, ge=1, description="Earlier near-duplicates that flag a query (1: the paper)."
    )
    nearest_neighbour: bool = True
    nearest_neighbour_action: ActionName = "flag"
    nearest_neighbour_k: int = Field(default=5, ge=1)
    nearest_neighbour_skip: int = Field(
        default=2, ge=0, description="Nearest earlier queries left out of the k-NN score."
    )
    nearest_neighbour_fpr: float = Field(default=0.001, gt=0, lt=1)
    nearest_neighbour_threshold: float | None = Field(
        default=None, ge=0, description="Set it directly when there is no calibration data."
    )
    boundary: bool = True
    boundary_action: ActionName = "flag"
    boundary_near_margin: float | None = Field(
        default=None, ge=0, description="Set it directly when there is no calibration data."
    )
    boundary_attack_rate: float = Field(
        default=0.8, gt=0, lt=1, description="Share of an attack's answers near the boundary."
    )
    boundary_false_alarm: float = Field(
        default=1e-9, gt=0, lt=1, description="The boundary CUSUM test's false-alarm level."
    )
    slow_seconds: float = Field(
        default=0.5, ge=0, le=30, description="Delay for the 'slow' action."
    )
    image_formats: tuple[ImageFormat, ...] = Field(
        default=("PNG", "JPEG"),
        min_length=1,
        description="Image formats an upload may have, recognised by their magic bytes.",
    )
    max_image_pixels: int = Field(
        default=4096 * 4096,
        ge=1,
        description="Largest image (width times height) decoded; checked from its header.",
    )
    prada: bool = True
    prada_action: ActionName = "flag"
    prada_delta: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        description="PRADA flags an identity whose distances' Shapiro-Wilk W falls below this.",
    )
    prada_min_distances: int = Field(
        default=100, ge=3, description="Distances PRADA needs before its first test."
    )
    prada_duplicate_distance: Annotated[float, Field(ge=0)] | Literal["auto"] | None = Field(
        default="auto",
        description="A query closer than this to an earlier one of its class is a re-send, "
        "left out of PRADA's distances; 'auto': 0.05 * sqrt(features) * (high - low); "
        "0 or null: the paper (every distance counts).",
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
    database_url: str = Field(default="sqlite:///bastion-gateway.db", repr=False)
    guards: GuardSettings = GuardSettings()
    outputs: dict[str, OutputSettings] = Field(default_factory=_default_outputs)
    secret: SecretStr | None = Field(
        default=None, description="Salt of the Blacklight hashes; random per process when unset."
    )
    manifest: str | None = Field(
        default=None,
        description="A signed manifest (`bastion manifest create`) that must list and verify "
        "the model file, its weights and the config file before anything is loaded.",
    )
    manifest_public_key: str | None = Field(
        default=None, description="The Ed25519 public key (PEM file) the manifest is signed with."
    )
    require_manifest: bool = Field(default=False, description="Refuse to start without a manifest.")
    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _manifest_needs_key(self) -> GatewaySettings:
        if (self.manifest is None) != (self.manifest_public_key is None):
            raise ValueError("manifest and manifest_public_key must be given together")
        if self.require_manifest and self.manifest is None:
            raise ValueError("require_manifest is set, but no manifest is given")
        return self

    @property
    def source(self) -> str | None:
        """The config file these settings were read from (None when built in code)."""
        return self._source


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
        settings = GatewaySettings.model_validate(data)
    except PydanticError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"Invalid gateway settings: {problems}") from None
    if path is not None:
        settings._source = str(Path(path))
    return settings
