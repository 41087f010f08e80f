"""`disco farm client`: run N worker slots for a farm server, as processes or containers."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Optional

import typer


def client(
    server: str = typer.Option(..., "--server", help="The farm's URL, e.g. http://127.0.0.1:8890."),
    slots: int = typer.Option(1, "--slots", min=1, max=1024, help="Units run at once."),
    containers: bool = typer.Option(False, "--containers", help="Run Python units in containers (podman or docker)."),
    engine: str = typer.Option("", "--engine", help="Force a container engine: podman or docker."),
    image: str = typer.Option("", "--image",
                              help="The client image for --containers: an image name, or a root filesystem "
                                   "directory (default: the project's baked test-host image)."),
    image_python: str = typer.Option("/opt/disco/venv/bin/python", "--image-python",
                                     help="Python inside the client image (needs cloudpickle)."),
    memory_mb: int = typer.Option(0, "--memory-mb", min=0, help="Memory limit of each container, MiB (0: none)."),
    cpus: float = typer.Option(0.0, "--cpus", min=0, help="CPU limit of each container (0: none)."),
    key_file: Optional[Path] = typer.Option(None, "--key-file",
                                            help="The enrollment key (or DISCO_FARM_KEY; never on the command line)."),
    state_dir: Path = typer.Option(Path.home() / ".local/state/disco-farm", "--state-dir",
                                   help="The client's identity (0600) and cached code."),
    name: str = typer.Option(platform.node()[:100] or "volunteer", "--name", help="This client's name on the server."),
    seconds: float = typer.Option(10.0, "--seconds-per-slot", min=0.1, help="Work asked for, per free slot."),
    unit_timeout: float = typer.Option(3600.0, "--unit-timeout", min=0.1, help="A unit running longer is stopped."),
    max_units: int = typer.Option(0, "--max-units", min=0, help="Exit after reporting this many (0: run on)."),
) -> None:
    """Volunteer: enroll with the key, then ask for work, run it, report, until stopped (SIGTERM)."""
    from disco.taskfarm.client import identity
    from disco.taskfarm.client.agent import Options, main
    from disco.taskfarm.client.slots import Limits, container_slot, find_engine, process_slot

    try:
        key = identity.read_key(key_file)
    except OSError as exc:
        typer.echo(f"error: cannot read the key file: {exc.strerror}", err=True)
        raise typer.Exit(2)
    if not server.startswith(("http://", "https://")):
        typer.echo("error: --server must be an http(s) URL", err=True)
        raise typer.Exit(2)
    limits = Limits(memory_mb, cpus)
    state_dir = state_dir.expanduser().resolve()
    code_dir = state_dir / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    try:
        found = find_engine(engine) if (containers or engine) else _maybe_engine()
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    if containers:
        image = image or _default_image()
        pool = [container_slot(code_dir, found, image, image_python, limits) for _ in range(slots)]
    else:
        pool = [process_slot(code_dir, found, limits) for _ in range(slots)]
    raise typer.Exit(main(Options(server=server, slots=pool, state_dir=state_dir, key=key, name=name,
                                  seconds_per_slot=seconds, unit_timeout=unit_timeout, max_units=max_units)))


def _maybe_engine() -> str:
    """Process slots still run container projects when an engine is there."""
    from disco.taskfarm.client.slots import find_engine

    try:
        return find_engine()
    except RuntimeError:
        return ""


def _default_image() -> str:
    """The test hosts' baked image (Python 3.11 with cloudpickle), built if it is not cached."""
    from disco.testbed.images import ensure_image

    return str(ensure_image("baked").rootfs)
