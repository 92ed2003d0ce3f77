"""Renderers for scan reports: a rich table for people, JSON for scripts, SARIF 2.1.0 for
code-scanning tools. `OutputFormat` lists them; `render` dispatches exhaustively."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import assert_never
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bastion._version import __version__
from bastion.supply_chain.scan.interface import RULES, ScanReport, Verdict

__all__ = ["OutputFormat", "render", "render_json", "render_sarif", "render_table"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Verdict.DANGEROUS: "error", Verdict.SUSPICIOUS: "warning", Verdict.UNPARSEABLE: "warning"}
_STYLE = {
    Verdict.DANGEROUS: "bold red",
    Verdict.SUSPICIOUS: "yellow",
    Verdict.UNPARSEABLE: "magenta",
}


class OutputFormat(enum.StrEnum):
    """How ``bastion scan`` prints its reports."""

    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"


def render_json(reports: Sequence[ScanReport]) -> str:
    """All reports as one JSON document with a summary."""
    found = sum(len(r.issues) for r in reports)
    body = {
        "tool": "bastion",
        "version": __version__,
        "files": len(reports),
        "issues": found,
        "reports": [r.to_dict() for r in reports],
    }
    return json.dumps(body, indent=2)


def render_sarif(reports: Sequence[ScanReport]) -> str:
    """All issues as a SARIF 2.1.0 log with one run."""
    rule_ids = sorted({i.rule for r in reports for i in r.issues})
    rules = [
        {
            "id": rid,
            "name": rid,
            "shortDescription": {"text": RULES[rid]},
            "helpUri": "https://github.com/bastion-ml/bastion",
        }
        for rid in rule_ids
    ]
    results = []
    for report in reports:
        for issue in report.issues:
            where = f" in {issue.member}" if issue.member else ""
            result: dict[str, object] = {
                "ruleId": issue.rule,
                "ruleIndex": rule_ids.index(issue.rule),
                "level": _LEVEL[issue.verdict],
                "message": {"text": f"{issue.verdict.value}{where}: {issue.reason}"},
                "locations": [
                    {"physicalLocation": {"artifactLocation": {"uri": _uri(issue.path)}}}
                ],
                "properties": {
                    "verdict": issue.verdict.value,
                    "format": issue.format,
                    "member": issue.member,
                    "global": issue.global_name,
                    "offset": issue.offset,
                },
            }
            results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion",
                        "version": __version__,
                        "informationUri": "https://github.com/bastion-ml/bastion",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2)


def _uri(path: str) -> str:
    return quote(path.replace("\\", "/"), safe="/:")


def render_table(reports: Sequence[ScanReport], console: Console) -> None:
    """Print one row per issue (and a line per clean file count) to ``console``."""
    table = Table(title="Model-file scan", title_justify="left")
    for column in ("file", "member", "format", "verdict", "reason"):
        table.add_column(column, overflow="fold")
    for report in reports:
        for issue in report.issues:
            style = _STYLE[issue.verdict]
            table.add_row(
                escape(issue.path),
                escape(issue.member or ""),
                issue.format,
                f"[{style}]{issue.verdict.value}[/]",
                escape(issue.reason),
            )
    clean = sum(1 for r in reports if r.clean)
    if table.row_count:
        console.print(table)
    console.print(
        f"{len(reports)} files scanned: {clean} clean, {len(reports) - clean} with issues"
    )


def render(reports: Sequence[ScanReport], fmt: OutputFormat, console: Console) -> str | None:
    """Render in ``fmt``: the text for JSON and SARIF, or None after printing the table."""
    if fmt is OutputFormat.JSON:
        return render_json(reports)
    if fmt is OutputFormat.SARIF:
        return render_sarif(reports)
    if fmt is OutputFormat.TABLE:
        render_table(reports, console)
        return None
    assert_never(fmt)  # pragma: no cover - the branches above are exhaustive
