"""`disco mr master|node` (run the Map/Reduce runtime) and the job verbs Disco users know:
`disco jobs`, `wait`, `results`, `events`, `kill`, `purge`, `nodeinfo`."""

from __future__ import annotations

import json
import time
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

mr_app = typer.Typer(help="Run a Disco map/reduce master or node.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
MASTER = typer.Option(None, "--master", "-M", help="Master URL (default: DISCO_MASTER or http://localhost:8989).")


@mr_app.command("master", context_settings=PASS_THROUGH, add_help_option=False)
def master(ctx: typer.Context) -> None:
    """Run a master: --host H --port P --data DIR [--scheduler fair|fifo] [--token-file F] (--help for all)."""
    from disco.mapreduce.master.__main__ import main

    main(list(ctx.args))


@mr_app.command("node", context_settings=PASS_THROUGH, add_help_option=False)
def node(ctx: typer.Context) -> None:
    """Run a node: --master URL --host N --port P --data DIR [--slots S] [--token-file F] (--help for all)."""
    from disco.mapreduce.node.__main__ import main

    main(list(ctx.args))


def _disco(master_url: Optional[str]) -> Any:
    from disco.core import Disco

    return Disco(master_url)


def _resolve(disco: Any, name: str) -> str:
    """Disco's shorthands: `@` is the newest job, `@?text` the newest whose name has text."""
    if not name.startswith("@"):
        return name
    wanted = name[2:] if name.startswith("@?") else ""
    for _, _, jobname in sorted(disco.joblist(), reverse=True):
        if wanted in jobname:
            return jobname
    raise _Failure(f"no job matches {name!r}")


class _Failure(Exception):
    pass


def _run(action: Any) -> None:
    from disco.error import CommError, DiscoError

    try:
        action()
    except CommError as exc:
        err.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    except (DiscoError, _Failure) as exc:
        err.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(2) from None


def _when(started: Any) -> str:
    """A job's start (seconds since the epoch, as the joblist gives it) in local time, the way
    job events print it."""
    try:
        return time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(float(started)))
    except (TypeError, ValueError, OverflowError, OSError):
        return str(started)


def register(app: typer.Typer) -> None:
    """Add the job verbs at the top level of `disco`, as in Disco's own command."""

    @app.command("jobs", rich_help_panel="Map/Reduce jobs")
    def jobs(master: Optional[str] = MASTER, json_out: bool = typer.Option(False, "--json")) -> None:
        """List the master's jobs, newest first."""
        def show() -> None:
            listing = sorted(_disco(master).joblist(), reverse=True)
            if json_out:
                out.print_json(json.dumps(listing))
                return
            table = Table("started", "status", "job")
            for started, status, name in listing:
                table.add_row(_when(started), status, name)
            out.print(table)
        _run(show)

    @app.command("wait", rich_help_panel="Map/Reduce jobs")
    def wait(job: str, master: Optional[str] = MASTER,
             timeout: Optional[float] = typer.Option(None, help="Give up after this many seconds."),
             show: bool = typer.Option(False, "--show", help="Print the job's events as they come.")) -> None:
        """Wait for a job to finish and print its result URLs, one list of replicas a line."""
        def run() -> None:
            disco = _disco(master)
            for replicas in disco.wait(_resolve(disco, job), timeout=timeout, show=show or None):
                out.print(" ".join(replicas) if isinstance(replicas, list) else replicas, soft_wrap=True)
        _run(run)

    @app.command("results", rich_help_panel="Map/Reduce jobs")
    def results(job: str, master: Optional[str] = MASTER) -> None:
        """Print a job's status and result URLs without waiting."""
        def run() -> None:
            disco = _disco(master)
            status, urls = disco.results(_resolve(disco, job), timeout=0)
            out.print(status)
            for replicas in urls or []:
                out.print(" ".join(replicas) if isinstance(replicas, list) else replicas, soft_wrap=True)
        _run(run)

    @app.command("events", rich_help_panel="Map/Reduce jobs")
    def events(job: str, master: Optional[str] = MASTER) -> None:
        """Print a job's events: time, host, message."""
        def run() -> None:
            disco = _disco(master)
            for _, (when, host, message) in disco.events(_resolve(disco, job)):
                out.print(f"{when} {host} {message}", markup=False, highlight=False)
        _run(run)

    @app.command("kill", rich_help_panel="Map/Reduce jobs")
    def kill(jobs: list[str], master: Optional[str] = MASTER) -> None:
        """Stop running jobs."""
        def run() -> None:
            disco = _disco(master)
            for name in jobs:
                disco.kill(_resolve(disco, name))
        _run(run)

    @app.command("purge", rich_help_panel="Map/Reduce jobs")
    def purge(jobs: list[str], master: Optional[str] = MASTER) -> None:
        """Delete jobs and all their data on every node."""
        def run() -> None:
            disco = _disco(master)
            for name in jobs:
                disco.purge(_resolve(disco, name))
        _run(run)

    @app.command("nodeinfo", rich_help_panel="Map/Reduce jobs")
    def nodeinfo(master: Optional[str] = MASTER) -> None:
        """Show the master's nodes: slots, running tasks, counters, blacklisting."""
        _run(lambda: out.print_json(json.dumps(_disco(master).nodeinfo())))
