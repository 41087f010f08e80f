"""Entry point of the `disco` command."""

from __future__ import annotations

import sys
import warnings

import typer

# asyncssh (the SSH provider, the test hosts) still names DSA keys, which newer cryptography
# releases warn about on import: noise on a command's stderr, not something a user can act on.
warnings.filterwarnings("ignore", message="DSA is deprecated", module="asyncssh")

from disco.cli import admin, clusters, farm, hosts, mapreduce, recommend, testbed
from disco.cli.client import ApiError
from disco.cli.output import Output, json_requested, show_error

app = typer.Typer(help="DISCO: distributed computing clusters in seconds.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.command("sm")(admin.serve)
app.add_typer(admin.token_app, name="token")
app.add_typer(clusters.app, name="cluster")
app.command("recommend")(recommend.recommend)
app.add_typer(hosts.app, name="hosts")
app.add_typer(mapreduce.mr_app, name="mr")
app.add_typer(testbed.app, name="testbed")
app.add_typer(farm.app, name="farm")
mapreduce.register(app)


def main() -> None:
    if not json_requested(sys.argv[1:]):
        app()  # usage errors as Typer prints them (markup escaped), exit code 2
        return
    # With --output json, a usage error (a bad option value, a missing argument) is printed as
    # the error envelope too, as every other error of the command is.
    try:
        result = app(standalone_mode=False)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" or not hasattr(exc, "format_message"):
            raise
        show_error(ApiError(getattr(exc, "exit_code", 2), "usage_error", exc.format_message()), Output.json)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        sys.stderr.write("Aborted!\n")
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
