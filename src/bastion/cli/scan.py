"""``bastion scan PATH...``: model files checked for code they would run on load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bastion.core.errors import ConfigError

__all__ = ["register", "scan"]


def scan(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Model files or directories (recursive).")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table (default), json or sarif.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the report to this file.")
    ] = None,
    max_depth: Annotated[int, typer.Option(help="Deepest archive nesting scanned.")] = 8,
) -> None:
    """Scan model files by content for code that would run on load (exit 1 on any finding)."""
    from bastion.supply_chain.scan import OutputFormat, render, scan_paths

    if not paths:
        raise ConfigError("Expected at least one PATH to scan, but got none")
    try:
        fmt = OutputFormat(output_format)
    except ValueError:
        choices = ", ".join(f.value for f in OutputFormat)
        raise ConfigError(
            f"Expected --format to be one of {choices}, but got {output_format!r}"
        ) from None
    reports = scan_paths(paths, max_depth=max_depth)
    if output is not None and fmt is OutputFormat.TABLE:
        with output.open("w", encoding="utf-8") as handle:
            render(reports, fmt, Console(file=handle, width=160, no_color=True))
    else:
        text = render(reports, fmt, Console())
        if text is not None:
            if output is not None:
                output.write_text(text + "\n", encoding="utf-8")
            else:
                typer.echo(text)
    if any(not r.clean for r in reports):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``scan`` command to ``app``."""
    app.command("scan")(scan)
