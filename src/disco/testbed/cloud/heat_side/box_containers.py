"""A server of the cloud in a box as a podman container: its NoCloud seed, its `podman run`,
its state. Standard library only (runs in Heat's engine)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from box_config import cloud_config, cloud_dir

CLOUD_LABEL = "disco.cloud"            # = the cloud's name, on every server container
STACK_LABEL = "disco.cloud.stack"      # = the id of the server's top-level stack
ADDRESS_LABEL = "disco.cloud.address"  # = the server's first address
IMAGE_LABEL = "disco.testbed.image"    # the image directory (keeps the testbed from retiring it)
BOOT_PATH = "/etc/disco-cloud/boot.sh"
SEED_PATH = "/var/lib/cloud/seed/nocloud"


class ContainerError(Exception):
    pass


def podman(*args: str, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(["podman", *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise ContainerError(f"podman {args[0]} failed (exit {done.returncode}): "
                             f"{done.stderr.strip()[-1500:]}")
    return done.stdout


def hostname_for(name: str) -> str:
    """A server name as a hostname (RFC 1123 label), as Nova derives one."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "server"


def server_dir(server_id: str) -> Path:
    return cloud_dir() / "servers" / server_id


def write_seed(server_id: str, hostname: str, public_keys: list[str], user_data: str,
               metadata: dict[str, Any]) -> Path:
    """The NoCloud seed: meta-data (JSON is YAML) and user-data, verbatim. 0700/0600: user
    data may carry secrets."""
    seed = server_dir(server_id) / "seed"
    seed.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(seed.parent, 0o700)
    meta = {"instance-id": f"i-{server_id}", "local-hostname": hostname,
            "public-keys": public_keys, "meta": metadata}
    for name, content in (("meta-data", json.dumps(meta, indent=1) + "\n"), ("user-data", user_data)):
        descriptor = os.open(seed / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(content)
    return seed


def run_server(server_id: str, root_stack_id: str, hostname: str, addresses: list[str],
               image: dict[str, str], flavor: dict[str, int]) -> str:
    """Starts the server's container; returns its id. Its boot (boot.sh) runs cloud-init's
    four stages and sshd on the server's addresses only. The flavor's RAM and vCPUs are the
    container's memory limit (no swap beyond it) and CPU quota; its disk is not enforced."""
    config = cloud_config()
    name = f"{config['name']}-{server_id[:12]}"
    argv = ["run", "-d", "--name", name, "--hostname", hostname, "--init", "--network", "host",
            "--add-host", f"{hostname}:{addresses[0]}",
            "--label", f"{CLOUD_LABEL}={config['name']}", "--label", f"{STACK_LABEL}={root_stack_id}",
            "--label", f"{ADDRESS_LABEL}={addresses[0]}",
            "--label", f"{IMAGE_LABEL}={image['image_dir']}",
            *config["podman_flags"],
            "--memory", f"{flavor['ram']}m", "--memory-swap", f"{flavor['ram']}m",
            "--cpus", str(flavor["vcpus"]),
            "-v", f"{server_dir(server_id) / 'seed'}:{SEED_PATH}:ro",
            "-v", f"{cloud_dir() / 'boot.sh'}:{BOOT_PATH}:ro",
            "--rootfs", f"{image['rootfs']}:O", "/bin/sh", BOOT_PATH, *addresses]
    try:
        return podman(*argv).strip()
    except ContainerError:
        podman("rm", "-f", name, check=False)  # created but not started: the name is ours
        raise


def status(container: str) -> str:
    """running, paused, exited, … or "gone"."""
    out = podman("inspect", "--format", "{{.State.Status}}", container, check=False).strip()
    return out or "gone"


def logs(container: str) -> str:
    return podman("logs", "--tail", "20", container, check=False)[-1500:]


def remove_server(server_id: str, container: str | None) -> None:
    if container:
        podman("rm", "-f", "-t", "2", container, check=False)
        if status(container) != "gone":
            raise ContainerError(f"container {container[:12]} is still there after podman rm")
    shutil.rmtree(server_dir(server_id), ignore_errors=True)
