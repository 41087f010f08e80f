"""The unprivileged users that the local provider runs clusters as, when it runs as root.

Each cluster slot's addresses (127.B.S.x) are unique on the machine, across service managers,
so the user is derived from them: uid = base + B * 256 + S. A user of that uid is made once
(`groupadd`/`useradd`, no home, no login shell) and kept for the next cluster on the slot:
the JVM and Hadoop's user look-ups need a name for the uid.
"""

from __future__ import annotations

import logging
import os
import pwd
import grp
import subprocess
import threading

log = logging.getLogger("disco.providers.local")

ISOLATION_ENV = "DISCO_LOCAL_ISOLATION"
UID_BASE_ENV = "DISCO_LOCAL_UID_BASE"
DEFAULT_UID_BASE = 200_000
_made = threading.Lock()


def isolation_mode() -> str:
    """`users` (a user per cluster and a private view of the files; needs root) or `none`
    (clusters run as the service manager's user: one tenant only)."""
    wanted = os.environ.get(ISOLATION_ENV, "auto").strip().lower()
    if wanted not in ("auto", "users", "none"):
        raise ValueError(f"{ISOLATION_ENV} must be auto, users or none, not {wanted!r}")
    if wanted == "auto":
        return "users" if os.geteuid() == 0 else "none"
    if wanted == "users" and os.geteuid() != 0:
        raise ValueError(f"{ISOLATION_ENV}=users needs the service manager to run as root")
    return wanted


def uid_for_host(host: str) -> int:
    """The user of the cluster whose node has this address."""
    _, second, third, _ = (int(part) for part in host.split("."))
    return int(os.environ.get(UID_BASE_ENV, DEFAULT_UID_BASE)) + second * 256 + third


def ensure_user(uid: int) -> None:
    """Make the user and its group (same number) unless they exist."""
    name = f"disco-c{uid}"
    with _made:
        try:
            pwd.getpwuid(uid)
            return
        except KeyError:
            pass
        try:
            grp.getgrgid(uid)
        except KeyError:
            _run(["groupadd", "--gid", str(uid), name])
        _run(["useradd", "--uid", str(uid), "--gid", str(uid), "--no-create-home", "--no-user-group",
              "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment",
              "DISCO cluster user", name])
        log.info("made user %s (%d) for clusters of the local provider", name, uid)


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:1])} failed: {done.stderr.strip() or done.stdout.strip()}")
