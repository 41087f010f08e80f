"""Runs a shell script inside an image's root filesystem while it is being built.

The script runs in a mount and PID namespace of its own (`unshare`): /proc, /sys and /dev
are mounted there only, so a build that is killed leaves no mount behind on this machine, and
no daemon a package's install script may start outlives the step."""

from __future__ import annotations

import subprocess
from pathlib import Path

from disco.testbed.errors import TestbedError

_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
        "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}

# $1 = root, $2 = the script, then pairs of (source dir, mount point inside the root).
_WRAPPER = r"""
set -e
root=$1; script=$2; shift 2
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
while [ $# -gt 1 ]; do
  mkdir -p "$root$2"; mount --bind "$1" "$root$2"; shift 2
done
exec chroot "$root" /bin/sh -ec "$script"
"""


def run_in_root(root: Path, script: str, binds: dict[Path, str] | None = None, what: str = "") -> None:
    pairs = [str(part) for source, target in (binds or {}).items() for part in (source, target)]
    argv = ["unshare", "--mount", "--pid", "--fork", "--propagation", "private",
            "/bin/sh", "-ec", _WRAPPER, "chroot-step", str(root), script, *pairs]
    done = subprocess.run(argv, env=_ENV, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-3000:]
        raise TestbedError(f"image build step {what or script[:60]!r} failed (exit {done.returncode}):\n{output}")
