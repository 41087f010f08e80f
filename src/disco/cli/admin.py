"""Commands that run on the service manager's machine: serve it, make tokens."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from typing import Optional

import typer

from disco.cluster.settings import Settings, listening_url

token_app = typer.Typer(help="Manage API tokens (admin: writes to the service manager's database).",
                        no_args_is_help=True)


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8888, help="Port to listen on."),
    log_level: str = typer.Option("info", help="Log level."),
) -> None:
    """Run the service manager (REST API under /api/v1, OCCI under /disco/)."""
    import uvicorn

    from disco.cli.client import DEFAULT_URL
    from disco.cluster.api.app import create_app
    from disco.cluster.api.limits import HEAD_BUFFER_BYTES
    from disco.cluster.store import Store

    try:
        settings = Settings.from_env()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not os.environ.get("DISCO_PUBLIC_URL"):
        settings = replace(settings, public_url=listening_url(host, port))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _first_token(settings, Store(settings.effective_database_url))
    typer.echo(f"DISCO service manager on http://{host}:{port}, public URL {settings.public_url}  "
               f"(data: {settings.data_dir})", err=True)
    typer.echo(f"dashboard: {settings.public_url.rstrip('/')}/ui/ (sign in with a token)", err=True)
    if settings.public_url != DEFAULT_URL:  # the disco command looks at the default otherwise
        typer.echo(f"in another terminal, `export DISCO_URL={settings.public_url}` for the disco command",
                   err=True)
    # h11 refuses a request head it has not fully received once it passes this size, with a bare
    # 400; above the middleware's own limits, so that those answer first with 431/414 and a reason.
    # h11 by name: with httptools installed (the farm server's fast path wants it) uvicorn would
    # pick it, and httptools refuses a long target with a bare 400 before our 414.
    # proxy_headers off: the client address (which failed authentications are counted by) is the
    # peer's, not an X-Forwarded-For any local process could write.
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level,
                http="h11", h11_max_incomplete_event_size=HEAD_BUFFER_BYTES, proxy_headers=False)


def _first_token(settings: Settings, store: object) -> None:
    """On a fresh data directory, make a token for tenant 'default' so the CLI works at once."""
    from disco.cluster.store import Store

    assert isinstance(store, Store)
    path = settings.data_dir / "token"
    try:
        if store.count_tokens() == 0 and not path.exists():
            token = store.create_token("default", "made by the first start of the service manager", admin=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(token + "\n")
            typer.echo(f"created a token for tenant 'default' (also an admin's: it manages the SSH host pool) in {path}", err=True)
        if path.exists():
            # A second terminal finds this file only through the same DISCO_DATA_DIR.
            where = (f"; in another terminal, `export DISCO_DATA_DIR={settings.data_dir}` first"
                     if os.environ.get("DISCO_DATA_DIR") else "")
            typer.echo(f"the disco command reads tenant 'default''s token from {path}{where}", err=True)
    finally:
        store.close()


@token_app.command("create")
def create_token(
    tenant: Optional[str] = typer.Option(None, "--tenant", help="Tenant the token acts for (with --admin: default 'admin')."),
    description: str = typer.Option("", help="A note on what the token is for."),
    admin: bool = typer.Option(False, "--admin", help="The token may also manage the SSH host pool."),
) -> None:
    """Make a new token; it is printed once, alone on the last line, and stored only hashed."""
    from disco.cluster.store import Store

    if tenant is None and admin:
        tenant = "admin"
    if tenant is None:
        typer.echo("error: --tenant is needed (or --admin, for an admin token)", err=True)
        raise typer.Exit(2)
    if not tenant.strip() or len(tenant) > 64:
        typer.echo("error: --tenant must be 1 to 64 characters", err=True)
        raise typer.Exit(2)
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.effective_database_url)
    try:
        token = store.create_token(tenant, description, admin=admin)
    finally:
        store.close()
    kind = "admin token" if admin else "token"
    typer.echo(f"{kind} for tenant {tenant} (shown once; keep it secret):", err=True)
    sys.stdout.write(token + "\n")
