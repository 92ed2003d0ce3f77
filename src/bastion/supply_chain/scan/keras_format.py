"""Keras: the ``config.json`` of a ``.keras`` zip and the JSON config attributes of legacy HDF5
files (read with h5py, which only parses).

What a config can do on load, and what is reported:

- Lambda layers and ``__lambda__`` objects carry marshalled Python bytecode (CVE-2024-3660);
  Keras runs it only with ``safe_mode=False``, so such a file is one that asks its user to turn
  safe mode off: dangerous.
- ``module``/``class_name`` pairs (and ``"class_name": "function"`` entries) make Keras import
  and call any importable name (CVE-2025-1550); names outside Keras are judged by the pickle
  allow-list, suspicious at least.
- Names inside Keras that defeat safe mode from within the config: a config that calls
  ``keras.config.enable_unsafe_deserialization`` turns safe mode off half-way through the load,
  so a Lambda layer later in the same file runs (the bypass reported as CVE-2025-9906), and one
  that calls ``keras.utils.get_file`` downloads a file to a path of its choosing (the bypass
  reported as CVE-2025-8747). Loaders of further files (``load_model``, ``TFSMLayer``) bring in
  content that safe mode never sees. All dangerous.
- Lookup-layer ``vocabulary`` given as a path that leaves the model (absolute, ``..``, or a URL)
  makes the loader read a local file or fetch a URL: suspicious.
"""

from __future__ import annotations

import json
import re
from typing import Any, BinaryIO

from bastion.supply_chain.scan.allowlist import classify_global
from bastion.supply_chain.scan.context import Context
from bastion.supply_chain.scan.interface import Verdict
from bastion.supply_chain.scan.stream import CHUNK

__all__ = ["HDF5_MAGIC", "scan_hdf5", "scan_keras_config"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_MAX_CONFIG = 64 << 20
_SAFE_MODULE = re.compile(r"(keras|keras_hub|keras_nlp|keras_cv|tf_keras)(\.|\Z)")
_LAMBDA = re.compile(rb'"class_name"\s*:\s*"(Lambda|TFOpLambda|SlicingOpLambda|__lambda__)"')
_MODULE = re.compile(rb'"module"\s*:\s*"([^"]{1,200})"')
#: Keras names a config must never reach -> what calling them from a config does.
_UNSAFE_KERAS_NAMES = {
    "enable_unsafe_deserialization": "turns safe mode off for the rest of the load",
    "get_file": "downloads a file to a path the config chooses",
    "load_model": "loads another model file, outside this one's checks",
    "load_weights": "reads weights from a path the config chooses",
    "TFSMLayer": "loads a TensorFlow SavedModel from a path the config chooses",
}
_UNSAFE_NAME = re.compile(rb'"(' + b"|".join(n.encode() for n in _UNSAFE_KERAS_NAMES) + rb')"')
_LOOKUPS = frozenset({"StringLookup", "IntegerLookup", "TextVectorization"})


def _outside(path: str) -> bool:
    norm = path.replace("\\", "/")
    return (
        norm.startswith(("/", "~"))
        or (len(norm) > 1 and norm[1] == ":")
        or "://" in norm
        or ".." in norm.split("/")
    )


def _walk(ctx: Context, node: Any, member: str | None, fmt: str) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        stack.extend(item.values())
        cls, module = item.get("class_name"), item.get("module")
        if cls in ("Lambda", "__lambda__"):
            ctx.sink.add(
                member,
                fmt,
                Verdict.DANGEROUS,
                "keras-lambda",
                f"a {cls} object holds serialised Python code that runs once safe mode is off",
            )
        name = item.get("config") if cls == "function" else cls
        name = name if isinstance(name, str) else "?"
        if isinstance(module, str) and not _SAFE_MODULE.match(module):
            verdict, reason = classify_global(module, name)
            ctx.sink.add(
                member,
                fmt,
                verdict or Verdict.SUSPICIOUS,
                "keras-module",
                f"config names module {module!r}: " + (reason or "outside Keras"),
                global_name=f"{module}.{name}",
            )
        elif name in _UNSAFE_KERAS_NAMES and (module is None or isinstance(module, str)):
            where = f"{module}.{name}" if module else name
            ctx.sink.add(
                member,
                fmt,
                Verdict.DANGEROUS,
                "keras-safe-mode-bypass",
                f"config calls {where}, which {_UNSAFE_KERAS_NAMES[name]}",
                global_name=where,
            )
        config = item.get("config")
        if cls in _LOOKUPS and isinstance(config, dict):
            vocabulary = config.get("vocabulary")
            if isinstance(vocabulary, str) and _outside(vocabulary):
                ctx.sink.add(
                    member,
                    fmt,
                    Verdict.SUSPICIOUS,
                    "keras-external-file",
                    f"{cls} reads its vocabulary from {vocabulary!r}, outside the model",
                )


def scan_keras_config(ctx: Context, f: BinaryIO, size: int, member: str | None) -> None:
    """Check a ``.keras`` archive's ``config.json``."""
    if size > _MAX_CONFIG:
        ctx.unparseable(member, "keras", f"config.json of {size} bytes exceeds the bound")
        return
    f.seek(0)
    try:
        config = json.loads(f.read(size).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        ctx.unparseable(member, "keras", f"config.json is not valid JSON: {exc}")
        return
    _walk(ctx, config, member, "keras")


def scan_hdf5(ctx: Context, f: BinaryIO, size: int, member: str | None) -> str:
    """Check an HDF5 file: its raw bytes for Keras config markers, then (with h5py) every JSON
    attribute of the root group (``model_config``, ``training_config``) as a Keras config.
    Without h5py the structure is not parsed, which is a finding: HDF5 is never assumed clean."""
    f.seek(0)
    tail = b""
    while chunk := f.read(CHUNK):
        window = tail + chunk
        if _LAMBDA.search(window):
            ctx.sink.add(
                member, "hdf5", Verdict.DANGEROUS, "keras-lambda",
                "the Keras config names a Lambda layer (serialised code)",
            )  # fmt: skip
        for match in _UNSAFE_NAME.finditer(window):
            name = match.group(1).decode()
            ctx.sink.add(
                member, "hdf5", Verdict.DANGEROUS, "keras-safe-mode-bypass",
                f"the Keras config names {name}, which {_UNSAFE_KERAS_NAMES[name]}",
            )  # fmt: skip
        for match in _MODULE.finditer(window):
            module = match.group(1).decode("utf-8", "replace")
            if not _SAFE_MODULE.match(module):
                ctx.sink.add(
                    member, "hdf5", Verdict.SUSPICIOUS, "keras-module",
                    f"the Keras config names module {module!r}",
                )  # fmt: skip
        tail = window[-256:]
    try:
        import h5py
    except ImportError:
        ctx.unparseable(member, "hdf5", "HDF5 structure is not parsed (h5py is not installed)")
        return "hdf5"
    f.seek(0)
    try:
        with h5py.File(f, "r") as h5:
            attrs = {k: h5.attrs[k] for k in h5.attrs}
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError... on broken files
        ctx.unparseable(member, "hdf5", f"HDF5 structure is broken: {type(exc).__name__}: {exc}")
        return "hdf5"
    for key, value in attrs.items():
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if isinstance(text, str) and text.lstrip().startswith("{"):
            try:
                config = json.loads(text)
            except (ValueError, RecursionError) as exc:
                ctx.unparseable(member, "hdf5", f"attribute {key!r} is not valid JSON: {exc}")
                continue
            _walk(ctx, config, member, "hdf5")
    return "hdf5"
