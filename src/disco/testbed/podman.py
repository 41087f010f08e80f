"""The podman commands the testbed uses, with the flags this kind of machine needs."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from typing import Any

from disco.testbed.errors import TestbedError

LABEL = "disco.testbed"          # = the testbed's name, on every container of it
IMAGE_LABEL = "disco.testbed.image"  # = the image directory a container runs on
_NPROC_CAP = 32768


def require_podman() -> None:
    if os.geteuid() != 0:
        raise TestbedError("test hosts need root (they are podman containers with host networking "
                           "and root filesystems built by debootstrap); run as root")
    if shutil.which("podman") is None:
        raise TestbedError("podman is not installed (Debian/Ubuntu: apt-get install podman runc catatonit)")


def podman(*args: str, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(["podman", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)
    if check and done.returncode != 0:
        raise TestbedError(f"podman {args[0]} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def runtime_flags() -> list[str]:
    """Debian's podman 4.3 works here with runc only, and may not raise resource limits (no
    CAP_SYS_RESOURCE in this machine's containers): podman's defaults fail, so a host gets our
    own limits, the process count capped at a value seen to work (65536 failed, 32768 did)."""
    flags = ["--runtime", "runc"] if shutil.which("runc") else []
    for name, limit, cap in (("nofile", resource.RLIMIT_NOFILE, None), ("nproc", resource.RLIMIT_NPROC, _NPROC_CAP)):
        soft, hard = resource.getrlimit(limit)
        if cap is not None:
            soft, hard = (cap if v == resource.RLIM_INFINITY else min(v, cap) for v in (soft, hard))
        flags += ["--ulimit", f"{name}={soft}:{hard}"]
    return flags


def containers(label: str) -> list[dict[str, Any]]:
    """Every container (running or not) carrying a label (`key` or `key=value`)."""
    output = podman("ps", "-a", "--format", "json", "--filter", f"label={label}")
    return list(json.loads(output or "[]"))
