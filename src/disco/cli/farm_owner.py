"""The owner's farm verbs: status, results, list, clients, cancel, key create."""

from __future__ import annotations

import base64
import sys
from typing import Any, Optional

import typer

from disco.cli import options
from disco.cli.client import ApiError
from disco.cli.output import Output, fail, print_json

OUTPUT = typer.Option(Output.table, "--output", "-o", help="table or json.")



def _call(output: Output, url: Optional[str], token: Optional[str], method: str, path: str, **kwargs: Any) -> Any:
    """One request to the farm; an API error ends the command as `fail` says (exit code, message)."""
    try:
        return options.farm_client(url, token).request(method, path, **kwargs)
    except ApiError as exc:
        fail(exc, output)

def _line(p: dict) -> str:
    u = p["units"]
    eta = "-" if p["eta_s"] is None else f"{p['eta_s']:.0f}s"
    return (f"{p['project_id']}  {p['state']:<9}  done {u['assimilated']}/{sum(u.values())}  "
            f"in flight {p['instances_in_flight']}  failed {u['failed']}  {p['throughput_units_per_s']}/s  eta {eta}  "
            f"{p['name']}")


def status(project_id: str, output: Output = OUTPUT, url: Optional[str] = options.URL,
           token: Optional[str] = options.TOKEN) -> None:
    """A project's units by state, instances in flight, throughput and ETA."""
    data = _call(output, url, token, "GET", f"/api/v1/farm/projects/{project_id}")
    if output == Output.json:
        print_json(data)
    else:
        typer.echo(_line(data))


def list_projects(output: Output = OUTPUT, url: Optional[str] = options.URL,
                  token: Optional[str] = options.TOKEN) -> None:
    """Your projects."""
    data = _call(output, url, token, "GET", "/api/v1/farm/projects")
    if output == Output.json:
        print_json(data)
    else:
        for p in data["projects"]:
            typer.echo(_line(p))


def results(project_id: str, output: Output = OUTPUT, url: Optional[str] = options.URL,
            token: Optional[str] = options.TOKEN) -> None:
    """The assimilated outputs in unit order, as bytes on stdout (json: the API's answer)."""
    data = _call(output, url, token, "GET", f"/api/v1/farm/projects/{project_id}/results")
    if output == Output.json:
        print_json(data)
        return
    for item in data["results"]:
        sys.stdout.buffer.write(base64.b64decode(item["output"]))
    sys.stdout.buffer.flush()
    if not data["complete"]:
        typer.echo("(not complete yet: more units to come)", err=True)


def cancel(project_id: str, output: Output = OUTPUT, url: Optional[str] = options.URL,
           token: Optional[str] = options.TOKEN) -> None:
    """Stop handing out a project's units; what is assimilated stays."""
    data = _call(output, url, token, "POST", f"/api/v1/farm/projects/{project_id}/cancel", json={})
    print_json(data) if output == Output.json else typer.echo(_line(data))


def list_clients(output: Output = OUTPUT, url: Optional[str] = options.URL,
                 token: Optional[str] = options.TOKEN) -> None:
    """The clients enrolled with your keys, and their instances by state."""
    data = _call(output, url, token, "GET", "/api/v1/farm/clients")
    if output == Output.json:
        print_json(data)
        return
    for c in data["clients"]:
        done = " ".join(f"{state} {n}" for state, n in sorted(c["instances"].items())) or "no work yet"
        typer.echo(f"{c['client_id']}  {c['name']:<20}  slots {c['slots']}  {done}")


def create_key(description: str = typer.Option("", "--description"), output: Output = OUTPUT,
               url: Optional[str] = options.URL, token: Optional[str] = options.TOKEN) -> None:
    """An enrollment key for volunteers' clients: shown once, stored only as a hash."""
    data = _call(output, url, token, "POST", "/api/v1/farm/keys", json={"description": description})
    if output == Output.json:
        print_json(data)
    else:
        typer.echo("enrollment key (shown once; give it to clients as X-Farm-Key):", err=True)
        typer.echo(data["key"])
