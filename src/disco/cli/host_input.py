"""What `disco hosts add` reads on the admin's machine: key files, a known_hosts file and
inventories, turned into `POST /api/v1/hosts` bodies. Errors name the file and field, never a
key's content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncssh
import yaml

MAX_KEY_BYTES = 16384
INVENTORY_FIELDS = {"name", "address", "port", "user", "key", "host_key", "labels", "prefix"}


class InputError(ValueError):
    """Input the command cannot use; the message says which and why."""


def read_key(path: Path, what: str = "--key") -> str:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_BYTES:
        raise InputError(f"{what} {path} is larger than a private key ({len(data)} bytes)")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InputError(f"{what} {path} is not a text key file") from None


def known_host_key(path: Path, address: str, port: int) -> str:
    """The host's key from a known_hosts file (hashed entries too), ed25519 preferred."""
    try:
        known = asyncssh.read_known_hosts(str(Path(path).expanduser()))
    except OSError as exc:
        raise InputError(f"cannot read --known-hosts {path}: {exc.strerror or exc}") from None
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise InputError(f"--known-hosts {path} is not a known_hosts file ({exc})") from None
    keys = list(known.match(address, address, port)[0])
    if not keys:
        where = address if port == 22 else f"[{address}]:{port}"
        raise InputError(f"--known-hosts {path} has no key for {where}")
    keys.sort(key=lambda k: k.get_algorithm() != b"ssh-ed25519")
    algorithm, body = keys[0].export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {body}"


def host_body(*, address: str, port: int, user: str, key_path: Path, name: str | None = None,
              prefix: str | None = None, host_key: str | None = None, labels: list[str] | None = None,
              what: str = "--key") -> dict[str, Any]:
    body: dict[str, Any] = {"address": address, "port": port, "user": user,
                            "private_key": read_key(key_path, what), "labels": list(labels or [])}
    for field, value in (("name", name), ("prefix", prefix), ("host_key", host_key)):
        if value:
            body[field] = value
    return body


def inventory_bodies(path: Path) -> list[dict[str, Any]]:
    """Every host of an inventory (`hosts: [{name, address, port, user, key, host_key, labels,
    prefix}]`), all read and checked before any is sent. A relative key path is taken from the
    inventory's folder."""
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text())
    except OSError as exc:
        raise InputError(f"cannot read --from {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"--from {path} is not YAML ({exc})") from None
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, list) or not hosts:
        raise InputError(f"--from {path}: expected `hosts:` with a list of hosts")
    bodies = []
    for i, entry in enumerate(hosts):
        where = f"--from {path}: hosts[{i}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where} is not a mapping")
        unknown = sorted(set(entry) - INVENTORY_FIELDS)
        missing = [field for field in ("address", "user", "key") if not entry.get(field)]
        if unknown or missing:
            raise InputError(f"{where}: " + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else []) +
                ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])))
        port = entry.get("port", 22)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise InputError(f"{where}: port must be a number from 1 to 65535, not {port!r}")
        labels = entry.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise InputError(f"{where}: labels must be a list of words")
        key_path = Path(str(entry["key"])).expanduser()
        if not key_path.is_absolute():
            key_path = Path(path).expanduser().parent / key_path
        bodies.append(host_body(address=str(entry["address"]), port=port, user=str(entry["user"]),
                                key_path=key_path, name=entry.get("name"), prefix=entry.get("prefix"),
                                host_key=entry.get("host_key"), labels=labels, what=f"{where}.key"))
    return bodies
