"""A launch, as `start` takes it on stdin: what to run, how, and how often to restart it.

    {"name": "worker", "argv": ["dask", "worker", "tcp://10.0.0.5:8786"],
     "env": {"DASK_X": "1"}, "files": {"conf/key.pem": "…"},
     "wait_for_tcp": "10.0.0.5:8786", "wait_timeout_s": 120,
     "restart": {"max": 5, "backoff_s": 1, "max_backoff_s": 30, "stable_s": 60}}

`files` are written under work/, private to the process's user; `env` and `files` may hold
secrets, so the supervisor keeps its copy of a launch in launches/ (root's, 0600).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from disco.node.bundle import relative_path

PROCESS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LaunchError(ValueError):
    pass


@dataclass(frozen=True)
class RestartPolicy:
    # Restarts in a row before the process is reported dead; 0: never restart.
    max: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    # A process that ran this long has recovered: its count of restarts in a row starts over.
    stable_s: float = 60.0

    def delay(self, restarts: int) -> float:
        return min(self.backoff_s * (2 ** max(restarts - 1, 0)), self.max_backoff_s)


@dataclass(frozen=True)
class Launch:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    wait_for_tcp: str | None = None
    wait_timeout_s: float = 120.0
    restart: RestartPolicy = field(default_factory=RestartPolicy)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Launch:
        if not isinstance(data, dict):
            raise LaunchError("a launch is a JSON object")
        data = dict(data)
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise LaunchError(f"unknown launch fields: {', '.join(unknown)}")
        if not isinstance(data.get("name"), str) or not PROCESS_NAME.match(data["name"]):
            raise LaunchError(f"name {data.get('name')!r} must be 1-64 letters, digits, '_', '.', '-'")
        argv = data.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
            raise LaunchError("argv must be a non-empty list of strings")
        env = data.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(k, str) and _ENV_NAME.match(k) and isinstance(v, str)
                                                and "\0" not in v for k, v in env.items()):
            raise LaunchError("env must map variable names to strings")
        files = data.get("files", {})
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise LaunchError("files must map relative paths to text")
        for name in files:
            try:
                relative_path(name, "file")
            except ValueError as exc:
                raise LaunchError(str(exc)) from None
        wait = data.get("wait_for_tcp")
        if wait is not None:
            host, _, port = str(wait).rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise LaunchError(f"wait_for_tcp {wait!r} is not host:port")
        restart = data.get("restart", {})
        if not isinstance(restart, dict):
            raise LaunchError("restart must be an object")
        try:
            data["restart"] = RestartPolicy(**restart)
            return cls(**data)
        except TypeError as exc:
            raise LaunchError(f"bad launch: {exc}") from None
