"""`disco cluster env ID`: the shell variables (and private files) that let the frameworks'
own clients connect to a cluster's authenticated endpoints with no further argument:

    eval "$(disco cluster env my-cluster)"
    python -c 'import distributed; print(distributed.Client())'
"""

from __future__ import annotations

import shlex
from typing import Optional

import typer

from disco.cli.client import ApiError
from disco.cli.options import TOKEN, URL
from disco.cli.output import Output, fail, print_json
from disco.connect import fetch_access


def env(
    cluster: str = typer.Argument(..., metavar="CLUSTER", help="The cluster's id, a unique prefix of it, or its name."),
    output: Output = typer.Option(Output.table, "--output", "-o",
                                  help="table: `export` lines for a shell to eval; json: the same as data."),
    url: Optional[str] = URL, token: Optional[str] = TOKEN,
) -> None:
    """Print `export` lines for the cluster's clients (use: eval "$(disco cluster env ID)").

    Certificates, keys and client configuration go to ~/.config/disco/clusters/<id>/ (0700,
    files 0600). The output holds the cluster's credentials: evaluate it, do not share it."""
    try:
        access = fetch_access(cluster, url=url, token=token)
    except ApiError as exc:
        fail(exc, output)
    except (OSError, ValueError) as exc:  # the private directory, or a malformed answer
        fail(ApiError(0, "local_error", str(exc)), output)
    if output is Output.json:
        print_json({"id": access.id, "name": access.name, "directory": str(access.directory),
                    "env": access.env})
        return
    typer.echo(f"# DISCO cluster {access.name} ({access.id}); files in {access.directory}")
    for name, value in sorted(access.env.items()):
        typer.echo(f"export {name}={shlex.quote(value)}")
