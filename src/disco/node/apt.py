"""OS packages from apt, only those that dpkg does not have installed yet."""

from __future__ import annotations

import os
import subprocess

_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
# Another apt (unattended upgrades, a second bootstrap) may hold the lock for a while.
_LOCK_WAIT = ["-o", "DPkg::Lock::Timeout=300"]


class AptError(RuntimeError):
    pass


def missing_packages(packages: list[str]) -> list[str]:
    missing = []
    for package in packages:
        name = package.split("=", 1)[0]
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
        if done.returncode != 0 or done.stdout.split()[-1:] != ["installed"]:
            missing.append(package)
    return missing


def install_packages(packages: list[str]) -> None:
    if os.geteuid() != 0:
        raise AptError(f"OS packages {', '.join(packages)} are missing and installing them needs root")
    env = {**os.environ, **_APT_ENV}
    _apt(["apt-get", *_LOCK_WAIT, "update", "-q"], env)
    install = ["apt-get", *_LOCK_WAIT, "install", "-y", "-q", "--no-install-recommends", *packages]
    done = subprocess.run(install, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0 and "dpkg --configure -a" in done.stderr:
        # An earlier run was killed inside dpkg: finish its work (dpkg alone may fail on the
        # order of half-unpacked dependencies; apt's fix-up finishes them), then ours.
        subprocess.run(["dpkg", "--configure", "-a"], env=env, stdin=subprocess.DEVNULL, capture_output=True)
        _apt(["apt-get", *_LOCK_WAIT, "install", "-f", "-y", "-q"], env)
        done = subprocess.run(install, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        raise AptError(f"apt-get install {' '.join(packages)} failed: {done.stderr.strip()[-2000:]}")


def _apt(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        raise AptError(f"{' '.join(argv[:1] + argv[-2:])} failed: {done.stderr.strip()[-2000:]}")
