"""`disco cluster …`: create, watch, scale and delete clusters through the REST API."""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

from disco.cli.client import ApiError, Client, resolve_endpoint

app = typer.Typer(help="Create, inspect, scale and delete clusters.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


class Output(str, Enum):
    table = "table"
    json = "json"


URL = typer.Option(None, "--url", help="Service manager URL (env DISCO_URL; default http://127.0.0.1:8888).")
TOKEN = typer.Option(None, "--token", help="API token (env DISCO_TOKEN, ~/.config/disco/config.yaml).")
OUTPUT = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts.")


def _client(url: Optional[str], token: Optional[str]) -> Client:
    return Client(*resolve_endpoint(url, token))


def _fail(exc: ApiError) -> None:
    err.print(f"[red]error[/red] ({exc.code or exc.status}): {exc.message}")
    raise typer.Exit(1 if exc.status >= 500 or exc.status == 0 else 2)


def _parse_property(text: str) -> tuple[str, str, str]:
    key, sep, value = text.partition("=")
    framework, dot, prop = key.partition(".")
    if not sep or not dot or not framework or not prop:
        raise typer.BadParameter(f"{text!r}: expected FRAMEWORK.PROPERTY=VALUE, e.g. spark.worker_memory=2g")
    return framework, prop, value


def _coerce(value: str) -> Any:
    # Numbers and booleans are sent typed; the server checks them against the framework.
    try:
        return yaml.safe_load(value) if value.strip() else value
    except yaml.YAMLError:
        return value


@app.command()
def create(
    framework: list[str] = typer.Option([], "--framework", "-f", help="Framework to deploy (repeatable)."),
    workers: int = typer.Option(None, "--workers", "-w", help="Number of worker nodes."),
    name: Optional[str] = typer.Option(None, help="Cluster name."),
    prop: list[str] = typer.Option([], "--property", "-p", help="FRAMEWORK.PROPERTY=VALUE (repeatable)."),
    spec_file: Optional[Path] = typer.Option(None, "--spec", help="Cluster spec as a YAML or JSON file."),
    provider: Optional[str] = typer.Option(None, help="Infrastructure provider (default: local)."),
    idle_timeout: Optional[int] = typer.Option(None, help="Seconds idle before deletion (0: never)."),
    max_age: Optional[int] = typer.Option(None, help="Seconds before deletion (0: never)."),
    wait: bool = typer.Option(False, "--wait", help="Show progress until the cluster is ready or failed."),
    output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN,
) -> None:
    """Create a cluster, e.g. `disco cluster create -f spark --workers 2 --wait`."""
    spec: dict[str, Any] = {}
    if spec_file:
        try:
            spec = yaml.safe_load(spec_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            err.print(f"[red]error[/red]: cannot read {spec_file}: {exc}")
            raise typer.Exit(2)
    frameworks = {f["name"] if isinstance(f, dict) else f: dict(f.get("properties", {})) if isinstance(f, dict) else {}
                  for f in spec.get("frameworks", [])}
    for name_ in framework:
        frameworks.setdefault(name_, {})
    for text in prop:
        fw, key, value = _parse_property(text)
        frameworks.setdefault(fw, {})[key] = _coerce(value)
    spec["frameworks"] = [{"name": n, "properties": p} for n, p in frameworks.items()]
    for key, value in (("workers", workers), ("name", name), ("provider", provider),
                       ("idle_timeout_s", idle_timeout), ("max_age_s", max_age)):
        if value is not None:
            spec[key] = value
    client = _client(url, token)
    try:
        cluster = client.request("POST", "/api/v1/clusters", json=spec)
        if not wait:
            _show(cluster, output)
            return
        if output is Output.table:
            out.print(f"cluster [bold]{cluster['id']}[/bold] requested")
        cluster = _wait(client, cluster["id"])
    except ApiError as exc:
        _fail(exc)
    _show(cluster, output)
    if cluster["state"] != "ready":
        raise typer.Exit(1)


def _wait(client: Client, cluster_id: str, *, after: int = 0,
          until: frozenset[str] = frozenset({"ready", "failed"})) -> dict[str, Any]:
    """Print each lifecycle event after `after` (to stderr, so --output json stays clean) until
    one of the steps in `until` happens; then the cluster as it is."""
    started = time.monotonic()
    with err.status("waiting…") as status:
        while True:
            for event in client.request("GET", f"/api/v1/clusters/{cluster_id}/events", params={"after": after}):
                after = event["id"]
                took = f" [dim]({event['duration_s']:.1f} s)[/dim]" if event["duration_s"] is not None else ""
                color = {"error": "red", "warning": "yellow"}.get(event["level"], "cyan")
                err.print(f"[{color}]{event['step']:>12}[/{color}] {event['message']}{took}")
                if event["step"] in until:
                    return client.request("GET", f"/api/v1/clusters/{cluster_id}")
            cluster = client.request("GET", f"/api/v1/clusters/{cluster_id}")
            status.update(f"{cluster['state']} ({time.monotonic() - started:.0f} s)")
            time.sleep(0.3)


def _last_event(client: Client, cluster_id: str) -> int:
    events = client.request("GET", f"/api/v1/clusters/{cluster_id}/events")
    return events[-1]["id"] if events else 0


def _show(cluster: dict[str, Any], output: Output) -> None:
    if output is Output.json:
        out.print_json(json.dumps(cluster))
        return
    table = Table(show_header=False, box=None)
    table.add_row("id", cluster["id"])
    table.add_row("name", cluster["name"])
    table.add_row("state", cluster["state"] + (f" — {cluster['status_reason']}" if cluster["status_reason"] else ""))
    table.add_row("frameworks", ", ".join(cluster["frameworks"]) or "(none)")
    table.add_row("nodes", ", ".join(f"{n['name']}={n['host'] or '…'}" for n in cluster["nodes"]))
    for fw, outputs in cluster.get("outputs", {}).get("frameworks", {}).items():
        for key, value in outputs.items():
            if key == "web_uis":
                for ui, link in value.items():
                    table.add_row(f"{fw} UI {ui}", link)
            else:
                table.add_row(f"{fw} {key}", str(value))
    out.print(table)


@app.command("list")
def list_(all_: bool = typer.Option(False, "--all", help="Include deleted clusters."),
          output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """List your clusters."""
    try:
        clusters = _client(url, token).request("GET", "/api/v1/clusters", params={"include_deleted": all_})
    except ApiError as exc:
        _fail(exc)
    if output is Output.json:
        out.print_json(json.dumps(clusters))
        return
    table = Table("id", "name", "state", "workers", "frameworks", "created")
    for c in clusters:
        table.add_row(c["id"], c["name"], c["state"], str(c["workers"]), ", ".join(c["frameworks"]),
                      (c["created_at"] or "")[:19])
    out.print(table)


@app.command()
def show(cluster_id: str, output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Show a cluster: state, nodes, addresses and web UIs."""
    try:
        _show(_client(url, token).request("GET", f"/api/v1/clusters/{cluster_id}"), output)
    except ApiError as exc:
        _fail(exc)


@app.command()
def scale(cluster_id: str, workers: int = typer.Argument(..., help="New number of workers."),
          wait: bool = typer.Option(False, "--wait", help="Wait until the cluster is ready again."),
          output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Add or remove workers of a ready cluster."""
    client = _client(url, token)
    try:
        before = client.request("GET", f"/api/v1/clusters/{cluster_id}")
        last = _last_event(client, cluster_id)
        cluster = client.request("PATCH", f"/api/v1/clusters/{cluster_id}", json={"workers": workers})
        if wait and before["workers"] != workers:
            cluster = _wait(client, cluster_id, after=last)
    except ApiError as exc:
        _fail(exc)
    _show(cluster, output)


@app.command()
def delete(cluster_id: str, wait: bool = typer.Option(False, "--wait", help="Wait until it is gone."),
           output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Delete a cluster: stop its processes and remove its files."""
    client = _client(url, token)
    try:
        last = _last_event(client, cluster_id)
        cluster = client.request("DELETE", f"/api/v1/clusters/{cluster_id}")
        if wait and cluster["state"] != "deleted":
            cluster = _wait(client, cluster_id, after=last, until=frozenset({"deleted"}))
    except ApiError as exc:
        _fail(exc)
    if output is Output.json:
        out.print_json(json.dumps(cluster))
    else:
        out.print(f"cluster {cluster_id}: {cluster['state']}")


@app.command()
def suspend(cluster_id: str, wait: bool = typer.Option(False, "--wait", help="Wait until suspended."),
            output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Stop a ready cluster's processes but keep its nodes, to resume later."""
    _action(cluster_id, "suspend", frozenset({"suspend", "failed"}), wait, output, url, token)


@app.command()
def resume(cluster_id: str, wait: bool = typer.Option(False, "--wait", help="Wait until ready."),
           output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Start a suspended (or failed) cluster again."""
    _action(cluster_id, "resume", frozenset({"ready", "failed"}), wait, output, url, token)


def _action(cluster_id: str, action: str, until: frozenset[str], wait: bool, output: Output,
            url: Optional[str], token: Optional[str]) -> None:
    client = _client(url, token)
    try:
        last = _last_event(client, cluster_id)
        cluster = client.request("POST", f"/api/v1/clusters/{cluster_id}/actions/{action}")
        if wait:
            cluster = _wait(client, cluster_id, after=last, until=until)
    except ApiError as exc:
        _fail(exc)
    _show(cluster, output)


@app.command()
def logs(cluster_id: str,
         process: Optional[str] = typer.Argument(None, help="NODE/PROCESS, e.g. master/spark-master; "
                                                 "default: the deployment log."),
         follow: bool = typer.Option(False, "--follow", "-F", help="Keep printing new lines."),
         url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Print the deployment log, or one process's log (`disco cluster logs ID --list` to see them)."""
    client = _client(url, token)
    try:
        if process is None and not follow:
            out.print(client.request("GET", f"/api/v1/clusters/{cluster_id}/deployment.log"), end="")
            return
        if process is None:
            for line in client.stream_lines(f"/api/v1/clusters/{cluster_id}/events", {"follow": True}):
                event = json.loads(line)
                out.print(f"{event['at'][:19]} {event['step']}: {event['message']}")
            return
        if process == "list":
            for entry in client.request("GET", f"/api/v1/clusters/{cluster_id}/logs"):
                out.print(f"{entry['node']}/{entry['process']}")
            return
        node, _, name = process.partition("/")
        path = f"/api/v1/clusters/{cluster_id}/logs/{node}/{name}"
        if follow:
            for line in client.stream_lines(path, {"follow": True}):
                out.print(line, markup=False, highlight=False)
        else:
            out.print(client.request("GET", path), end="", markup=False, highlight=False)
    except ApiError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        pass


@app.command()
def frameworks(output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """List the frameworks a cluster can have, with their properties."""
    try:
        catalogue = _client(url, token).request("GET", "/api/v1/frameworks")
    except ApiError as exc:
        _fail(exc)
    if output is Output.json:
        out.print_json(json.dumps(catalogue))
        return
    table = Table("framework", "version", "needs", "properties (default)")
    for fw in catalogue:
        props = ", ".join(f"{k}={v.get('default')}" for k, v in fw["properties"].items())
        table.add_row(fw["name"], fw["version"], ", ".join(fw["depends"]), props)
    out.print(table)
