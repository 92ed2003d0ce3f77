"""Advisories in the OSV format (https://ossf.github.io/osv-schema/) and matching versions.

Only the PyPI ecosystem is read. An entry is validated when it is loaded; a malformed one
raises `AdvisoryDatabaseError` naming the file it came from. Version ranges of type
``ECOSYSTEM`` are evaluated with PEP 440 ordering (`packaging.version`); an explicit
``versions`` list is matched too (the union of both, as the schema says).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from bastion.core.errors import LoadError
from bastion.core.threat_model import Goal, Severity

__all__ = [
    "Advisory",
    "AdvisoryDatabaseError",
    "AffectedPackage",
    "advisories_from_list",
    "cvss3_base_score",
    "normalize_name",
    "parse_advisory",
]

_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
_NAME_SEPARATORS = re.compile(r"[-_.]+")


class AdvisoryDatabaseError(LoadError):
    """An advisory database (file, directory or zip) is missing or holds a malformed entry."""


def normalize_name(name: str) -> str:
    """The PEP 503 normal form of a distribution name: lower case, runs of ``-_.`` as ``-``."""
    return _NAME_SEPARATORS.sub("-", name).lower()


@dataclass(frozen=True)
class _Range:
    # (kind, version) pairs sorted by version; "0" for introduced is stored as None
    events: tuple[tuple[str, Version | None], ...]

    def contains(self, version: Version) -> bool:
        affected = False
        for kind, bound in self.events:
            if kind == "introduced":
                if bound is None or version >= bound:
                    affected = True
            elif bound is not None and (
                (kind == "fixed" and version >= bound)
                or (kind == "last_affected" and version > bound)
            ):
                affected = False
        return affected


class AffectedPackage:
    """One ``affected[]`` element for a PyPI package.

    Attributes:
        name: the PEP 503 normalised distribution name.
        ranges: the ``ECOSYSTEM`` ranges, already parsed.
        versions: the explicit list of affected version strings.
    """

    __slots__ = ("_parsed", "name", "ranges", "versions")

    def __init__(self, name: str, ranges: tuple[_Range, ...], versions: frozenset[str]) -> None:
        self.name = name
        self.ranges = ranges
        self.versions = versions
        # parsed lazily: a bulk database holds hundreds of thousands of version strings
        self._parsed: frozenset[Version] | None = None

    def __repr__(self) -> str:
        counts = f"{len(self.ranges)} ranges, {len(self.versions)} versions"
        return f"AffectedPackage({self.name!r}, {counts})"

    def _parsed_versions(self) -> frozenset[Version]:
        if self._parsed is None:
            parsed = set()
            for text in self.versions:
                with contextlib.suppress(InvalidVersion):  # legacy names match as strings only
                    parsed.add(Version(text))
            self._parsed = frozenset(parsed)
        return self._parsed

    def affects(self, version: str) -> bool:
        """Whether ``version`` (a PEP 440 string) is affected by this entry."""
        if version in self.versions:
            return True
        parsed = Version(version)
        if any(r.contains(parsed) for r in self.ranges):
            return True
        return bool(self.versions) and parsed in self._parsed_versions()


@dataclass(frozen=True)
class Advisory:
    """One advisory, reduced to what an audit needs.

    Attributes:
        id: the advisory id (``GHSA-...``, ``PYSEC-...``, ``CVE-...``).
        aliases: other ids for the same problem (CVE ids, GHSA ids).
        summary: one line; the details' first line when the entry has no summary.
        severity: bastion's severity, from the CVSS v3 vector or the database's label.
        goal: the attacker goal the vulnerability serves.
        affected: the PyPI packages and versions it affects.
        source: where the entry was read (file path, or zip member).
        raw: the entry as read, for JSON output.
    """

    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: Severity
    goal: Goal
    affected: tuple[AffectedPackage, ...]
    source: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def ids(self) -> tuple[str, ...]:
        """The id followed by its aliases."""
        return (self.id, *self.aliases)

    def affects(self, name: str, version: str) -> bool:
        """Whether distribution ``name`` at ``version`` is affected."""
        key = normalize_name(name)
        return any(a.name == key and a.affects(version) for a in self.affected)

    def fixed_versions(self, name: str) -> tuple[str, ...]:
        """The ``fixed`` versions the entry names for ``name``, in order."""
        key = normalize_name(name)
        out: list[str] = []
        for aff in self.affected:
            if aff.name == key:
                out += [str(v) for r in aff.ranges for k, v in r.events if k == "fixed" and v]
        return tuple(out)


def _bad(source: str, what: str) -> AdvisoryDatabaseError:
    return AdvisoryDatabaseError(f"Malformed OSV entry in {source}: {what}")


def _expect(source: str, where: str, value: Any, kind: type, text: str) -> Any:
    if not isinstance(value, kind):
        raise _bad(source, f"expected {where} to be {text}, got {type(value).__name__}")
    return value


def _parse_range(source: str, where: str, data: Any) -> _Range | None:
    _expect(source, where, data, dict, "an object")
    kind = _expect(source, f"{where}.type", data.get("type"), str, "a string")
    events = _expect(source, f"{where}.events", data.get("events"), list, "a list")
    if kind != "ECOSYSTEM":
        return None  # GIT and SEMVER ranges say nothing about PyPI release numbers
    parsed: list[tuple[str, Version | None]] = []
    for i, event in enumerate(events):
        _expect(source, f"{where}.events[{i}]", event, dict, "an object")
        keys = [k for k in event if k in _EVENT_KINDS]
        if len(keys) != 1:
            raise _bad(source, f"{where}.events[{i}] must hold exactly one of {_EVENT_KINDS}")
        key = keys[0]
        value = _expect(source, f"{where}.events[{i}].{key}", event[key], str, "a string")
        if key == "limit":
            continue
        if key == "introduced" and value == "0":
            parsed.append((key, None))
            continue
        try:
            parsed.append((key, Version(value)))
        except InvalidVersion:
            raise _bad(
                source, f"{where}.events[{i}].{key}={value!r} is not a PEP 440 version"
            ) from None
    order = {"introduced": 0, "last_affected": 1, "fixed": 1}
    parsed.sort(key=lambda ev: (ev[1] is not None, ev[1] or Version("0"), order[ev[0]]))
    return _Range(tuple(parsed))


def _parse_affected(source: str, i: int, data: Any) -> AffectedPackage | None:
    where = f"affected[{i}]"
    _expect(source, where, data, dict, "an object")
    package = _expect(source, f"{where}.package", data.get("package"), dict, "an object")
    ecosystem = _expect(
        source, f"{where}.package.ecosystem", package.get("ecosystem"), str, "a string"
    )
    name = _expect(source, f"{where}.package.name", package.get("name"), str, "a string")
    if ecosystem != "PyPI":
        return None
    ranges_raw = _expect(source, f"{where}.ranges", data.get("ranges", []), list, "a list")
    versions_raw = _expect(source, f"{where}.versions", data.get("versions", []), list, "a list")
    ranges = [_parse_range(source, f"{where}.ranges[{j}]", r) for j, r in enumerate(ranges_raw)]
    if not all(isinstance(v, str) for v in versions_raw):
        j = next(j for j, v in enumerate(versions_raw) if not isinstance(v, str))
        _expect(source, f"{where}.versions[{j}]", versions_raw[j], str, "a string")
    return AffectedPackage(
        normalize_name(name),
        tuple(r for r in ranges if r is not None),
        frozenset(versions_raw),
    )


_CVSS3 = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "CIA": {"H": 0.56, "L": 0.22, "N": 0.0},
}


def _roundup(value: float) -> float:
    scaled = round(value * 100000)
    if scaled % 10000 == 0:
        return scaled / 100000.0
    return (math.floor(scaled / 10000) + 1) / 10.0


def cvss3_base_score(vector: str) -> float:
    """The CVSS v3.x base score of a vector such as ``CVSS:3.1/AV:N/AC:L/...``.

    Follows the CVSS v3.1 specification, section 7.1 (base metric equations).
    Raises `ValueError` on a vector that is not CVSS v3.
    """
    parts = vector.split("/")
    if not parts or not parts[0].startswith("CVSS:3"):
        raise ValueError(f"not a CVSS v3 vector: {vector!r}")
    m = dict(p.split(":", 1) for p in parts[1:] if ":" in p)
    changed = m["S"] == "C"
    pr = {"N": 0.85, "L": 0.68 if changed else 0.62, "H": 0.5 if changed else 0.27}[m["PR"]]
    iss = 1 - (
        (1 - _CVSS3["CIA"][m["C"]]) * (1 - _CVSS3["CIA"][m["I"]]) * (1 - _CVSS3["CIA"][m["A"]])
    )
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    exploitability = 8.22 * _CVSS3["AV"][m["AV"]] * _CVSS3["AC"][m["AC"]] * pr
    exploitability *= _CVSS3["UI"][m["UI"]]
    if impact <= 0:
        return 0.0
    total = 1.08 * (impact + exploitability) if changed else impact + exploitability
    return _roundup(min(total, 10.0))


def _severity_of_score(score: float) -> Severity:
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    return Severity.LOW if score > 0 else Severity.INFO


_LABELS = {"CRITICAL": "critical", "HIGH": "high", "MODERATE": "medium", "MEDIUM": "medium"}
_LABELS["LOW"] = "low"


def _severity(data: Mapping[str, Any], specific: Mapping[str, Any]) -> Severity:
    for entry in data.get("severity") or []:
        if isinstance(entry, dict) and str(entry.get("type", "")).startswith("CVSS_V3"):
            try:
                return _severity_of_score(cvss3_base_score(str(entry.get("score", ""))))
            except (KeyError, ValueError):
                continue
    label = str(specific.get("severity", "")).upper()
    # no usable rating: medium, and the JSON output carries the raw entry for a person
    return Severity(_LABELS.get(label, "medium"))


_DISRUPTION = re.compile(r"denial of service|recursion|crash|out-of-bounds|overflow|exhaust")
_ESPIONAGE = re.compile(r"leak|disclos|header|credential|traversal.*read|read.*outside|cert")


def _goal(text: str, specific: Mapping[str, Any]) -> Goal:
    named = specific.get("bastion_goal")
    if isinstance(named, str) and named in {g.value for g in Goal}:
        return Goal(named)
    lowered = text.lower()
    if "code execution" in lowered or "deserializ" in lowered or "code injection" in lowered:
        return Goal.POISONING  # code run at load time can swap weights and predictions
    if _DISRUPTION.search(lowered):
        return Goal.DISRUPTION
    if _ESPIONAGE.search(lowered):
        return Goal.ESPIONAGE
    return Goal.POISONING


def parse_advisory(data: Any, source: str) -> Advisory | None:
    """Validate one OSV entry; `None` when it is withdrawn or names no PyPI package."""
    _expect(source, "the entry", data, dict, "a JSON object")
    ident = _expect(source, "id", data.get("id"), str, "a string")
    if not ident:
        raise _bad(source, "id is empty")
    aliases = _expect(source, "aliases", data.get("aliases") or [], list, "a list")
    for i, alias in enumerate(aliases):
        _expect(source, f"aliases[{i}]", alias, str, "a string")
    affected_raw = _expect(source, "affected", data.get("affected") or [], list, "a list")
    specific = data.get("database_specific") or {}
    _expect(source, "database_specific", specific, dict, "an object")
    summary = data.get("summary") or str(data.get("details") or "").strip().split("\n")[0]
    _expect(source, "summary", summary, str, "a string")
    affected = [_parse_affected(source, i, a) for i, a in enumerate(affected_raw)]
    pypi = tuple(a for a in affected if a is not None)
    if data.get("withdrawn") or not pypi:
        return None
    text = f"{summary} {data.get('details') or ''}"
    return Advisory(
        id=ident,
        aliases=tuple(a for a in aliases if a != ident),
        summary=summary or ident,
        severity=_severity(data, specific),
        goal=_goal(text, specific),
        affected=pypi,
        source=source,
        raw=data,
    )


def advisories_from_list(items: Sequence[Any], source: str) -> list[Advisory]:
    """Parse a JSON list of OSV entries; each entry's source is ``source[index]``."""
    out = []
    for i, item in enumerate(items):
        advisory = parse_advisory(item, f"{source}[{i}]")
        if advisory is not None:
            out.append(advisory)
    return out
