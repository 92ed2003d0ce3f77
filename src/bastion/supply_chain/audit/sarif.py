"""SARIF 2.1.0 output for an audit, for code-scanning tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion._version import __version__
from bastion.core.threat_model import Severity
from bastion.supply_chain.audit.audit import AuditReport
from bastion.supply_chain.audit.patterns import RULES

__all__ = ["SARIF_SCHEMA", "to_sarif"]

#: The schema URI every SARIF 2.1.0 log names.
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def _location(path: str, line: int | None, column: int | None = None) -> dict[str, Any]:
    region: dict[str, Any] = {}
    if line:
        region["startLine"] = line
    if column:
        region["startColumn"] = column
    physical: dict[str, Any] = {"artifactLocation": {"uri": Path(path).as_posix()}}
    if region:
        physical["region"] = region
    return {"physicalLocation": physical}


def to_sarif(report: AuditReport) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log with one run; rules carry the advisory or rule ids."""
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for v in report.vulnerabilities:
        adv, dep = v.advisory, v.dependency
        rules.setdefault(
            adv.id,
            {
                "id": adv.id,
                "name": "VulnerableDependency",
                "shortDescription": {"text": adv.summary},
                "helpUri": f"https://osv.dev/vulnerability/{adv.id}",
                "properties": {"aliases": list(adv.aliases), "tags": ["security"]},
            },
        )
        results.append(
            {
                "ruleId": adv.id,
                "level": _LEVEL[adv.severity],
                "message": {
                    "text": f"{dep.name} {dep.version} is affected by {adv.id} "
                    f"({', '.join(adv.aliases) or 'no alias'}): {adv.summary}"
                },
                "locations": [_location(dep.source, dep.line)],
            }
        )
    for p in report.patterns:
        rule = RULES[p.rule]
        rules.setdefault(
            rule.id,
            {
                "id": rule.id,
                "name": rule.name,
                "shortDescription": {"text": rule.description},
                "properties": {"advisories": list(rule.advisories), "tags": ["security"]},
            },
        )
        results.append(
            {
                "ruleId": rule.id,
                "level": _LEVEL[p.severity],
                "message": {"text": p.message},
                "locations": [_location(p.path, p.line, p.column)],
            }
        )
    for d in report.unverifiable:
        rules.setdefault(
            "BST100",
            {
                "id": "BST100",
                "name": "unpinned-dependency",
                "shortDescription": {"text": "A dependency without an exact version."},
            },
        )
        results.append(
            {
                "ruleId": "BST100",
                "level": "note",
                "message": {"text": f"{d.name} is not pinned ({d.spec or 'no version'})"},
                "locations": [_location(d.source, d.line)],
            }
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion",
                        "version": __version__,
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }
