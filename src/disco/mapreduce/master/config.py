"""The master's configuration (command line, else environment, else Disco's defaults) and its
runtime settings (changed through `save_settings`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disco.mapreduce.ddfs.config import DdfsConfig


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return default


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return default


@dataclass
class MasterConfig:
    host: str = "127.0.0.1"
    port: int = field(default_factory=lambda: _env_int("DISCO_PORT", 8989))
    data: Path = field(default_factory=lambda: Path(os.environ.get("DISCO_DATA", "disco-data")))
    scheduler: str = field(default_factory=lambda: os.environ.get("DISCO_SCHEDULER", "fair"))
    # A failed task waits min(n, 60) x retry_base (+ up to one retry_base of jitter).
    retry_base: float = field(default_factory=lambda: _env_float("DISCO_RETRY_BASE", 1.0))
    # A node that has not polled for this long is lost, and its tasks run elsewhere.
    node_timeout: float = field(default_factory=lambda: _env_float("DISCO_NODE_TIMEOUT", 10.0))
    # How long a node's poll waits for work before it is answered empty.
    poll_hold: float = field(default_factory=lambda: _env_float("DISCO_POLL_HOLD", 2.0))
    # How long a concurrent-stage task's request for more inputs is held.
    input_hold: float = 15.0
    max_failure_rate: int = field(default_factory=lambda: _env_int("DISCO_MAX_FAILURE_RATE", 100))
    ddfs: DdfsConfig = field(default_factory=DdfsConfig)
    # The cluster token every request must carry (None: open, as Disco was); see ..auth.
    token: str | None = field(default=None, repr=False)
    # Several masters over one node pool (docs/mapreduce.md, "Several masters"): this one is
    # number `instance` (from 0) of `instances`, which its job names say (see jobnames), and
    # unless it is the DDFS authority itself, `ddfs_authority` is the URL of the one that is.
    instance: int = 0
    instances: int = 1
    ddfs_authority: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class Settings:
    """What `get_settings`/`save_settings` show and change while the master runs."""

    max_failure_rate: int = 100
    accept_new_jobs: bool = True

    def as_json(self) -> dict[str, Any]:
        return {"max_failure_rate": self.max_failure_rate,
                "accept_new_jobs": 1 if self.accept_new_jobs else 0}

    def update(self, values: dict[str, Any]) -> None:
        """Values may arrive as numbers or strings (Disco's web page sends strings)."""
        if "max_failure_rate" in values:
            rate = int(values["max_failure_rate"])
            if rate < 0:
                raise ValueError("max_failure_rate cannot be negative")
            self.max_failure_rate = rate
        if "accept_new_jobs" in values:
            flag = values["accept_new_jobs"]
            if isinstance(flag, str):
                flag = flag.strip().lower() not in ("0", "false", "no", "")
            self.accept_new_jobs = bool(flag)


_RANGE = re.compile(r"^(?P<prefix>.*?)(?P<start>\d+):(?P<end>\d+)$")


def expand_hostspec(spec: str) -> list[str]:
    """`node01:10` stands for node01 .. node10 (the width of the first number is kept)."""
    m = _RANGE.match(spec)
    if not m:
        return [spec]
    start, end = int(m["start"]), int(m["end"])
    width = len(m["start"])
    return [f"{m['prefix']}{i:0{width}d}" for i in range(start, end + 1)]


def slots_from_table(table: list[list[Any]]) -> dict[str, int]:
    """Disco's config table `[[hostspec, cores], ...]` as host -> slots."""
    slots: dict[str, int] = {}
    for entry in table:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise ValueError(f"config table entries are [hostspec, cores], not {entry!r}")
        spec, cores = entry
        if not isinstance(spec, str) or not spec:
            raise ValueError(f"bad host {spec!r} in the config table")
        n = int(cores)
        if n < 0:
            raise ValueError(f"negative cores for {spec}")
        for host in expand_hostspec(spec):
            slots[host] = n
    return slots
