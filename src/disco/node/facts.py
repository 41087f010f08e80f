"""`facts`: what the service manager needs to render a node's templates with paths of that
node: its venv's interpreter, site-packages and scripts, the node prefix, the OS and the Java
runtime."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path
from typing import Any

import disco


def facts() -> dict[str, Any]:
    prefix = Path(sys.prefix)
    # The venv sits at <node prefix>/venv; another interpreter has no node prefix of its own.
    node_prefix = prefix.parent if prefix.name == "venv" else None
    java = shutil.which("java")
    return {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "site_packages": sysconfig.get_paths()["purelib"],
        "bin_dir": sysconfig.get_paths()["scripts"],
        "prefix": str(prefix),
        "node_prefix": str(node_prefix) if node_prefix else None,
        "cache_dir": str(node_prefix / "cache") if node_prefix else None,
        "disco_version": _disco_version(),
        "disco_dir": str(Path(disco.__file__).parent),
        "os": _os_release(),
        "arch": platform.machine(),
        "java": java,
        "java_version": _java_version(java) if java else None,
        # What the host offers (frameworks size their daemons from it): its RAM, lowered to a
        # cgroup's limit when one is set (a container), and the CPUs this process may use.
        "memory_bytes": _memory_bytes(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
    }


def _memory_bytes() -> int | None:
    total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit_text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit_text.isdigit():
            limit = int(limit_text)
            total = limit if total is None else min(total, limit)
    except OSError:
        pass
    return total


def _disco_version() -> str:
    """The installed build (`0.1.0+<digest>` from a self wheel), else the source's version."""
    try:
        return metadata.version("disco")
    except metadata.PackageNotFoundError:
        return disco.__version__


def _os_release() -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            if key in ("ID", "VERSION_ID", "VERSION_CODENAME", "PRETTY_NAME"):
                values[key.lower()] = value.strip().strip('"')
    except OSError:
        pass
    return values


def _java_version(java: str) -> str | None:
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "([^"]+)"', done.stderr)
    return found.group(1) if found else None
