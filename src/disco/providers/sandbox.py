"""What a cluster's process may see and touch on this machine, when the service manager runs
as root: its own user, and a private view of the file system.

The zygote's child calls `enter` before it runs anything of the framework's (so the few
milliseconds it takes keep warm starts warm):
- a mount namespace of its own, where the service manager's data directory (database,
  secrets key, token, logs, every other cluster's files) is covered by an empty tmpfs, and
  only the node's own working directory is mounted back;
- directories on the way to what it needs that other users may not pass (say a Python
  installed under /root) are covered the same way, and only the needed parts mounted back;
- then it drops to the cluster's unprivileged user (no supplementary groups, no new
  privileges), so it can neither read nor signal anything of another cluster.

`plan` works out, in the service manager, which directories to cover and what to mount
back, so that the child only carries the plan out.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
PR_SET_NO_NEW_PRIVS = 38


def plan(hide: list[str], expose: list[str]) -> dict[str, Any]:
    """Directories to cover with an empty tmpfs, outermost first, and, for each, the needed
    paths to mount back inside it. `hide` are covered anyway; every directory that others
    cannot pass on the way to an `expose` path is covered too."""
    expose = sorted({os.path.realpath(p) for p in expose if os.path.exists(p)})
    covers = {os.path.realpath(p) for p in hide}
    for path in expose:
        for ancestor in reversed(Path(path).parents):
            if str(ancestor) != "/" and not _passable(ancestor):
                covers.add(str(ancestor))
                break
    ordered = sorted(covers, key=lambda p: (p.count("/"), p))
    mounts = []
    for cover in ordered:
        inner = [c for c in ordered if within(c, cover) and c != cover]
        # Mounted back here: what lies under this cover and under no deeper one (a deeper
        # cover mounts back its own), and is not inside another path mounted back already.
        back = [p for p in expose if within(p, cover) and not any(within(p, c) for c in inner)]
        back = [p for p in back if not any(q != p and within(p, q) for q in back)]
        mounts.append({"cover": cover, "back": back})
    return {"mounts": mounts, "expose": expose}


def _passable(directory: Path) -> bool:
    try:
        return bool(directory.stat().st_mode & 0o001)
    except OSError:
        return False


def within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def enter(spec: dict[str, Any]) -> None:
    """In the child, as root: carry out the plan, then become the cluster's user. Raises
    OSError when any step fails; the caller must then run nothing."""
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(CLONE_NEWNS), "unshare")
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    # Opened in the new namespace (a bind mount's source must be in it) before anything is
    # covered: what is mounted back comes from these.
    handles = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in spec["plan"]["expose"]}
    for step in spec["plan"]["mounts"]:
        os.makedirs(step["cover"], exist_ok=True)
        _mount(libc, "disco-hidden", step["cover"], "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
        for path in step["back"]:
            if os.path.isdir(f"/proc/self/fd/{handles[path]}"):
                os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "a").close()
            _mount(libc, f"/proc/self/fd/{handles[path]}", path, None, MS_BIND | MS_REC)
    for handle in handles.values():
        os.close(handle)
    os.chdir(spec["cwd"])
    os.setgroups([])
    os.setresgid(spec["gid"], spec["gid"], spec["gid"])
    os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")


def _mount(libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    def raw(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None
    _check(libc.mount(raw(source), raw(target), raw(fstype), ctypes.c_ulong(flags), raw(data)),
           f"mount {target}")


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
