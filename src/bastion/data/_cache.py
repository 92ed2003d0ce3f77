"""The zoo's on-disk cache: safetensors weights plus a JSON file, written atomically.

Nothing here unpickles: weights are safetensors, metadata is JSON, and a weights file whose
SHA-256 differs from the one recorded next to it is treated as absent (and retrained).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import platformdirs
import safetensors.torch
from safetensors import SafetensorError
from torch import nn

from bastion.core.validation import fail

__all__ = ["CACHE_FORMAT", "cache_root", "read_weights", "write_weights"]

CACHE_FORMAT = "bastion-zoo/1"
"""Written into every metadata file; a different value means the entry is retrained."""

_MAX_META_BYTES = 1 << 20
_MAX_WEIGHTS_BYTES = 256 << 20

log = logging.getLogger("bastion.data.zoo")


def cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    """``cache_dir``, else ``$BASTION_CACHE_DIR``, else the platform's user cache folder."""
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)):
            raise fail("cache_dir", "None or a path (str or os.PathLike)", cache_dir)
        return Path(cache_dir)
    env = os.environ.get("BASTION_CACHE_DIR")
    if env:
        return Path(env)
    return Path(platformdirs.user_cache_dir("bastion"))


def _paths(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}.safetensors", folder / f"{name}.json"


def _read_capped(path: Path, limit: int) -> bytes | None:
    if path.stat().st_size > limit:
        return None
    return path.read_bytes()


def read_weights(
    folder: Path, name: str, model: nn.Module, architecture: str, config_hash: str
) -> dict[str, Any] | None:
    """Load cached weights into ``model`` and return the metadata, or None to retrain.

    None means: no cache, a cache for another configuration, or a damaged one (logged).
    """
    weights_path, meta_path = _paths(folder, name)
    if not weights_path.is_file() or not meta_path.is_file():
        return None
    try:
        raw_meta = _read_capped(meta_path, _MAX_META_BYTES)
        meta = json.loads(raw_meta) if raw_meta is not None else None
        if not isinstance(meta, dict):
            log.warning("zoo cache %s is damaged (not a JSON object); retraining", meta_path)
            return None
        if (
            meta.get("format") != CACHE_FORMAT
            or meta.get("architecture") != architecture
            or meta.get("config_hash") != config_hash
        ):
            return None  # an older version or another configuration: silently replaced
        blob = _read_capped(weights_path, _MAX_WEIGHTS_BYTES)
        if blob is None or hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
            log.warning(
                "zoo cache %s does not match its recorded SHA-256; retraining", weights_path
            )
            return None
        model.load_state_dict(safetensors.torch.load(blob), strict=True)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        log.warning("zoo cache for %s is unreadable (%s); retraining", name, exc)
        return None
    return meta


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_weights(folder: Path, name: str, model: nn.Module, meta: dict[str, Any]) -> Path | None:
    """Cache ``model``'s weights and ``meta``; return the weights path, or None if unwritable.

    The weights go first and the metadata, which records their SHA-256, last: a crash in
    between leaves a mismatch that the next load detects and repairs.
    """
    state = {key: t.detach().cpu().contiguous() for key, t in model.state_dict().items()}
    # one metadata key only: safetensors writes a map in no fixed order, and byte-identical
    # files for identical weights make the cache easy to audit
    blob = safetensors.torch.save(state, metadata={"format": CACHE_FORMAT})
    record = {**meta, "format": CACHE_FORMAT, "weights_sha256": hashlib.sha256(blob).hexdigest()}
    weights_path, meta_path = _paths(folder, name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(weights_path, blob)
        _atomic_write(meta_path, json.dumps(record, indent=2, sort_keys=True).encode("utf-8"))
    except OSError as exc:
        log.warning("cannot write the zoo cache in %s (%s); the model is not cached", folder, exc)
        return None
    return weights_path
