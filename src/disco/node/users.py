"""The unprivileged user a cluster's processes run as on a node, when the supervisor runs as
root: made on the node for the cluster (no home, no login shell), removed on destroy."""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterUser:
    name: str
    uid: int
    gid: int


def user_name(cluster_id: str) -> str:
    # Short (user names are limited to 32 characters) and the same on every node of the cluster.
    return "disco-" + hashlib.sha256(cluster_id.encode()).hexdigest()[:10]


def isolating() -> bool:
    return os.geteuid() == 0


def find_user(cluster_id: str) -> ClusterUser | None:
    try:
        entry = pwd.getpwnam(user_name(cluster_id))
    except KeyError:
        return None
    return ClusterUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def ensure_user(cluster_id: str) -> tuple[ClusterUser, bool]:
    """The cluster's user, made now unless it exists; whether it was made."""
    found = find_user(cluster_id)
    if found is not None:
        return found, False
    _run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
          "--shell", "/usr/sbin/nologin", "--comment", f"DISCO cluster {cluster_id}", user_name(cluster_id)])
    made = find_user(cluster_id)
    assert made is not None
    return made, True


def remove_user(cluster_id: str) -> str | None:
    """Remove the cluster's user (and its group); its name if there was one."""
    if find_user(cluster_id) is None:
        return None
    _run(["userdel", user_name(cluster_id)])
    return user_name(cluster_id)


def _run(argv: list[str]) -> None:
    # useradd and userdel lock /etc/passwd; another tool may hold it for a moment.
    for attempt in range(20):
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.returncode == 0:
            return
        if "lock" not in done.stderr.lower() or attempt == 19:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
        time.sleep(0.25)
