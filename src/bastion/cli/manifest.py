"""``bastion manifest``: sign model and configuration files together, and verify them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bastion.core.errors import ConfigError

__all__ = ["register"]

_console = Console()


def register(app: typer.Typer) -> None:
    """Add the ``manifest`` command group (``keygen``, ``create``, ``verify``) to ``app``."""
    group = typer.Typer(
        help="Integrity manifests: SHA-256 of model and config files, signed with Ed25519.",
        no_args_is_help=True,
        add_completion=False,
    )

    @group.command("keygen")
    def keygen_command(
        out: Annotated[Path, typer.Option(help="Private key file (written with mode 0600).")],
        force: Annotated[bool, typer.Option("--force", help="Replace existing key files.")] = False,
    ) -> None:
        """Create an Ed25519 key pair: OUT (private) and its .pub next to it."""
        from bastion.supply_chain.manifest import generate_keypair

        private, public = generate_keypair(out, overwrite=force)
        _console.print(f"Private key: {escape(str(private))}  Public key: {escape(str(public))}")

    @group.command("create")
    def create_command(
        models: Annotated[list[Path], typer.Argument(help="Model files to sign.")],
        key: Annotated[Path, typer.Option(help="Ed25519 private key (PEM).")],
        out: Annotated[Path, typer.Option(help="Manifest to write; files must lie in its folder.")],
        config: Annotated[
            list[Path] | None, typer.Option(help="Hyperparameter/config file (repeatable).")
        ] = None,
    ) -> None:
        """Hash MODELS and every --config file and sign them together into --out."""
        from bastion.supply_chain.manifest import create_manifest, load_private_key

        manifest = create_manifest(
            models, configs=config or [], private_key=load_private_key(key), out=out
        )
        _console.print(f"Signed {len(manifest['files'])} file(s) into {escape(str(out))}")

    @group.command("verify")
    def verify_command(
        manifest: Annotated[Path, typer.Argument(help="The manifest JSON file.")],
        public_key: Annotated[Path, typer.Option(help="Ed25519 public key (PEM).")],
        strict: Annotated[
            bool, typer.Option("--strict", help="Unlisted files in the folder are problems.")
        ] = False,
        output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    ) -> None:
        """Exit 0 when the signature verifies and every file matches; 1 otherwise."""
        from bastion.supply_chain.manifest import load_public_key, verify_manifest

        if output_format not in ("table", "json"):
            raise ConfigError(f"Expected --format to be table or json, but got {output_format!r}")
        result = verify_manifest(manifest, load_public_key(public_key), strict=strict)
        if output_format == "json":
            problems = [
                {"kind": p.kind, "path": p.path, "message": p.message} for p in result.problems
            ]
            typer.echo(
                json.dumps(
                    {
                        "manifest": result.manifest,
                        "ok": result.ok,
                        "files_checked": result.files_checked,
                        "problems": problems,
                    },
                    indent=2,
                )
            )
        else:
            for p in result.problems:
                _console.print(f"[bold red]{p.kind:>14}[/]  {escape(p.message)}", highlight=False)
            verdict = "[green]verified[/]" if result.ok else "[bold red]FAILED[/]"
            _console.print(f"{escape(str(manifest))}: {verdict} ({result.files_checked} files)")
        if not result.ok:
            raise typer.Exit(1)

    app.add_typer(group, name="manifest")
