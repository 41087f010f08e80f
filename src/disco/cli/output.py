"""How `disco` commands print results and errors: a table for people or JSON for scripts, and
errors verbatim (never read as Rich markup, so `[0-9]+[mMgG]` stays as written)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from enum import Enum
from typing import Any, NoReturn

import typer

from disco.cli.client import ApiError


class Output(str, Enum):
    table = "table"
    json = "json"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def exit_code(exc: ApiError) -> int:
    """1 when the service manager failed or could not be reached, 2 when the request was wrong."""
    return 1 if exc.status >= 500 or exc.status == 0 else 2


def show_error(exc: ApiError, output: Output) -> None:
    """The error envelope on stdout with `--output json` (what a script parses), else one plain
    line on stderr."""
    if output is Output.json:
        print_json(exc.envelope())
    else:
        sys.stderr.write(f"error ({exc.code or exc.status}): {exc.message}\n")
        sys.stderr.flush()


def fail(exc: ApiError, output: Output) -> NoReturn:
    show_error(exc, output)
    raise typer.Exit(exit_code(exc))


def json_requested(argv: Sequence[str]) -> bool:
    """Whether a command line asks for `--output json` (looked at before click parses it, for
    errors in the parsing itself)."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg in ("-o", "--output") and i + 1 < len(args) and args[i + 1] == "json":
            return True
        if arg in ("--output=json", "-ojson", "-o=json"):
            return True
    return False


def progress(message: str) -> None:
    """A progress line of a local command (testbeds), on stderr: stdout is kept for results."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def fail_locally(exc: Exception) -> NoReturn:
    """A local command's error (no service manager involved): one line on stderr, exit 1."""
    sys.stderr.write(f"error: {exc}\n")
    raise typer.Exit(1)
