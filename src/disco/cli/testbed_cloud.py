"""`disco testbed cloud up|status|down`: a real OpenStack Heat on loopback whose servers are
containers booting with cloud-init (docs/cloud-in-a-box.md)."""

from __future__ import annotations

import json
import sys
import time
from typing import Optional

import typer

from disco.cli.output import fail_locally as _fail, progress as _progress
from disco.testbed.cloud import keystone as box_keystone
from disco.testbed.cloud.catalogue import IMAGES
from disco.testbed.cloud.cloud import (DEFAULT_ADDRESS, DEFAULT_NAME, DEFAULT_PORT,
                                       DEFAULT_SERVER_RANGE, Cloud)
from disco.testbed.errors import TestbedError

app = typer.Typer(help="A cloud in a box: OpenStack Heat on loopback; servers are containers "
                       "booting with cloud-init.", no_args_is_help=True)


@app.command("up")
def up(address: str = typer.Option(DEFAULT_ADDRESS, "--address", help="Loopback address of Heat's API."),
       port: int = typer.Option(DEFAULT_PORT, "--port", help="Port of Heat's API."),
       server_range: str = typer.Option(DEFAULT_SERVER_RANGE, "--server-range",
                                        help="Loopback network the servers' addresses come from."),
       image: Optional[list[str]] = typer.Option(None, "--image", help=f"Images to offer "
                                                 f"({', '.join(IMAGES)}; default all). Repeatable."),
       name: str = typer.Option(DEFAULT_NAME, "--name", help="The cloud's name (in clouds.yaml)."),
       keystone: bool = typer.Option(False, "--keystone", help="Put a real Keystone in front: "
                                     "the clouds.yaml entry logs in to it as a demo user (password)."),
       keystone_address: Optional[str] = typer.Option(None, "--keystone-address",
                                                      help="Loopback address of Keystone (default: --address)."),
       keystone_port: int = typer.Option(box_keystone.DEFAULT_PORT, "--keystone-port",
                                         help="Port of Keystone's API."),
       ) -> None:
    """Start the cloud (building its images and Heat's environment the first time); print its
    clouds.yaml entry on stdout."""
    started = time.monotonic()
    try:
        cloud = Cloud(name, progress=_progress)
        cloud.up(address, port, server_range, images=image or None,
                 keystone_address=(keystone_address or address) if keystone else None,
                 keystone_port=keystone_port)
    except TestbedError as exc:
        _fail(exc)
    what = "Keystone and Heat" if keystone else "Heat"
    _progress(f"cloud {name}: {what} up in {time.monotonic() - started:.1f} s; clouds.yaml written to "
              f"{cloud.clouds_yaml_path} (export OS_CLIENT_CONFIG_FILE={cloud.clouds_yaml_path}; "
              f"OS_CLOUD={name})")
    sys.stdout.write(cloud.clouds_yaml())


@app.command("status")
def status(name: str = typer.Option(DEFAULT_NAME, "--name", help="The cloud's name."),
           output: str = typer.Option("text", "--output", help="text or json.")) -> None:
    """Heat's state, the stacks and the server containers."""
    try:
        found = Cloud(name).status()
    except TestbedError as exc:
        _fail(exc)
    if output == "json":
        sys.stdout.write(json.dumps(found, indent=1) + "\n")
        return
    sys.stdout.write(f"cloud {found['name']}: Heat {found['heat']} (pid {found['pid']}) at "
                     f"{found['endpoint']}\n  servers from {found['server_range']}, database "
                     f"{found['database']}, clouds.yaml {found['clouds_yaml']}\n")
    if "keystone" in found:
        sys.stdout.write(f"  Keystone {found['keystone']} (pid {found['keystone_pid']}) at {found['auth_url']}\n")
    for stack in found["stacks"]:
        sys.stdout.write(f"  stack  {stack['name']:<24} {stack['status']:<18} {stack['id']}\n")
    for server in found["servers"]:
        sys.stdout.write(f"  server {server['name']:<24} {server['state']:<18} container {server['id']}\n")


@app.command("down")
def down(name: str = typer.Option(DEFAULT_NAME, "--name", help="The cloud's name.")) -> None:
    """Delete the stacks (their servers with them), stop Heat (and Keystone), drop its database;
    checks that no process, socket, container or database of it is left."""
    try:
        removed = Cloud(name, progress=_progress).down()
    except TestbedError as exc:
        _fail(exc)
    _progress(f"cloud {name}: {removed['stacks']} stack(s) deleted, Heat stopped, database dropped; "
              "no process, socket, container or database left")
