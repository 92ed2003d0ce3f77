"""``bastion serve`` and ``bastion keys``: run the hardened gateway and manage its API keys.

The CLI sits above the gateway in the layer contract. It must stay free of FastAPI so that
every other command starts fast, so the gateway is imported inside these commands only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["DEFAULT_DB", "register"]

#: The audit database when ``--db`` is not given: a SQLite file in the working directory.
DEFAULT_DB = "sqlite:///bastion-gateway.db"

console = Console()

_DB_HELP = "SQLAlchemy database URL of the gateway's keys and audit log."


def _gateway() -> Any:
    import bastion.gateway

    return bastion.gateway


def _store(db: str) -> Any:
    return _gateway().Store(db)


def serve(
    model: Annotated[
        str | None,
        typer.Option(
            help="zoo:NAME, a .onnx file, a torch factory package.module:fn, or a "
            "scikit-learn pickle (needs --trust-pickle). Default: zoo:digits-cnn."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Gateway settings as a .json or .toml file.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    db: Annotated[str | None, typer.Option(help=_DB_HELP + f" Default: {DEFAULT_DB}")] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow loading a pickled model (runs code).")
    ] = False,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="A signed manifest (bastion manifest create) that must list and verify the "
            "model, its weights and the config file before anything is loaded."
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="The Ed25519 public key (PEM) the manifest is signed with."),
    ] = None,
) -> None:
    """Serve a model behind the hardened gateway (every guard on by default).

    With ``--manifest`` and ``--public-key`` (or ``manifest`` and ``manifest_public_key`` in
    the config), a model whose files do not verify is refused before it is loaded and
    before the audit database is opened.
    """
    import uvicorn

    gateway = _gateway()
    overrides: dict[str, Any] = {
        "model": model,
        "database_url": db,
        "manifest": None if manifest is None else str(manifest),
        "manifest_public_key": None if public_key is None else str(public_key),
    }
    if trust_pickle:
        overrides["trust_pickle"] = True
    settings = gateway.load_settings(config, **overrides)
    served = gateway.load_served(settings)  # verifies the manifest first
    store = gateway.Store(settings.database_url)
    if not any(k.role == "admin" and not k.revoked for k in store.list_keys()):
        key_id, key = store.create_key("admin", "created by bastion serve")
        console.print(
            f"Admin key (id {key_id}); it is shown only this once:\n{key}",
            highlight=False,
            soft_wrap=True,
        )
    app = gateway.create_app(settings, store=store, served=served)
    console.print(f"Serving {settings.model} on http://{host}:{port}", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


keys_app = typer.Typer(help="Create, list and revoke the gateway's API keys.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    db: Annotated[str, typer.Option(help=_DB_HELP)] = DEFAULT_DB,
    role: Annotated[str, typer.Option(help="client or admin.")] = "client",
    name: Annotated[str, typer.Option(help="A note on whose key it is.")] = "",
) -> None:
    """Create a key and print it once; only its hash is stored."""
    key_id, key = _store(db).create_key(role, name)
    console.print(f"Created {role} key {key_id}; it is shown only this once:", highlight=False)
    console.print(key, highlight=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(db: Annotated[str, typer.Option(help=_DB_HELP)] = DEFAULT_DB) -> None:
    """List keys (ids, roles, names, whether revoked or blocked by a review; never the keys)."""
    table = Table("id", "role", "name", "created", "revoked", "blocked")
    for k in _store(db).list_keys():
        table.add_row(
            k.key_id,
            k.role,
            k.name,
            k.created_at.isoformat(timespec="seconds"),
            "yes" if k.revoked else "",
            "yes" if k.blocked else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The id shown by 'bastion keys list'.")],
    db: Annotated[str, typer.Option(help=_DB_HELP)] = DEFAULT_DB,
) -> None:
    """Revoke a key: every later request with it is refused."""
    _store(db).revoke_key(key_id)
    console.print(f"Revoked key {key_id}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``keys`` group to ``app``."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
