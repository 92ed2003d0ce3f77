"""Loading the served model and the benign data its guards are calibrated on.

With ``settings.manifest`` the model is loaded only after the signed manifest verified
(`bastion.supply_chain.manifest`) and listed every file the model is built from: the model
file or the factory's weights, and the config file the settings were read from. Nothing
unverified is opened as a model.

A pickle-based model (a scikit-learn pickle or joblib file) needs two things: the operator's
explicit ``trust_pickle``, and a clean report from bastion's model-file scanner
(`bastion.supply_chain.scan`), which reads the file without unpickling it. A file the
scanner finds anything in (a code-execution primitive, a name outside the allow-list, or
content it cannot fully parse) is refused even with ``trust_pickle``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from bastion.core.errors import BastionError, ConfigError, UnsafeFileError
from bastion.data import load_data, load_zoo_model
from bastion.data.zoo import zoo_name
from bastion.gateway.settings import GatewaySettings
from bastion.models import Model, SklearnModel, TorchModel, load_model
from bastion.supply_chain.manifest import verify_manifest
from bastion.supply_chain.scan import scan_file

__all__ = ["Served", "load_served", "scan_pickled_model", "verify_served_files"]

# What `bastion.models.load_model` treats as a torch factory rather than a file.
_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


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


def _served_files(settings: GatewaySettings) -> list[tuple[str, Path]]:
    """The files a manifest must cover: (role, path) for the model, weights and config."""
    spec = settings.model
    if zoo_name(spec) is not None:
        raise ConfigError(
            f"Refusing to serve {spec} under a manifest: a manifest covers model files, and "
            "an embedded zoo model is not one; serve the exported file instead"
        )
    files: list[tuple[str, Path]] = []
    if _FACTORY.match(spec) and not Path(spec).exists():
        if settings.weights is None:
            raise ConfigError(
                f"Refusing to serve the factory {spec} under a manifest without weights: "
                "there is no model file the manifest could cover"
            )
    else:
        files.append(("model", Path(spec)))
    if settings.weights is not None:
        files.append(("weights", Path(settings.weights)))
    if settings.source is not None:
        files.append(("config", Path(settings.source)))
    return files


def verify_served_files(settings: GatewaySettings) -> None:
    """Check ``settings.manifest`` before anything is loaded (no-op without a manifest).

    Raises:
        ConfigError: the manifest or key is missing or unreadable, the signature or a file
            hash does not verify, or the model, weights or config file is not listed.
    """
    if settings.manifest is None or settings.manifest_public_key is None:
        return
    manifest = Path(settings.manifest)
    files = _served_files(settings)
    refusal = f"Refusing to serve {settings.model}: manifest {manifest}"
    try:
        result = verify_manifest(manifest, settings.manifest_public_key)
    except BastionError as exc:
        raise ConfigError(f"{refusal} cannot be checked: {exc}") from None
    if not result.ok:
        problems = "; ".join(p.message for p in result.problems)
        raise ConfigError(f"{refusal} does not verify: {problems}")
    # The manifest verified, so it is well-formed JSON signed by the key.
    entries = json.loads(manifest.read_bytes())["files"]
    listed = {(manifest.parent / e["path"]).resolve() for e in entries}
    for role, path in files:
        if path.resolve() not in listed:
            raise ConfigError(f"{refusal} does not list the {role} file {path}")


def load_served(settings: GatewaySettings) -> Served:
    """Load ``settings.model``: ``zoo:NAME`` from the embedded zoo, anything else by `load_model`.

    Pickled models load only with ``trust_pickle`` (`load_model` refuses them otherwise) and
    only when the scanner passes them (`scan_pickled_model`). With ``settings.manifest``,
    `verify_served_files` runs first.

    Raises:
        ConfigError: the manifest does not verify or does not cover the served files.
        UnsafeFileError: a trusted pickle the scanner does not pass.
    """
    verify_served_files(settings)
    spec = settings.model
    name = zoo_name(spec)
    if name is not None:
        entry = load_zoo_model(name, cache_dir=settings.zoo_cache)
        adapter_cls = TorchModel if entry.framework == "torch" else SklearnModel
        model: Model = adapter_cls(entry.model, **entry.adapter_options())
        return Served(model, spec, torch.from_numpy(entry.train.x).to(torch.float32))
    if settings.trust_pickle and not _FACTORY.match(spec):
        scan_pickled_model(Path(spec))
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


def scan_pickled_model(path: Path) -> None:
    """Refuse ``path`` unless bastion's scanner finds nothing in it; never unpickles it.

    Raises:
        UnsafeFileError: the scanner found something; the message names the worst finding.
        ScanError: the file cannot be opened.
    """
    report = scan_file(path)
    if report.clean:
        return
    worst = max(report.issues, key=lambda issue: issue.verdict.rank)
    where = f" ({worst.member})" if worst.member else ""
    raise UnsafeFileError(
        f"Refusing to serve {path} although trust_pickle is set: the model-file scanner "
        f"found {len(report.issues)} issue(s), the worst {worst.verdict.value}{where}: "
        f"{worst.reason}. Run `bastion scan {path}` for the full report"
    )
