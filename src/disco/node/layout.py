"""Where things are on a node (docs/design/multi-host.md, "On a node"):

    <prefix>/venv/  <prefix>/cache/  <prefix>/clusters/<cluster-id>/<node>/
        bundle.json  secrets/  deploy.log  supervisor.sock  supervisor.pid  supervisor.log
        state.json  launches/  logs/<process>.log  work/
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from disco.node.bundle import NodeBundle

# Every process of a node carries these in its environment (/proc/PID/environ).
CLUSTER_ENV = "DISCO_CLUSTER"
NODE_ENV = "DISCO_NODE"
PROCESS_ENV = "DISCO_PROCESS"


@dataclass(frozen=True)
class NodeDir:
    path: Path

    @property
    def bundle_file(self) -> Path:
        return self.path / "bundle.json"

    @property
    def secrets(self) -> Path:
        return self.path / "secrets"

    @property
    def deploy_log(self) -> Path:
        return self.path / "deploy.log"

    @property
    def socket(self) -> Path:
        return self.path / "supervisor.sock"

    @property
    def pid_file(self) -> Path:
        return self.path / "supervisor.pid"

    @property
    def supervisor_log(self) -> Path:
        return self.path / "supervisor.log"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def launches(self) -> Path:
        """The supervisor's copy of each launch (its env may hold secrets): root's, 0700."""
        return self.path / "launches"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def work(self) -> Path:
        return self.path / "work"

    @property
    def prefix(self) -> Path:
        return self.path.parent.parent.parent

    def load_bundle(self) -> NodeBundle:
        try:
            text = self.bundle_file.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.bundle_file} is missing: run `install --bundle` first") from None
        return NodeBundle.from_json(text)

    def ids(self) -> tuple[str, str]:
        """(cluster id, node) from the path itself: known even when bundle.json is gone."""
        if self.path.parent.parent.name != "clusters":
            raise ValueError(f"{self.path} is not <prefix>/clusters/<cluster-id>/<node>")
        return self.path.parent.name, self.path.name


def node_dir_arg(value: str) -> NodeDir:
    return NodeDir(Path(os.path.abspath(value)))


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a whole file or nothing: a reader (or a re-run after a kill) never sees half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, value: object, mode: int = 0o644) -> None:
    write_atomic(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode(), mode)
