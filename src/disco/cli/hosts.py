"""`disco hosts …`: the SSH host pool (admin tokens only): add, list, check and remove hosts.

Keys are read here from files and sent once in the request body over the API; they are never
printed. A host key comes from `--host-key`, from `--known-hosts FILE`, or is recorded by the
service manager on first contact (trust on first use, said in the output)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from disco.cli.client import ApiError, Client
from disco.cli.host_input import InputError, host_body, inventory_bodies, known_host_key
from disco.cli.options import TOKEN, URL, client
from disco.cli.output import Output, exit_code, fail, print_json, show_error

app = typer.Typer(help="The SSH host pool clusters take their nodes from (admin token needed).",
                  no_args_is_help=True)
out = Console()
OUTPUT = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts (errors too).")
REFS = typer.Argument(None, metavar="[NAME|ID]...", help="Hosts by name or id (default: every host).")
# A check connects, runs a few commands, and may wait for an unreachable host's timeout.
CHECK_TIMEOUT_S = 120.0


@app.command()
def add(
    address: Optional[str] = typer.Argument(None, help="The host's DNS name or IP address."),
    user: Optional[str] = typer.Option(None, "--user", help="root, or a user with password-less sudo."),
    key: Optional[Path] = typer.Option(None, "--key", help="Private key file to log in with (no passphrase)."),
    port: int = typer.Option(22, "--port", min=1, max=65535, help="SSH port."),
    label: list[str] = typer.Option([], "--label", help="A label clusters may ask for (repeatable)."),
    name: Optional[str] = typer.Option(None, "--name", help="Unique name (default: the address)."),
    prefix: Optional[str] = typer.Option(None, "--prefix", help="Where DISCO keeps its files (default /opt/disco)."),
    host_key: Optional[str] = typer.Option(None, "--host-key", help="The host's public key, `ssh-ed25519 AAAA…`."),
    known_hosts: Optional[Path] = typer.Option(None, "--known-hosts", help="Take the host key from this file."),
    inventory: Optional[Path] = typer.Option(None, "--from", help="Add every host of a YAML inventory."),
    output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN,
) -> None:
    """Add a host (`disco hosts add 10.0.0.5 --user root --key ~/.ssh/id_ed25519`) or an inventory
    (`--from hosts.yaml`); each is checked at once."""
    try:
        if inventory is not None:
            if address or user or key or host_key or known_hosts:
                raise InputError("--from takes every host from the inventory: give no ADDRESS, --user, "
                                 "--key, --host-key or --known-hosts with it")
            bodies = inventory_bodies(inventory)
        else:
            if not address or not user or not key:
                raise InputError("give ADDRESS, --user and --key (or --from INVENTORY.yaml)")
            if host_key and known_hosts:
                raise InputError("give --host-key or --known-hosts, not both")
            if known_hosts is not None:
                host_key = known_host_key(known_hosts, address, port)
            bodies = [host_body(address=address, port=port, user=user, key_path=key, name=name, prefix=prefix,
                                host_key=host_key, labels=label)]
    except InputError as exc:
        fail(ApiError(2, "invalid_input", str(exc)), output)
    api = client(url, token, timeout=CHECK_TIMEOUT_S)
    added: list[dict[str, Any]] = []
    worst = 0
    for body in bodies:
        try:
            host = api.request("POST", "/api/v1/hosts", json=body)
        except ApiError as exc:
            worst = max(worst, exit_code(exc))
            if exc.status in (0, 401, 403):  # nothing else can work either
                fail(exc, output)
            _say_error(exc, output, body.get("name") or body["address"])
            continue
        added.append(host)
        worst = max(worst, 0 if host["state"] == "free" else 1)
        if output is Output.table:
            _describe(host, "added")
    if output is Output.json:
        print_json(added if inventory is not None else (added[0] if added else {}))
    raise typer.Exit(worst)


@app.command("list")
def list_hosts(output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """The hosts of the pool, their state and which cluster holds them."""
    try:
        hosts = client(url, token).request("GET", "/api/v1/hosts")
    except ApiError as exc:
        fail(exc, output)
    if output is Output.json:
        print_json(hosts)
        return
    table = Table("ID", "NAME", "ADDRESS", "USER", "STATE", "HELD BY", "LABELS", "LAST CHECK")
    for host in hosts:
        check = host["last_check"]
        verdict = "never" if check is None else ("ok" if check["ok"] else f"failed: {check['error']}")
        held = f"{host['cluster_id']} {host['node']}" if host["cluster_id"] else ""
        table.add_row(*(Text(str(cell)) for cell in (
            host["id"], host["name"], f"{host['address']}:{host['port']}", host["user"], host["state"], held,
            ",".join(host["labels"]), verdict)))
    out.print(table)


@app.command()
def remove(ref: str = typer.Argument(..., metavar="NAME|ID", help="The host's name or id."),
           output: Output = OUTPUT, url: Optional[str] = URL, token: Optional[str] = TOKEN) -> None:
    """Take a host out of the pool (refused while a cluster holds it). Nothing on it is touched."""
    api = client(url, token)
    try:
        host = _resolve(api, [ref])[0]
        api.request("DELETE", f"/api/v1/hosts/{host['id']}")
    except ApiError as exc:
        fail(exc, output)
    if output is Output.json:
        print_json({"removed": host["id"], "name": host["name"]})
    else:
        typer.echo(f"removed host {host['name']} (id {host['id']}) from the pool")


@app.command()
def check(refs: Optional[list[str]] = REFS, output: Output = OUTPUT, url: Optional[str] = URL,
          token: Optional[str] = TOKEN) -> None:
    """Connect to hosts (their recorded host keys enforced), look at them, and say what is wrong;
    exit code 1 when any cannot be used."""
    api = client(url, token, timeout=CHECK_TIMEOUT_S)
    try:
        hosts = _resolve(api, refs or [])
        checked = [api.request("POST", f"/api/v1/hosts/{host['id']}/check") for host in hosts]
    except ApiError as exc:
        fail(exc, output)
    if output is Output.json:
        print_json(checked)
    else:
        for host in checked:
            _describe(host, "checked")
        if not checked:
            typer.echo("the pool has no hosts; add some with `disco hosts add`", err=True)
    raise typer.Exit(0 if all(h["last_check"]["ok"] for h in checked) else 1)


def _resolve(api: Client, refs: list[str]) -> list[dict[str, Any]]:
    """The hosts named by name or id (all hosts for no refs); ApiError 404 for one that is not there."""
    hosts = api.request("GET", "/api/v1/hosts")
    if not refs:
        return list(hosts)
    found = []
    for ref in refs:
        match = next((h for h in hosts if h["name"] == ref), None) or \
            next((h for h in hosts if ref.isdigit() and h["id"] == int(ref)), None)
        if match is None:
            raise ApiError(404, "no_such_host", f"no host named {ref!r} or with id {ref} in the pool "
                                                "(`disco hosts list`)", {"ref": ref})
        found.append(match)
    return found


def _say_error(exc: ApiError, output: Output, what: str) -> None:
    if output is Output.json:
        show_error(exc, output)
    else:
        show_error(ApiError(exc.status, exc.code, f"{what}: {exc.message}", exc.details), output)


def _describe(host: dict[str, Any], verb: str) -> None:
    """What an admin needs to see of a host just added or checked (never its key). Plain lines,
    unwrapped: a host key must stay whole to be compared."""
    typer.echo(f"{verb} host {host['name']} (id {host['id']}): {host['user']}@{host['address']}:{host['port']}, "
               f"state {host['state']}")
    if host.get("host_key_just_recorded"):
        typer.echo(f"  host key recorded on first contact (trust on first use): {host['host_key']}\n"
                   "  compare it with the host's own (/etc/ssh/ssh_host_ed25519_key.pub there); "
                   "it is enforced from now on")
    check = host.get("last_check") or {}
    facts = check.get("facts")
    if facts:
        become = "root" if facts["root"] else ("password-less sudo" if facts["sudo"] else "no root")
        disk = f"{facts['disk_free_mb']} MB free under {facts['disk_path']}" if facts["disk_free_mb"] is not None else ""
        python = f"python3 {facts['python3']}" if facts["python3"] else "no python3"
        typer.echo("  " + ", ".join(p for p in (facts["os"], facts["arch"], python, become, disk) if p))
    if check and not check.get("ok"):
        typer.echo(f"error: {check.get('error')}\n  the host is {host['state']}: fix this, then run "
                   f"`disco hosts check {host['name']}`", err=True)
    for problem in check.get("problems", []) if check.get("ok") else []:
        typer.echo(f"  problem: {problem}")
