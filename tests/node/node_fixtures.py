"""Helpers of the node tests: a node prefix of its own under /tmp, an address of its own
(127.84.x.y), the node CLI run as a real subprocess, and a cleanup that checks the system
itself (/proc, users, files) rather than the node's own bookkeeping."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disco.node.bundle import NodeBundle

SRC = Path(__file__).resolve().parents[2] / "src"
_addresses = itertools.count(1)


def fresh_host() -> str:
    """A loopback address no other test (of this or another run) uses at the same time."""
    return f"127.84.{os.getpid() % 250 + 1}.{next(_addresses) % 250 + 1}"


def fresh_prefix() -> Path:
    # /tmp/pytest-of-root is 0700: the cluster's user could not reach its work/ there.
    path = Path(tempfile.mkdtemp(prefix="disco-node-", dir="/tmp"))
    path.chmod(0o755)
    return path / "opt"


def cli_env() -> dict[str, str]:
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(SRC),
            "LANG": "C.UTF-8"}


def node_cli(*args: str, stdin: Any = None, python: str = sys.executable, check: bool = True,
             timeout: float = 300) -> dict[str, Any]:
    env = cli_env()
    if python != sys.executable:
        del env["PYTHONPATH"]  # a node's venv runs the disco it holds
    done = subprocess.run([python, "-m", "disco.node", *args], input=None if stdin is None else json.dumps(stdin),
                          capture_output=True, text=True, env=env, timeout=timeout)
    try:
        answer = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"{args[0]} printed no JSON (rc {done.returncode}): {done.stdout!r} {done.stderr[-3000:]}")
    if check and done.returncode != 0:
        raise AssertionError(f"{args[0]} failed (rc {done.returncode}): {answer} {done.stderr[-3000:]}")
    answer["_rc"] = done.returncode
    answer["_stderr"] = done.stderr
    return answer


@dataclass
class NodeUnderTest:
    prefix: Path
    host: str
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    cluster_id: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:12]}")
    name: str = "master"
    log_port: int = 8084

    def bundle(self, **fields: Any) -> NodeBundle:
        values: dict[str, Any] = dict(cluster_id=self.cluster_id, node=self.name, role="master", host=self.host,
                                      prefix=str(self.prefix), log_port=self.log_port,
                                      log_token_sha256=hashlib.sha256(self.token.encode()).hexdigest())
        values.update(fields)
        return NodeBundle(**values)

    @property
    def node_dir(self) -> Path:
        return self.prefix / "clusters" / self.cluster_id / self.name

    def write_bundle(self, bundle: NodeBundle) -> Path:
        self.prefix.mkdir(parents=True, exist_ok=True)
        path = self.prefix.parent / "bundle.json"
        path.write_text(bundle.to_json())
        return path

    def install(self, bundle: NodeBundle, check: bool = True) -> dict[str, Any]:
        return node_cli("install", "--bundle", str(self.write_bundle(bundle)), check=check)

    def cli(self, command: str, *args: str, stdin: Any = None, check: bool = True) -> dict[str, Any]:
        return node_cli(command, "--node-dir", str(self.node_dir), *args, stdin=stdin, check=check)

    def status(self, name: str) -> dict[str, Any]:
        return self.cli("status", name)["processes"][name]

    def cleanup(self) -> None:
        """destroy, then whatever a failed test left: marked processes, the user, the files."""
        if self.node_dir.exists():
            node_cli("destroy", "--node-dir", str(self.node_dir), "--grace", "2", check=False)
        for pid in marked_pids(self.cluster_id):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        user = user_of(self.cluster_id)
        if user is not None:
            subprocess.run(["userdel", user], capture_output=True)
        shutil.rmtree(self.prefix.parent, ignore_errors=True)


def marked_pids(cluster_id: str) -> list[int]:
    """Live processes whose environment carries the cluster's mark (an independent /proc scan)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"DISCO_CLUSTER={cluster_id}".encode() in environ and state != "Z":
            found.append(int(entry))
    return found


def user_of(cluster_id: str) -> str | None:
    comment = f"DISCO cluster {cluster_id}"
    for entry in pwd.getpwall():
        if entry.pw_gecos == comment:
            return entry.pw_name
    return None


def listening(host: str, port: int) -> bool:
    wanted = "".join(f"{int(o):02X}" for o in reversed(host.split("."))) + f":{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in lines)


def wait_until(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {predicate}")
