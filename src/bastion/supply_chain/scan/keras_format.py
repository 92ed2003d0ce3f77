"""Keras: the ``config.json`` of a ``.keras`` zip, where a Lambda layer carries serialised Python
code (CVE-2024-3660) and ``module``/``class_name`` pairs can name any importable function
(CVE-2025-1550); and legacy HDF5 files, whose root attributes hold the JSON config (read with
h5py, which only parses)."""

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
_LAMBDA = re.compile(rb'"class_name"\s*:\s*"(Lambda|TFOpLambda|SlicingOpLambda)"')
_MODULE = re.compile(rb'"module"\s*:\s*"([^"]{1,200})"')


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
        if cls == "Lambda":
            ctx.sink.add(
                member,
                fmt,
                Verdict.DANGEROUS,
                "keras-lambda",
                "a Lambda layer holds serialised Python code that runs on load",
            )
        if isinstance(module, str) and not _SAFE_MODULE.match(module):
            name = item.get("config") if cls == "function" else cls
            verdict, reason = classify_global(module, name if isinstance(name, str) else "?")
            ctx.sink.add(
                member,
                fmt,
                verdict or Verdict.SUSPICIOUS,
                "keras-module",
                f"config names module {module!r}: " + (reason or "outside Keras"),
                global_name=f"{module}.{name}",
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
