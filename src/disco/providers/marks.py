"""How a cluster's processes can be told apart on this machine, by anyone, after any crash.

Every process the local provider starts carries its cluster id where the kernel shows it:
- a process exec'd with an environment of ours has `DISCO_CLUSTER_ID` and
  `DISCO_PROVIDER_ROOT` in /proc/PID/environ (and so do the processes it starts);
- a process forked warm from a zygote has no environment of its own there (the kernel shows
  the zygote's), so it renames itself: its /proc/PID/cmdline ends in a mark
  `disco-cluster=<id>@<root digest>`; and since the program may rename itself again (Dask
  does), it also keeps a descriptor open on its node's directory, which is its working
  directory too: /proc/PID/fd and /proc/PID/cwd name `<root>/<cluster id>/<node>`.
A scan of /proc with `cluster_of` finds all of them, whatever the service manager remembers.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator

import psutil

TAG_ENV = "DISCO_CLUSTER_ID"
# Several service managers (each with its own data directory) may share a machine: a
# process is ours only if it also carries our root.
ROOT_ENV = "DISCO_PROVIDER_ROOT"
_TITLE_MARK = re.compile(r"disco-cluster=([0-9A-Za-z_.-]+)@([0-9a-f]{12})\b")


def root_digest(root: str) -> str:
    return hashlib.sha256(root.encode()).hexdigest()[:12]


def title_mark(cluster_id: str, root: str) -> str:
    return f"disco-cluster={cluster_id}@{root_digest(root)}"


def cluster_of(proc: psutil.Process, root: str | None) -> str | None:
    """The id of the cluster that a process belongs to, if any: of the provider at `root`, or
    of any provider on this machine when root is None (for scans that trust no bookkeeping)."""
    try:
        found = _TITLE_MARK.search(" ".join(proc.cmdline()))
    except (psutil.Error, OSError):
        return None
    if found and (root is None or found.group(2) == root_digest(root)):
        return found.group(1)
    try:
        env = proc.environ()
    except (psutil.Error, OSError):
        env = {}
    if env.get(TAG_ENV) and (root is None or env.get(ROOT_ENV) == root):
        return env[TAG_ENV]
    return _cluster_of_paths(proc.pid, root)


_ANY_ROOT_PATH = re.compile(r"/clusters/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(/|$)")


def _cluster_of_paths(pid: int, root: str | None) -> str | None:
    """The cluster whose node directory the process works in or holds open."""
    base = f"/proc/{pid}"
    try:
        links = ["cwd", *(f"fd/{fd}" for fd in os.listdir(f"{base}/fd"))]
    except OSError:
        return None
    for link in links:
        try:
            target = os.readlink(f"{base}/{link}")
        except OSError:
            continue
        if root is None:
            found = _ANY_ROOT_PATH.search(target)
            if found:
                return found.group(1)
        elif target.startswith(root + "/"):
            return target[len(root) + 1:].split("/", 1)[0]
    return None


def marked_processes(root: str) -> Iterator[tuple[str, psutil.Process]]:
    """(cluster id, process) for every live, non-zombie process of the provider at `root`."""
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        cluster_id = cluster_of(proc, root)
        if cluster_id is None:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        yield cluster_id, proc
