"""`disco cluster …`: create, watch, scale and delete clusters through the REST API."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from disco.cli import options
from disco.cli.client import ApiError, Client, resolve_cluster_id, short_ids
from disco.cli.clouds_yaml import CloudsFileError, load_cloud, yaml_error_position
from disco.cli.options import TOKEN, URL
from disco.cli.output import Output, fail, print_json
from disco.cli.cluster_env import env as env_command
from disco.cli.plan_view import show_plan
from disco.connect import clusters_dir

app = typer.Typer(help="Create, inspect, scale and delete clusters.", no_args_is_help=True)
# Text from the service manager (names, messages, logs) is never read as Rich markup: it is
# passed as Text or escaped, so that e.g. `[0-9]+[mMgG]` is shown as written.
out = Console()
err = Console(stderr=True)

OUTPUT = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts (errors too).")
CLUSTER = typer.Argument(..., help="The cluster's id, a unique prefix of it, or its name.")


def _client(url: Optional[str], token: Optional[str]) -> Client:
    return options.client(url, token)


def _target(ref: str, output: Output, url: Optional[str], token: Optional[str]) -> tuple[Client, str]:
    """A client and the full id of the cluster the user named (id, id prefix or name)."""
    client = _client(url, token)
    try:
        return client, resolve_cluster_id(client, ref)
    except ApiError as exc:
        fail(exc, output)


def _parse_property(text: str) -> tuple[str, str, str]:
    key, sep, value = text.partition("=")
    framework, dot, prop = key.partition(".")
    if not sep or not dot or not framework or not prop:
        raise ValueError(f"--property {text!r}: expected FRAMEWORK.PROPERTY=VALUE, e.g. spark.worker_memory=2g")
    return framework, prop, value


def _parse_override(text: str) -> tuple[str, str, str, str]:
    target, sep, value = text.partition("=")
    where, colon, key = target.partition(":")
    framework, slash, file_name = where.partition("/")
    if not (sep and colon and slash and framework and file_name and key):
        raise ValueError(f"--override {text!r}: expected FRAMEWORK/FILE:KEY=VALUE, "
                         "e.g. hadoop/hdfs-site.xml:dfs.blocksize=268435456")
    return framework, file_name, key, value


def _coerce(value: str) -> Any:
    # Numbers and booleans are sent typed; the server checks them against the framework.
    try:
        return yaml.safe_load(value) if value.strip() else value
    except yaml.YAMLError:
        return value


# What a cluster is made of: `create` and `plan` take the same options (one definition).
FRAMEWORKS = typer.Option([], "--framework", "-f", help="Framework to deploy (repeatable).")
WORKERS = typer.Option(None, "--workers", "-w", help="Number of worker nodes.")
NAME = typer.Option(None, help="Cluster name.")
PROPERTIES = typer.Option([], "--property", "-p", help="FRAMEWORK.PROPERTY=VALUE (repeatable).")
OVERRIDES = typer.Option(
    [], "--override",
    help="FRAMEWORK/FILE:KEY=VALUE, a raw setting of a configuration file, e.g. "
         "hadoop/hdfs-site.xml:dfs.blocksize=268435456 (repeatable; wins over properties).")
SPEC_FILE = typer.Option(None, "--spec", help="Cluster spec as a YAML or JSON file.")
PROVIDER = typer.Option(None, help="Infrastructure provider: local (default), ssh, openstack.")
PROVIDER_OPTIONS = typer.Option(
    [], "--provider-option", "-o",
    help="KEY=VALUE for the provider (repeatable); ssh: hosts=NAME,NAME… (master first), labels=L,L…")
IDLE_TIMEOUT = typer.Option(None, help="Seconds idle before deletion (0: never).")
MAX_AGE = typer.Option(None, help="Seconds before deletion (0: never).")
CLOUD = typer.Option(
    None, "--cloud",
    help="openstack: the cloud to use, by its name in clouds.yaml (secure.yaml merged in); implies "
         "--provider openstack. Default with that provider: $OS_CLOUD. The entry is sent, never printed.")
CLOUDS_FILE = typer.Option(
    None, "--clouds-file",
    help="The clouds.yaml to read --cloud from (default: $OS_CLIENT_CONFIG_FILE, else ./clouds.yaml, "
         "~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml).")
OPENSTACK = "openstack"


def _spec_from_options(framework: list[str], workers: Optional[int], name: Optional[str], prop: list[str],
                       override: list[str], spec_file: Optional[Path], provider: Optional[str],
                       provider_option: list[str], idle_timeout: Optional[int], max_age: Optional[int],
                       cloud: Optional[str], clouds_file: Optional[Path], output: Output) -> dict[str, Any]:
    """The cluster spec the options describe (a --spec file, then the flags over it)."""
    spec: dict[str, Any] = {}
    if spec_file:
        try:
            spec = yaml.safe_load(spec_file.read_text()) or {}
        except OSError as exc:
            fail(ApiError(400, "invalid_spec_file", f"cannot read {spec_file}: {exc.strerror}"), output)
        except yaml.YAMLError as exc:  # the position only: the file may hold a cloud's password
            fail(ApiError(400, "invalid_spec_file", f"{spec_file} is not valid YAML{yaml_error_position(exc)}"),
                 output)
        if not isinstance(spec, dict):
            fail(ApiError(400, "invalid_spec_file", f"{spec_file} must hold a mapping (a cluster spec)"), output)
    frameworks = {f["name"] if isinstance(f, dict) else f: dict(f.get("properties", {})) if isinstance(f, dict) else {}
                  for f in spec.get("frameworks", [])}
    for name_ in framework:
        frameworks.setdefault(name_, {})
    for text in prop:
        try:
            fw, key, value = _parse_property(text)
        except ValueError as exc:
            fail(ApiError(400, "invalid_property", str(exc)), output)
        frameworks.setdefault(fw, {})[key] = _coerce(value)
    overrides: dict[str, dict[str, dict[str, Any]]] = {
        f["name"]: {file: dict(values) for file, values in (f.get("overrides") or {}).items()}
        for f in spec.get("frameworks", []) if isinstance(f, dict) and isinstance(f.get("overrides"), dict)}
    for text in override:
        try:
            fw, file_name, key, value = _parse_override(text)
        except ValueError as exc:
            fail(ApiError(400, "invalid_override", str(exc)), output)
        frameworks.setdefault(fw, {})
        overrides.setdefault(fw, {}).setdefault(file_name, {})[key] = value  # raw text, as in the file
    spec["frameworks"] = [{"name": n, "properties": p, **({"overrides": overrides[n]} if overrides.get(n) else {})}
                          for n, p in frameworks.items()]
    for text in provider_option:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            fail(ApiError(400, "invalid_provider_option", f"--provider-option wants KEY=VALUE, got {text!r}"), output)
        spec.setdefault("provider_options", {})[key.strip()] = value.strip()
    for key, value in (("workers", workers), ("name", name), ("provider", provider),
                       ("idle_timeout_s", idle_timeout), ("max_age_s", max_age)):
        if value is not None:
            spec[key] = value
    _add_cloud(spec, cloud, clouds_file, output)
    return spec


def _add_cloud(spec: dict[str, Any], cloud: Optional[str], clouds_file: Optional[Path], output: Output) -> None:
    """The cloud's clouds.yaml entry as the spec's `cloud`: `--cloud NAME` (which implies the
    openstack provider), else $OS_CLOUD when the provider is openstack and the spec holds no
    cloud (OS_CLOUD is often set for every OpenStack tool: it never turns a local create into
    an OpenStack one)."""
    if cloud is None and spec.get("provider") == OPENSTACK and spec.get("cloud") is None:
        cloud = os.environ.get("OS_CLOUD") or None
    if cloud is None:
        if clouds_file is not None:
            fail(ApiError(400, "usage_error", "--clouds-file names where to read a cloud from: give "
                          "--cloud NAME too (or OS_CLOUD with --provider openstack)"), output)
        return
    try:
        found = load_cloud(cloud, clouds_file)
    except CloudsFileError as exc:
        fail(ApiError(400, exc.code, exc.message), output)
    spec["cloud"] = found.entry
    if spec.get("provider") is None:
        spec["provider"] = OPENSTACK


@app.command()
def create(
    framework: list[str] = FRAMEWORKS, workers: Optional[int] = WORKERS, name: Optional[str] = NAME,
    prop: list[str] = PROPERTIES, override: list[str] = OVERRIDES, spec_file: Optional[Path] = SPEC_FILE,
    provider: Optional[str] = PROVIDER, provider_option: list[str] = PROVIDER_OPTIONS,
    idle_timeout: Optional[int] = IDLE_TIMEOUT, max_age: Optional[int] = MAX_AGE,
    cloud: Optional[str] = CLOUD, clouds_file: Optional[Path] = CLOUDS_FILE,
    wait: bool = typer.Option(False, "--wait", help="Show progress until the cluster is ready or failed."),
    output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN,
) -> None:
    """Create a cluster, e.g. `disco cluster create -f spark --workers 2 --wait`."""
    spec = _spec_from_options(framework, workers, name, prop, override, spec_file, provider, provider_option,
                              idle_timeout, max_age, cloud, clouds_file, output)
    client = _client(url, token)
    try:
        cluster = client.request("POST", "/api/v1/clusters", json=spec)
        if not wait:
            _show(cluster, output)
            return
        if output is Output.table:
            out.print(f"cluster [bold]{escape(cluster['id'])}[/bold] requested")
        cluster = _wait(client, cluster["id"])
    except ApiError as exc:
        fail(exc, output)
    _show(cluster, output)
    if cluster["state"] != "ready":
        raise typer.Exit(1)


@app.command()
def plan(
    framework: list[str] = FRAMEWORKS, workers: Optional[int] = WORKERS, name: Optional[str] = NAME,
    prop: list[str] = PROPERTIES, override: list[str] = OVERRIDES, spec_file: Optional[Path] = SPEC_FILE,
    provider: Optional[str] = PROVIDER, provider_option: list[str] = PROVIDER_OPTIONS,
    idle_timeout: Optional[int] = IDLE_TIMEOUT, max_age: Optional[int] = MAX_AGE,
    cloud: Optional[str] = CLOUD, clouds_file: Optional[Path] = CLOUDS_FILE,
    output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN,
) -> None:
    """What `create` with the same options would make, creating nothing: nodes, processes, files
    (each value with its origin), ports, checks and the provider's steps."""
    spec = _spec_from_options(framework, workers, name, prop, override, spec_file, provider, provider_option,
                              idle_timeout, max_age, cloud, clouds_file, output)
    try:
        body = _client(url, token).request("POST", "/api/v1/clusters", json=spec, params={"dry_run": "true"})
    except ApiError as exc:
        fail(exc, output)
    if output is Output.json:
        print_json(body)
    else:
        show_plan(out, body)


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
                err.print(f"[{color}]{escape(event['step']):>12}[/{color}] {escape(event['message'])}{took}")
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
        print_json(cluster)
        return
    table = Table(show_header=False, box=None)

    def row(label: str, value: str) -> None:
        table.add_row(Text(label), Text(value))

    row("id", cluster["id"])
    row("name", cluster["name"])
    row("state", cluster["state"] + (f" — {cluster['status_reason']}" if cluster["status_reason"] else ""))
    row("workers", str(cluster["workers"]))
    row("frameworks", ", ".join(cluster["frameworks"]) or "(none)")
    row("nodes", ", ".join(f"{n['name']}={n['host'] or '…'}" for n in cluster["nodes"]))
    for fw, outputs in cluster.get("outputs", {}).get("frameworks", {}).items():
        for key, value in outputs.items():
            if key == "web_uis":
                for ui, link in value.items():
                    row(f"{fw} UI {ui}", link)
            else:
                row(f"{fw} {key}", str(value))
    out.print(table)


