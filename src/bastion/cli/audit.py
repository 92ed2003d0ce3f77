"""``bastion audit``: known-vulnerable dependencies and unsafe loading calls in source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bastion.core.errors import ConfigError

if TYPE_CHECKING:
    from bastion.supply_chain.audit import AuditReport

__all__ = ["register"]

_FORMATS = ("table", "json", "sarif")
_console = Console()


def _print_table(rep: AuditReport) -> None:
    table = Table(title=f"Audit against {rep.database}", title_justify="left")
    for column in ("severity", "what", "where", "advisory / rule", "summary"):
        table.add_column(column)
    for v in rep.vulnerabilities:
        d = v.dependency
        where = f"{d.source}:{d.line}" if d.line else d.source
        ids = ", ".join(v.advisory.ids)
        table.add_row(
            v.advisory.severity.value,
            escape(f"{d.name} {d.version}"),
            escape(where),
            escape(ids),
            escape(v.advisory.summary),
        )
    for p in rep.patterns:
        table.add_row(
            p.severity.value,
            escape(p.call),
            escape(f"{p.path}:{p.line}:{p.column}"),
            escape(", ".join((p.rule, *p.advisories))),
            escape(p.message),
        )
    for d in rep.unverifiable:
        where = f"{d.source}:{d.line}" if d.line else d.source
        table.add_row("low", escape(d.name), escape(where), "unpinned", escape(d.spec or "-"))
    for text in rep.unparsed:
        table.add_row("low", "unparsed source", escape(text), "-", "could not be parsed")
    if table.row_count:
        _console.print(table)
    verdict = "clean" if rep.clean else f"{table.row_count} finding(s)"
    _console.print(f"{len(rep.dependencies)} dependencies checked: {verdict}")


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command group (``audit``, ``audit update``) to ``app``."""
    group = typer.Typer(
        help="Known-vulnerable dependencies (OSV advisories) and unsafe loading calls in code.",
        add_completion=False,
    )

    @group.callback(invoke_without_command=True)
    def audit_command(
        ctx: typer.Context,
        requirements: Annotated[
            list[Path] | None,
            typer.Option("--requirements", "-r", help="A pip requirements file (repeatable)."),
        ] = None,
        lock: Annotated[
            list[Path] | None,
            typer.Option(help="poetry.lock, uv.lock, Pipfile.lock or pylock.toml (repeatable)."),
        ] = None,
        installed: Annotated[
            bool, typer.Option("--installed", help="Audit this interpreter's distributions.")
        ] = False,
        venv: Annotated[
            Path | None, typer.Option(help="Audit the distributions of this virtualenv.")
        ] = None,
        source: Annotated[
            list[Path] | None,
            typer.Option(help="Python file or directory to scan for unsafe loads (repeatable)."),
        ] = None,
        db: Annotated[
            Path | None,
            typer.Option(
                help="OSV database: a directory, zip or JSON file (default: local copy "
                "from 'audit update', else the embedded snapshot)."
            ),
        ] = None,
        output_format: Annotated[
            str, typer.Option("--format", help="table, json or sarif.")
        ] = "table",
    ) -> None:
        """Audit dependencies and code; exit 1 when anything is found.

        With no input given, audits the installed distributions.
        """
        if ctx.invoked_subcommand is not None:
            return
        from bastion.supply_chain.audit import (
            audit,
            default_database,
            load_database,
            site_packages_of,
            to_sarif,
        )

        if output_format not in _FORMATS:
            raise ConfigError(
                f"Expected --format to be one of {', '.join(_FORMATS)}, but got {output_format!r}"
            )
        nothing_given = not (requirements or lock or installed or venv or source)
        report = audit(
            requirements=requirements or [],
            lock_files=lock or [],
            installed=installed or nothing_given,
            site_packages=site_packages_of(venv) if venv is not None else None,
            sources=source or [],
            database=load_database(db) if db is not None else default_database(),
        )
        if output_format == "json":
            typer.echo(json.dumps(report.to_dict(), indent=2))
        elif output_format == "sarif":
            typer.echo(json.dumps(to_sarif(report), indent=2))
        else:
            _print_table(report)
        if not report.clean:
            raise typer.Exit(1)

    @group.command("update")
    def update_command(
        file: Annotated[Path, typer.Argument(help="OSV advisories: JSON list, zip or directory.")],
    ) -> None:
        """Validate FILE and make it the local advisory database (replacing the previous one)."""
        from bastion.supply_chain.audit import load_database, update_database

        target = update_database(file)
        _console.print(
            f"Installed {len(load_database(target))} advisories at {escape(str(target))}"
        )

    app.add_typer(group, name="audit")
