"""`disco testbed …`: test hosts on this machine (podman containers that look like fresh
Debian machines over SSH), for trying multi-host DISCO and for the test suite."""

from __future__ import annotations

import sys
import time
from typing import Optional

import typer

from disco.cli.output import fail_locally as _fail, progress as _progress
from disco.cli.testbed_cloud import app as cloud_app
from disco.testbed import Testbed, TestbedError, ensure_image, inventory_yaml, list_images, testbeds
from disco.testbed.recipe import IMAGE_NAMES
from disco.testbed.testbed import DEFAULT_ADDRESS_BASE, DEFAULT_NAME

app = typer.Typer(help="Test hosts on this machine: containers with their own address, hostname and sshd.",
                  no_args_is_help=True)
app.add_typer(cloud_app, name="cloud")


@app.command("up")
def up(hosts: int = typer.Option(..., "--hosts", "-n", min=1, max=254, help="How many hosts to start."),
       image: str = typer.Option("baked", "--image", help="bare (a fresh Debian host) or baked "
                                 "(Java and the frameworks' venv pre-installed)."),
       name: str = typer.Option(DEFAULT_NAME, "--name", help="The testbed's name; hosts are NAME-1, NAME-2, …"),
       address_base: Optional[str] = typer.Option(None, "--address-base",
                                                  help=f"Host i gets BASE.i (default {DEFAULT_ADDRESS_BASE})."),
       ) -> None:
    """Start hosts (building the image first if needed); print their inventory as YAML on stdout,
    the file the host pool's `disco hosts add` reads."""
    if image not in IMAGE_NAMES:
        _fail(TestbedError(f"unknown image {image!r} (images: {', '.join(IMAGE_NAMES)})"))
    started = time.monotonic()
    try:
        testbed = Testbed(name, address_base, progress=_progress)
        testbed.up(hosts, image=image)
    except TestbedError as exc:
        _fail(exc)
    _progress(f"testbed {name}: {hosts} host(s) up in {time.monotonic() - started:.1f} s")
    sys.stdout.write(testbed.inventory())


@app.command("list")
def list_testbeds() -> None:
    """The testbeds that are up and their hosts."""
    found = testbeds()
    if not found:
        sys.stderr.write("no testbed is up\n")
        return
    for state in found:
        sys.stdout.write(f"{state.name}  ({state.address_base}.x, {len(state.hosts)} hosts)\n")
        for host in state.hosts:
            sys.stdout.write(f"  {host.name:<16} {host.address}:{host.port:<6} {host.image:<6} "
                             f"container {host.container[:12]}\n")


@app.command("inventory")
def inventory(name: Optional[str] = typer.Argument(None, help="The testbed (default: the only one up).")) -> None:
    """Print a testbed's inventory YAML again."""
    sys.stdout.write(inventory_yaml(Testbed(_which(name)).hosts()))


@app.command("down")
def down(name: Optional[str] = typer.Argument(None, help="The testbed (default: the only one up).")) -> None:
    """Remove a testbed's containers and state; checks that nothing of it is left."""
    which = _which(name)
    try:
        removed = Testbed(which).down()
    except TestbedError as exc:
        _fail(exc)
    _progress(f"testbed {which}: {len(removed)} container(s) removed; no container, socket or state left")


@app.command("images")
def images(rebuild: bool = typer.Option(False, "--rebuild", help="Build both images again.")) -> None:
    """Build the images unless cached (or again with --rebuild), then list them."""
    try:
        for image in IMAGE_NAMES:
            ensure_image(image, rebuild=rebuild, progress=_progress)
    except TestbedError as exc:
        _fail(exc)
    for entry in list_images():
        sys.stdout.write(f"{entry['image']:<24} built in {entry['built_seconds']} s  {entry['path']}\n")


def _which(name: Optional[str]) -> str:
    if name:
        return name
    names = [state.name for state in testbeds()]
    if len(names) == 1:
        return names[0]
    if not names:
        _fail(TestbedError("no testbed is up"))
    _fail(TestbedError(f"several testbeds are up ({', '.join(names)}): name one"))
