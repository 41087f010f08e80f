"""Entry point of the `disco` command."""

from __future__ import annotations

import typer

from disco.cli import admin, clusters, mapreduce

app = typer.Typer(help="DISCO: distributed computing clusters in seconds.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.command("sm")(admin.serve)
app.add_typer(admin.token_app, name="token")
app.add_typer(clusters.app, name="cluster")
app.add_typer(mapreduce.mr_app, name="mr")
mapreduce.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
