"""Advisory databases: the embedded ML snapshot, a directory or zip of OSV files, a JSON list.

A zip (such as the public PyPI bulk export ``all.zip``) is read member by member, never
extracted. `update_database` validates a file and makes it the user's local copy, under the
platform's user data directory (or ``$BASTION_DATA_DIR``); `default_database` prefers that copy
and falls back to the embedded snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from bastion.supply_chain.audit.osv import (
    Advisory,
    AdvisoryDatabaseError,
    advisories_from_list,
    normalize_name,
    parse_advisory,
)

__all__ = [
    "EMBEDDED_SNAPSHOT",
    "AdvisoryDatabase",
    "default_database",
    "embedded_database",
    "load_database",
    "local_database_path",
    "update_database",
    "user_data_dir",
]

#: Package-data name of the curated snapshot shipped with bastion.
EMBEDDED_SNAPSHOT = "ml-advisories.json"
_LOCAL_NAMES = ("advisories.zip", "advisories.json")


class AdvisoryDatabase:
    """Advisories indexed by normalised package name.

    Args:
        advisories: the parsed entries.
        source: where they came from, for reports.
    """

    def __init__(self, advisories: Iterable[Advisory], *, source: str) -> None:
        self.source = source
        self._by_name: dict[str, list[Advisory]] = {}
        count = 0
        for advisory in advisories:
            count += 1
            for name in {a.name for a in advisory.affected}:
                self._by_name.setdefault(name, []).append(advisory)
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"AdvisoryDatabase({self._count} advisories from {self.source})"

    @property
    def packages(self) -> frozenset[str]:
        """The normalised names of every package some advisory affects."""
        return frozenset(self._by_name)

    def for_package(self, name: str) -> tuple[Advisory, ...]:
        """Every advisory naming ``name`` (any spelling), whatever the version."""
        return tuple(self._by_name.get(normalize_name(name), ()))

    def matching(self, name: str, version: str) -> tuple[Advisory, ...]:
        """The advisories that affect ``name`` at ``version`` (a PEP 440 string)."""
        return tuple(a for a in self.for_package(name) if a.affects(name, version))


def _decode(raw: bytes, source: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdvisoryDatabaseError(f"Malformed OSV entry in {source}: not JSON ({exc})") from None


def _entries(data: Any, source: str) -> list[Advisory]:
    if isinstance(data, list):
        return advisories_from_list(data, source)
    advisory = parse_advisory(data, source)
    return [advisory] if advisory is not None else []


def _iter_zip(path: Path) -> Iterator[Advisory]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise AdvisoryDatabaseError(f"Cannot read advisory zip {path}: {exc}") from None
    with archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            source = f"{path}!{info.filename}"
            try:
                with archive.open(info) as member:
                    raw = member.read()
            except (zipfile.BadZipFile, OSError) as exc:
                raise AdvisoryDatabaseError(f"Cannot read {source}: {exc}") from None
            yield from _entries(_decode(raw, source), source)


def _iter_dir(path: Path) -> Iterator[Advisory]:
    for file in sorted(path.rglob("*.json")):
        yield from _entries(_decode(file.read_bytes(), str(file)), str(file))


def load_database(path: str | os.PathLike[str]) -> AdvisoryDatabase:
    """Read a directory of OSV JSON files, a zip of them, or one JSON file (a list or one entry).

    Raises `AdvisoryDatabaseError` when the path is missing or any entry is malformed; the
    message names the file (and zip member or list index).
    """
    where = Path(path)
    if where.is_dir():
        return AdvisoryDatabase(_iter_dir(where), source=str(where))
    if not where.is_file():
        raise AdvisoryDatabaseError(f"Advisory database {where} does not exist")
    if zipfile.is_zipfile(where):
        return AdvisoryDatabase(_iter_zip(where), source=str(where))
    data = _decode(where.read_bytes(), str(where))
    return AdvisoryDatabase(_entries(data, str(where)), source=str(where))


def embedded_database() -> AdvisoryDatabase:
    """The curated ML-stack snapshot shipped inside bastion."""
    ref = resources.files("bastion.supply_chain.audit").joinpath("data", EMBEDDED_SNAPSHOT)
    source = f"embedded:{EMBEDDED_SNAPSHOT}"
    return AdvisoryDatabase(_entries(_decode(ref.read_bytes(), source), source), source=source)


def user_data_dir() -> Path:
    """Where bastion keeps the user's advisory database: ``$BASTION_DATA_DIR`` or platformdirs."""
    override = os.environ.get("BASTION_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("bastion", appauthor=False))


def local_database_path(data_dir: Path | None = None) -> Path | None:
    """The user's local copy, if `update_database` installed one."""
    base = (data_dir or user_data_dir()) / "advisories"
    for name in _LOCAL_NAMES:
        if (base / name).is_file():
            return base / name
    return None


def default_database(data_dir: Path | None = None) -> AdvisoryDatabase:
    """The user's local copy when there is one, otherwise the embedded snapshot."""
    local = local_database_path(data_dir)
    return load_database(local) if local is not None else embedded_database()


def update_database(source: str | os.PathLike[str], data_dir: Path | None = None) -> Path:
    """Validate ``source`` (JSON list, zip or directory of OSV files) and install it as the
    user's local database, replacing the previous copy atomically. Returns the installed path.

    Nothing changes when validation fails, or when the source holds no PyPI advisory.
    """
    src = Path(source)
    database = load_database(src)
    if len(database) == 0:
        raise AdvisoryDatabaseError(f"{src} holds no PyPI advisory; the local copy was kept")
    base = (data_dir or user_data_dir()) / "advisories"
    base.mkdir(parents=True, exist_ok=True)
    is_zip = src.is_dir() or zipfile.is_zipfile(src)
    target = base / (_LOCAL_NAMES[0] if is_zip else _LOCAL_NAMES[1])
    fd, tmp_name = tempfile.mkstemp(dir=base, prefix=".incoming-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if src.is_dir():
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for file in sorted(src.rglob("*.json")):
                    archive.write(file, file.relative_to(src).as_posix())
        else:
            shutil.copyfile(src, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    for name in _LOCAL_NAMES:
        if base / name != target:
            (base / name).unlink(missing_ok=True)
    return target
