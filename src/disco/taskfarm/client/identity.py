"""The client's identity: enrolled once with the enrollment key, then its token kept in a 0600
state file so that a restart is the same client (its record, its adaptive replication). The key
comes from a file or the environment, never the command line, where `ps` would show it."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

STATE_FILE = "client.json"
KEY_ENV = "DISCO_FARM_KEY"


def read_key(key_file: Path | None) -> str:
    if key_file is not None:
        return key_file.read_text().strip()
    return os.environ.get(KEY_ENV, "").strip()


def load(state_dir: Path, server: str) -> dict[str, Any] | None:
    path = state_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if state.get("server") == server and state.get("client_token") else None


def save(state_dir: Path, state: dict[str, Any]) -> None:
    """Written whole to a 0600 file created as such, then renamed: never readable by others, never half."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = state_dir / f".{STATE_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, state_dir / STATE_FILE)


def enrollment(name: str, slots: int) -> dict[str, Any]:
    machine = platform.machine().lower() or "unknown"
    return {"name": name, "slots": slots, "platform": f"{platform.system().lower()}-{machine}"[:64],
            "cpus": os.cpu_count() or 1, "memory_mb": _memory_mb()}


def _memory_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return 0
