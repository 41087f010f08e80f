"""`disco farm …`: the task farm's server, and the owner's verbs (submit, status, results, list,
cancel, key create) against the service manager or a standalone `disco farm server`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from disco.cli.farm_client import client
from disco.cli.farm_submit import submit
from disco.cli.farm_owner import cancel, create_key, list_clients, list_projects, results, status

app = typer.Typer(help="The volunteer task farm (docs/taskfarm.md).", no_args_is_help=True)
key_app = typer.Typer(help="Enrollment keys for clients.", no_args_is_help=True)
app.add_typer(key_app, name="key")
app.command("submit")(submit)
app.command("status")(status)
app.command("results")(results)
app.command("list")(list_projects)
app.command("clients")(list_clients)
app.command("cancel")(cancel)
app.command("client")(client)
key_app.command("create")(create_key)


@app.command("server")
def server(
    db: str = typer.Option("", "--db", help="Database URL (default: SQLite in the data directory)."),
    data_dir: Path = typer.Option(Path("farm-data"), "--data-dir", help="Output, and the admin token file."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8890, "--port"),
    token_file: Optional[Path] = typer.Option(None, "--admin-token-file",
                                              help="The owner's token (made at first start; default DATA_DIR/admin-token)."),
    input_dir: list[Path] = typer.Option([], "--input-dir", help="A directory projects may name input files under."),
    url_host: list[str] = typer.Option([], "--allow-url-host", help="A host input URLs may name."),
    min_lease: float = typer.Option(30.0, "--min-lease", help="The shortest lease, seconds."),
    ddfs_master: str = typer.Option("", "--ddfs-master",
                                    help="The Disco master (http://host:port) whose DDFS tags projects may read and write."),
    ddfs_put_port: Optional[int] = typer.Option(None, "--ddfs-put-port",
                                                help="Where that cluster's nodes take uploads (default: DDFS_PUT_PORT, 8990)."),
    ddfs_token_file: Optional[Path] = typer.Option(None, "--ddfs-token-file", exists=True, dir_okay=False,
                                                   readable=True,
                                                   help="That cluster's token (default: DISCO_CLUSTER_TOKEN, if set)."),
    key_file: Optional[Path] = typer.Option(None, "--enrollment-key-file",
                                            help="An enrollment key accepted from the start (clients hold the same file)."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """The farm on its own, without the service manager."""
    import os

    import uvicorn

    from disco.taskfarm.server import create_app

    # The server reads these through config_from_env, as it does inside the service manager.
    os.environ["DISCO_FARM_INPUT_DIRS"] = ",".join(str(p.resolve()) for p in input_dir)
    os.environ["DISCO_FARM_URL_HOSTS"] = ",".join(url_host)
    os.environ["DISCO_FARM_MIN_LEASE_S"] = str(min_lease)
    if ddfs_master:
        os.environ["DISCO_FARM_DDFS_MASTER"] = ddfs_master
    if ddfs_put_port:
        os.environ["DISCO_FARM_DDFS_PUT_PORT"] = str(ddfs_put_port)
    if ddfs_token_file:
        os.environ["DISCO_FARM_DDFS_TOKEN_FILE"] = str(ddfs_token_file.resolve())
    data_dir = data_dir.resolve()
    url = db or f"sqlite:///{data_dir / 'farm.sqlite'}"
    try:
        app_ = create_app(url, data_dir, token_file, key_file)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"farm server on http://{host}:{port}; owner token in {token_file or data_dir / 'admin-token'}",
               err=True)
    uvicorn.run(app_, host=host, port=port, log_level=log_level, proxy_headers=False)


# `python -m disco.cli.farm …`: the farm's verbs without the rest of the CLI's imports (what a
# cluster node of the `taskfarm` framework runs).
if __name__ == "__main__":
    app()