@app.command("list")
def list_(all_: bool = typer.Option(False, "--all", help="Include deleted clusters."),
          output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """List your clusters. The id column shows each id's shortest unique prefix (8 characters
    or more), which every `disco cluster` command takes; `--output json` gives full ids."""
    try:
        clusters = _client(url, token).request("GET", "/api/v1/clusters", params={"include_deleted": all_})
    except ApiError as exc:
        fail(exc, output)
    if output is Output.json:
        print_json(clusters)
        return
    short = short_ids(clusters)
    table = Table()
    # The id column never wraps or shrinks: what it shows must work as input.
    table.add_column("id", no_wrap=True, min_width=max((len(v) for v in short.values()), default=2))
    for header in ("name", "state", "workers", "frameworks", "created"):
        table.add_column(header, overflow="fold")  # on a narrow terminal: folded, never cut short
    for c in clusters:
        table.add_row(*(Text(v) for v in (short[c["id"]], c["name"], c["state"], str(c["workers"]),
                                          ", ".join(c["frameworks"]),
                                          (c["created_at"] or "")[:19].replace("T", " "))))
    out.print(table)


@app.command()
def show(cluster_id: str = CLUSTER, output: Output = OUTPUT, url: Optional[str] = URL,
         token: Optional[str] = TOKEN) -> None:
    """Show a cluster: state, nodes, addresses and web UIs."""
    client, cid = _target(cluster_id, output, url, token)
    try:
        _show(client.request("GET", f"/api/v1/clusters/{cid}"), output)
    except ApiError as exc:
        fail(exc, output)


@app.command()
def scale(cluster_id: str = CLUSTER, workers: int = typer.Argument(..., help="New number of workers."),
          wait: bool = typer.Option(False, "--wait", help="Wait until the cluster is ready again."),
          output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Add or remove workers of a ready cluster."""
    client, cid = _target(cluster_id, output, url, token)
    try:
        before = client.request("GET", f"/api/v1/clusters/{cid}")
        last = _last_event(client, cid)
        cluster = client.request("PATCH", f"/api/v1/clusters/{cid}", json={"workers": workers})
        if wait and before["workers"] != workers:
            cluster = _wait(client, cid, after=last)
    except ApiError as exc:
        fail(exc, output)
    _show(cluster, output)


@app.command()
def delete(cluster_id: str = CLUSTER, wait: bool = typer.Option(False, "--wait", help="Wait until it is gone."),
           output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Delete a cluster: stop its processes and remove its files."""
    client, cid = _target(cluster_id, output, url, token)
    try:
        last = _last_event(client, cid)
        cluster = client.request("DELETE", f"/api/v1/clusters/{cid}")
        # The credentials `disco cluster env` wrote for it open nothing any more.
        shutil.rmtree(clusters_dir() / cid, ignore_errors=True)
        if wait and cluster["state"] != "deleted":
            cluster = _wait(client, cid, after=last, until=frozenset({"deleted"}))
    except ApiError as exc:
        fail(exc, output)
    if output is Output.json:
        print_json(cluster)
    else:
        out.print(Text(f"cluster {cid} ({cluster['name']}): {cluster['state']}"))


@app.command()
def suspend(cluster_id: str = CLUSTER, wait: bool = typer.Option(False, "--wait", help="Wait until suspended."),
            output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Stop a ready cluster's processes but keep its nodes, to resume later."""
    _action(cluster_id, "suspend", frozenset({"suspend", "failed"}), wait, output, url, token)


@app.command()
def resume(cluster_id: str = CLUSTER, wait: bool = typer.Option(False, "--wait", help="Wait until ready."),
           output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Start a suspended (or failed) cluster again."""
    _action(cluster_id, "resume", frozenset({"ready", "failed"}), wait, output, url, token)


def _action(ref: str, action: str, until: frozenset[str], wait: bool, output: Output,
            url: Optional[str], token: Optional[str]) -> None:
    client, cid = _target(ref, output, url, token)
    try:
        last = _last_event(client, cid)
        cluster = client.request("POST", f"/api/v1/clusters/{cid}/actions/{action}")
        if wait:
            cluster = _wait(client, cid, after=last, until=until)
    except ApiError as exc:
        fail(exc, output)
    _show(cluster, output)


def _write(text: str) -> None:
    # Logs go out as they are: no markup, no wrapping at the terminal's width.
    sys.stdout.write(text)
    sys.stdout.flush()


@app.command()
def logs(cluster_id: str = CLUSTER,
         process: Optional[str] = typer.Argument(None, help="NODE/PROCESS, e.g. master/spark-master; "
                                                 "default: the deployment log."),
         list_: bool = typer.Option(False, "--list", "-l", help="List the processes that have logs (NODE/PROCESS)."),
         follow: bool = typer.Option(False, "--follow", "-F", help="Keep printing new lines."),
         output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Print the deployment log, or one process's log (`--list` names them)."""
    client, cid = _target(cluster_id, output, url, token)
    try:
        if list_ or process == "list":
            entries = client.request("GET", f"/api/v1/clusters/{cid}/logs")
            if output is Output.json:
                print_json(entries)
            else:
                _write("".join(f"{entry['node']}/{entry['process']}\n" for entry in entries))
            return
        if process is None and not follow:
            _write(client.request("GET", f"/api/v1/clusters/{cid}/deployment.log"))
            return
        if process is None:
            for line in client.stream_lines(f"/api/v1/clusters/{cid}/events", {"follow": True}):
                event = json.loads(line)
                _write(f"{event['at'][:19]} {event['step']}: {event['message']}\n")
            return
        node, _, name = process.partition("/")
        path = f"/api/v1/clusters/{cid}/logs/{node}/{name}"
        if follow:
            for line in client.stream_lines(path, {"follow": True}):
                _write(line + "\n")
        else:
            _write(client.request("GET", path))
    except ApiError as exc:
        fail(exc, output)
    except KeyboardInterrupt:
        pass


@app.command()
def frameworks(output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """List the frameworks a cluster can have, with their properties."""
    try:
        catalogue = _client(url, token).request("GET", "/api/v1/frameworks")
    except ApiError as exc:
        fail(exc, output)
    if output is Output.json:
        print_json(catalogue)
        return
    table = Table("framework", "version", "needs", "properties (default)")
    for fw in catalogue:
        props = ", ".join(f"{k}={v.get('default')}" for k, v in fw["properties"].items())
        table.add_row(*(Text(v) for v in (fw["name"], fw["version"], ", ".join(fw["depends"]), props)))
    out.print(table)


app.command("env")(env_command)
