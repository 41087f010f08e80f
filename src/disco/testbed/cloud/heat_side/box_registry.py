"""The cloud's own records, kept where Nova and Neutron would keep theirs: key pairs, networks
made by stacks, ports, floating IPs, security groups, and which server address is whose.

One JSON file, `$DISCO_CLOUD_DIR/registry.json`, changed under an exclusive flock (Heat handles
resources on several threads; each change opens the file anew, so threads exclude each other
as processes do)."""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from box_config import cloud_config, cloud_dir

SECTIONS = ("addresses", "keypairs", "networks", "subnets", "ports", "floating_ips",
            "security_groups", "routers")


class RegistryError(Exception):
    """A request the cloud refuses (unknown name, exhausted range, duplicate key pair)."""


@contextmanager
def registry() -> Iterator[dict[str, dict[str, Any]]]:
    """The records, to read and change; written back atomically when the block ends."""
    path = cloud_dir() / "registry.json"
    with open(cloud_dir() / "registry.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.is_file() else {}
        for section in SECTIONS:
            data.setdefault(section, {})
        yield data
        temporary = path.with_name(f".registry.{os.getpid()}")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(temporary, path)


def read() -> dict[str, dict[str, Any]]:
    """The records as they are now (a copy; changes go through registry())."""
    path = cloud_dir() / "registry.json"
    with open(cloud_dir() / "registry.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        data = json.loads(path.read_text()) if path.is_file() else {}
    for section in SECTIONS:
        data.setdefault(section, {})
    return data


def allocate_address(owner: str, wanted: str | None = None) -> str:
    """A free address of the cloud's server range for `owner` (a resource's id), or `wanted`
    (a fixed_ip) if it is in the range and free."""
    network = ipaddress.ip_network(cloud_config()["server_range"])
    with registry() as data:
        taken = data["addresses"]
        if wanted:
            if ipaddress.ip_address(wanted) not in network:
                raise RegistryError(f"fixed IP {wanted} is outside the cloud's range {network}")
            if taken.get(wanted, owner) != owner:
                raise RegistryError(f"fixed IP {wanted} is in use")
            taken[wanted] = owner
            return wanted
        for address in network.hosts():
            if str(address) not in taken:
                taken[str(address)] = owner
                return str(address)
    raise RegistryError(f"no free address left in the cloud's range {network}")


def release_addresses(owner: str) -> None:
    with registry() as data:
        for address in [a for a, o in data["addresses"].items() if o == owner]:
            del data["addresses"][address]


def find_network(name_or_id: str) -> dict[str, Any]:
    """A network of the catalogue (public, private) or one a stack made, by name or id."""
    found = [n for n in cloud_config()["catalogue"]["networks"]]
    found += list(read()["networks"].values())
    for network in found:
        if name_or_id in (network["id"], network["name"]):
            return network
    names = ", ".join(sorted({n["name"] for n in found}))
    raise RegistryError(f"network {name_or_id!r} not found (networks: {names})")
