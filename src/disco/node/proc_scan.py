"""A node's processes, found in /proc by their marks (never by anyone's memory): the
environment every process of the node carries (DISCO_CLUSTER, DISCO_NODE), a working
directory or open file inside the node's directory, or the cluster's own user."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from disco.node.layout import CLUSTER_ENV, NODE_ENV, PROCESS_ENV


@dataclass(frozen=True)
class Found:
    pid: int
    how: str          # "env", "path" or "user"
    process: str      # DISCO_PROCESS of the process, "" if none
    cmdline: str

    def as_dict(self) -> dict[str, object]:
        return {"pid": self.pid, "how": self.how, "process": self.process, "cmdline": self.cmdline}


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def start_time(pid: int) -> int | None:
    """Clock ticks since boot when the process started: with the pid, names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])


def is_live(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:][:1] not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def node_processes(cluster_id: str, node: str, node_dir: Path, uid: int | None) -> list[Found]:
    """Every live process of the node (ours excluded)."""
    found: list[Found] = []
    me = os.getpid()
    prefix = str(node_dir) + "/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        if not is_live(pid):
            continue
        env = environ(pid)
        how = ""
        if env.get(CLUSTER_ENV) == cluster_id and env.get(NODE_ENV) == node:
            how = "env"
        elif uid is not None and _uid(pid) == uid:
            how = "user"
        elif _holds_path(pid, prefix):
            how = "path"
        if how:
            found.append(Found(pid, how, env.get(PROCESS_ENV, ""), cmdline(pid)))
    return found


def _uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _holds_path(pid: int, prefix: str) -> bool:
    base = f"/proc/{pid}"
    try:
        links = ["cwd", *(f"fd/{fd}" for fd in os.listdir(f"{base}/fd"))]
    except OSError:
        return False
    for link in links:
        try:
            if (os.readlink(f"{base}/{link}") + "/").startswith(prefix):
                return True
        except OSError:
            continue
    return False


def listeners(host: str, port: int) -> bool:
    """Whether anything listens on host:port (IPv4), from /proc/net/tcp."""
    try:
        octets = [int(part) for part in host.split(".")]
    except ValueError:
        return False  # not an IPv4 address: nothing to look up here
    if len(octets) != 4:
        return False
    wanted = "".join(f"{o:02X}" for o in reversed(octets)) + f":{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in lines)
