"""A testbed's state on disk: <state dir>/<name>.json (what runs) and <state dir>/<name>/
(its login key and boot files)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TestHost:
    """One test host, as an SSH client (and the host pool) sees it."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    address: str
    port: int
    user: str
    key: str             # path of the private key file (0600)
    host_key: str        # "ssh-ed25519 AAAA…", read from the host after it booted
    container: str       # podman container id
    image: str           # "bare" or "baked"
    labels: list[str] = field(default_factory=list)
    prefix: str = "/opt/disco"

    def inventory_entry(self) -> dict[str, Any]:
        """The host as `disco hosts add --from FILE` reads it."""
        return {"name": self.name, "address": self.address, "port": self.port, "user": self.user,
                "key": self.key, "host_key": self.host_key, "labels": list(self.labels),
                "prefix": self.prefix}


@dataclass
class TestbedState:
    name: str
    address_base: str
    hosts: list[TestHost] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "TestbedState":
        data = json.loads(text)
        return cls(data["name"], data["address_base"], [TestHost(**h) for h in data.get("hosts", [])])


def load(path: Path) -> TestbedState | None:
    return TestbedState.from_json(path.read_text()) if path.is_file() else None


def save(path: Path, state: TestbedState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(state.to_json())
    os.replace(temporary, path)


def all_states(state_dir: Path) -> list[TestbedState]:
    found = []
    for path in sorted(state_dir.glob("*.json")) if state_dir.is_dir() else []:
        state = load(path)
        if state is not None:
            found.append(state)
    return found
