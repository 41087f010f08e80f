"""The virtual environment that holds OpenStack Heat (about 140 packages, 350 MB): built once
under the testbed cache and reused; rebuilt when the pins below change. Heat never goes into
DISCO's own environment: it pins many libraries of its own. `ensure_venv` builds the Keystone
venv the same way (keystone_venv.py)."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from disco.testbed.errors import TestbedError
from disco.testbed.paths import cache_root

# Heat 27 (2026.2, released with Keystone 30) and what the cloud in a box and the offline
# template validator need beside it.
HEAT_PACKAGES = ("openstack-heat==27.0.1", "openstacksdk>=4.0", "PyMySQL>=1.1")
STAMP = ".disco-heat-venv"


def venv_path(prefix: str, packages: tuple[str, ...], cache_dir: Path | None = None) -> Path:
    digest = hashlib.sha256("\n".join(packages).encode()).hexdigest()[:12]
    return (cache_dir or cache_root()) / f"{prefix}-{digest}"


def heat_venv_path(cache_dir: Path | None = None) -> Path:
    return venv_path("heat-venv", HEAT_PACKAGES, cache_dir)


def ensure_heat_venv(cache_dir: Path | None = None,
                     progress: Callable[[str], None] = lambda message: None) -> Path:
    """The Heat venv's directory, built if missing (about 40 s with a warm pip cache)."""
    return ensure_venv(heat_venv_path(cache_dir), HEAT_PACKAGES, STAMP, "Heat", progress)


def ensure_venv(venv: Path, packages: tuple[str, ...], stamp: str, what: str,
                progress: Callable[[str], None]) -> Path:
    """Builds `venv` with `packages` if it is missing. Built in place (a venv's scripts name
    their own path) under a lock; it counts only once its stamp is written, so an interrupted
    build is started over."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.with_name(venv.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / stamp).is_file() and (venv / "bin" / "python").exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        progress(f"building the {what} environment {venv} (once; a minute or two)")
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
            done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                   *packages], capture_output=True, text=True)
            if done.returncode != 0:
                raise TestbedError(f"installing {' '.join(packages)} failed: {done.stderr.strip()[-2000:]}")
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        (venv / stamp).write_text("\n".join(packages) + "\n")
        return venv
