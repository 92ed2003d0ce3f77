"""The audit: dependencies matched against advisories, plus unsafe loading calls in source.

`audit` is the Python API behind ``bastion audit``; its `AuditReport` turns into
`bastion.core.Finding` objects, JSON, or SARIF 2.1.0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.core.results import Finding
from bastion.core.threat_model import Goal, Severity
from bastion.supply_chain.audit.database import AdvisoryDatabase, default_database
from bastion.supply_chain.audit.inventory import (
    Dependency,
    installed_distributions,
    read_lock_file,
    read_requirements,
)
from bastion.supply_chain.audit.osv import Advisory
from bastion.supply_chain.audit.patterns import PatternFinding, scan_paths

__all__ = ["AuditReport", "Vulnerability", "audit"]


@dataclass(frozen=True)
class Vulnerability:
    """A dependency at a version that an advisory covers.

    Attributes:
        dependency: the package, its version and where it was found.
        advisory: the matching advisory.
    """

    dependency: Dependency
    advisory: Advisory

    @property
    def fixed_in(self) -> tuple[str, ...]:
        """Versions the advisory names as fixed for this package."""
        return self.advisory.fixed_versions(self.dependency.name)


@dataclass(frozen=True)
class AuditReport:
    """Everything one audit established.

    Attributes:
        database: where the advisories came from and how many there were.
        dependencies: every dependency read.
        vulnerabilities: dependencies an advisory covers.
        unverifiable: dependencies without an exact version (ranges, URLs, editable installs).
        patterns: unsafe loading calls found in source code.
        unparsed: source files that could not be parsed, with the reason.
    """

    database: str
    dependencies: tuple[Dependency, ...]
    vulnerabilities: tuple[Vulnerability, ...]
    unverifiable: tuple[Dependency, ...]
    patterns: tuple[PatternFinding, ...] = ()
    unparsed: tuple[str, ...] = field(default=())

    @property
    def clean(self) -> bool:
        """True when nothing was found (unpinned requirements and unparsed files count)."""
        return not (self.vulnerabilities or self.patterns or self.unverifiable or self.unparsed)

    def findings(self) -> list[Finding]:
        """One `Finding` per vulnerability, unsafe call, unpinned dependency and unparsed file."""
        out = [_vulnerability_finding(v) for v in self.vulnerabilities]
        out += [_pattern_finding(p) for p in self.patterns]
        out += [
            Finding(
                id=_slug(f"software.unpinned.{d.name}"),
                title=f"{d.name} is not pinned to an exact version ({d.spec or 'no version'})",
                goal=Goal.POISONING,
                leaf="software.vulnerable-dependency",
                severity=Severity.LOW,
                evidence={"package": d.name, "source": d.source, "line": d.line, "spec": d.spec},
                description="Advisories cannot be checked without an exact version; pin it.",
            )
            for d in self.unverifiable
        ]
        out += [
            Finding(
                id=_slug(f"software.unparsed.{i}"),
                title=f"Source file could not be parsed: {text}",
                goal=Goal.POISONING,
                leaf="software.unsafe-deserialization-call",
                severity=Severity.LOW,
                evidence={"reason": text},
            )
            for i, text in enumerate(self.unparsed)
        ]
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the report."""
        return {
            "database": self.database,
            "dependencies": len(self.dependencies),
            "vulnerabilities": [
                {
                    "package": v.dependency.name,
                    "version": v.dependency.version,
                    "source": v.dependency.source,
                    "line": v.dependency.line,
                    "id": v.advisory.id,
                    "aliases": list(v.advisory.aliases),
                    "summary": v.advisory.summary,
                    "severity": v.advisory.severity.value,
                    "goal": v.advisory.goal.value,
                    "fixed_in": list(v.fixed_in),
                }
                for v in self.vulnerabilities
            ],
            "unverifiable": [
                {"package": d.name, "source": d.source, "line": d.line, "spec": d.spec}
                for d in self.unverifiable
            ],
            "patterns": [
                {
                    "path": p.path,
                    "line": p.line,
                    "column": p.column,
                    "rule": p.rule,
                    "call": p.call,
                    "message": p.message,
                    "severity": p.severity.value,
                    "advisories": list(p.advisories),
                    "source": p.source,
                }
                for p in self.patterns
            ],
            "unparsed": list(self.unparsed),
        }


_SLUG = re.compile(r"[^a-z0-9._:/-]+")


def _slug(text: str) -> str:
    slug = _SLUG.sub("-", text.lower()).strip("-")
    return slug if slug and slug[0].isalnum() else f"x{slug}"


def _vulnerability_finding(v: Vulnerability) -> Finding:
    dep, adv = v.dependency, v.advisory
    fixed = ", ".join(v.fixed_in) or "no fixed release named"
    return Finding(
        id=_slug(f"software.vulnerable-dependency.{dep.name}.{adv.id}"),
        title=f"{dep.name} {dep.version}: {adv.id} {adv.summary}",
        goal=adv.goal,
        leaf="software.vulnerable-dependency",
        severity=adv.severity,
        evidence={
            "package": dep.name,
            "version": dep.version,
            "source": dep.source,
            "line": dep.line,
            "advisory": adv.id,
            "aliases": list(adv.aliases),
            "fixed_in": list(v.fixed_in),
        },
        description=f"Upgrade {dep.name} (fixed in: {fixed}).",
    )


def _pattern_finding(p: PatternFinding) -> Finding:
    return Finding(
        id=_slug(f"software.unsafe-call.{p.rule}.{p.path}:{p.line}:{p.column}"),
        title=f"{p.path}:{p.line}: {p.message}",
        goal=Goal.POISONING,
        leaf="software.unsafe-deserialization-call",
        severity=p.severity,
        evidence={
            "path": p.path,
            "line": p.line,
            "column": p.column,
            "rule": p.rule,
            "call": p.call,
            "advisories": list(p.advisories),
            "source": p.source,
        },
        description=p.message,
    )


def audit(
    *,
    requirements: Sequence[Path] = (),
    lock_files: Sequence[Path] = (),
    installed: bool = False,
    site_packages: Sequence[Path] | None = None,
    sources: Sequence[Path] = (),
    database: AdvisoryDatabase | None = None,
) -> AuditReport:
    """Audit dependencies against ``database`` (default: `default_database`) and scan sources.

    Args:
        requirements: pip requirements files.
        lock_files: poetry.lock, uv.lock, Pipfile.lock or pylock.toml files.
        installed: also audit installed distributions.
        site_packages: where to look for installed distributions (default: ``sys.path``);
            giving it implies ``installed``.
        sources: Python files or directories to scan for unsafe loading calls.
        database: the advisories.
    """
    db = database if database is not None else default_database()
    deps: list[Dependency] = []
    for path in requirements:
        deps += read_requirements(Path(path))
    for path in lock_files:
        deps += read_lock_file(Path(path))
    if installed or site_packages is not None:
        deps += installed_distributions(site_packages)
    vulns: list[Vulnerability] = []
    unverifiable: list[Dependency] = []
    for dep in deps:
        if not dep.pinned:
            unverifiable.append(dep)
            continue
        version = dep.version or ""
        vulns += [Vulnerability(dep, adv) for adv in db.matching(dep.name, version)]
    patterns, unparsed = scan_paths([Path(s) for s in sources]) if sources else ([], [])
    return AuditReport(
        database=f"{db.source} ({len(db)} advisories)",
        dependencies=tuple(deps),
        vulnerabilities=tuple(vulns),
        unverifiable=tuple(unverifiable),
        patterns=tuple(patterns),
        unparsed=tuple(unparsed),
    )
