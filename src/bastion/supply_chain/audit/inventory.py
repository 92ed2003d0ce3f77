"""What is installed or pinned: distributions, requirements files and lock files.

Nothing here imports, builds or runs a package: installed distributions are read from their
``*.dist-info``/``*.egg-info`` metadata, the rest are parsed as text, TOML or JSON.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from bastion.core.errors import ConfigError, LoadError
from bastion.supply_chain.audit.osv import normalize_name

__all__ = [
    "Dependency",
    "installed_distributions",
    "read_lock_file",
    "read_requirements",
    "site_packages_of",
]


@dataclass(frozen=True)
class Dependency:
    """One package an environment has or a file pins.

    Attributes:
        name: the PEP 503 normalised name.
        version: the exact version, or `None` when it is not pinned (cannot be verified).
        source: the file it was read from, or the metadata directory of an installed one.
        line: the line in ``source`` (requirements files), when known.
        spec: the requirement as written, for unpinned ones.
    """

    name: str
    version: str | None
    source: str
    line: int | None = None
    spec: str = ""

    @property
    def pinned(self) -> bool:
        """Whether an exact, PEP 440 version is known, so advisories can be matched."""
        if self.version is None:
            return False
        try:
            Version(self.version)
        except InvalidVersion:
            return False
        return True


def site_packages_of(venv: Path) -> list[Path]:
    """The ``site-packages`` directories of a virtual environment (POSIX and Windows layouts)."""
    found = sorted(venv.glob("lib/python*/site-packages")) + sorted(venv.glob("Lib/site-packages"))
    if not found:
        raise LoadError(f"{venv} is not a virtual environment: no site-packages directory")
    return found


def installed_distributions(paths: Sequence[Path] | None = None) -> list[Dependency]:
    """The distributions installed on ``paths`` (default: this interpreter's ``sys.path``)."""
    search = [str(p) for p in paths] if paths is not None else list(sys.path)
    out: dict[str, Dependency] = {}
    for dist in metadata.distributions(path=search):
        name = dist.metadata["Name"] if dist.metadata else None
        if not name:
            continue
        key = normalize_name(name)
        where = getattr(dist, "_path", None)
        if key not in out:  # the first on the path wins, as for an import
            out[key] = Dependency(key, dist.version, str(where or "installed"))
    return sorted(out.values(), key=lambda d: d.name)


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        yield start, (buffer + line).strip()
        buffer = ""
    if buffer.strip():
        yield start, buffer.strip()


def _pinned_version(req: Requirement) -> str | None:
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return specs[0].version
    return None


def read_requirements(path: Path, _seen: frozenset[Path] = frozenset()) -> list[Dependency]:
    """Parse a pip requirements file, following ``-r``/``-c`` includes.

    A requirement pinned with ``==`` (no wildcard) or ``===`` gets its version; any other
    (ranges, URLs, editable installs) is listed with ``version=None``: unverifiable.
    """
    real = path.resolve()
    if real in _seen:
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadError(f"Cannot read requirements file {path}: {exc.strerror}") from None
    out: list[Dependency] = []
    for number, line in _logical_lines(text):
        if not line:
            continue
        include = re.match(r"^(-r|--requirement|-c|--constraint)[\s=]+(\S+)", line)
        if include:
            out += read_requirements(path.parent / include.group(2), _seen | {real})
            continue
        if line.startswith(("-e", "--editable")):
            out.append(Dependency(line.split()[-1], None, str(path), number, line))
            continue
        if line.startswith("-"):
            continue  # --index-url, --hash on its own line, and other pip options
        spec = re.split(r"\s--?\w", " " + line, maxsplit=1)[0].strip()
        try:
            req = Requirement(spec)
        except InvalidRequirement:
            raise ConfigError(
                f"Expected {path}:{number} to be a requirement, but got {line!r}"
            ) from None
        version = None if req.url else _pinned_version(req)
        out.append(Dependency(normalize_name(req.name), version, str(path), number, spec))
    return out


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LoadError(f"Cannot read lock file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LoadError(f"Lock file {path} is not valid TOML: {exc}") from None


def _from_tables(path: Path, tables: Any, key: str) -> list[Dependency]:
    if not isinstance(tables, list):
        raise LoadError(f"Lock file {path} has no [[{key}]] tables")
    out = []
    for entry in tables:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            version = entry.get("version")
            out.append(
                Dependency(
                    normalize_name(entry["name"]),
                    version if isinstance(version, str) else None,
                    str(path),
                    spec=str(entry.get("source", "")),
                )
            )
    return out


def _pipfile_lock(path: Path) -> list[Dependency]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LoadError(f"Cannot read Pipfile.lock {path}: {exc}") from None
    out = []
    for section in ("default", "develop"):
        for name, entry in (data.get(section) or {}).items():
            pin = entry.get("version", "") if isinstance(entry, dict) else ""
            version = pin[2:] if isinstance(pin, str) and pin.startswith("==") else None
            out.append(Dependency(normalize_name(name), version, str(path), spec=str(pin)))
    return out


def read_lock_file(path: Path) -> list[Dependency]:
    """Parse ``poetry.lock``, ``uv.lock``, ``Pipfile.lock`` or ``pylock.toml`` (PEP 751).

    The format comes from the file name, or from the content when the name is unusual.
    """
    name = path.name.lower()
    if name == "pipfile.lock" or name.endswith(".json"):
        return _pipfile_lock(path)
    data = _toml(path)
    if name.startswith("pylock") or "lock-version" in data:
        return _from_tables(path, data.get("packages"), "packages")
    if "package" in data:
        return _from_tables(path, data.get("package"), "package")
    raise LoadError(
        f"Expected {path} to be a poetry.lock, uv.lock, Pipfile.lock or pylock.toml file"
    )
