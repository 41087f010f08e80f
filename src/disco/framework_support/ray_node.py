"""Runs one Ray node (`ray start --block …`) with a short temp-dir path, and cleans it up.

Ray puts its Unix sockets under its temp dir (`<temp>/session_<date>_<pid>/sockets/…`), and a
socket path may hold at most 107 bytes: a node's directory is far too deep for that. So the
temp dir really lives in the node's directory (removed with the node) and Ray is given a
short link to it under /tmp, named after that directory. This process stays Ray's parent: on
SIGTERM or SIGINT it removes the link first (so a SIGKILL that follows the grace period
leaves nothing in /tmp), then passes the signal on and waits for Ray.

Usage: python -m disco.framework_support.ray_node TEMP_DIR -- RAY_ARGS...
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

LINK_PREFIX = "/tmp/disco-ray-"


def link_for(temp_dir: Path) -> Path:
    return Path(LINK_PREFIX + hashlib.sha256(str(temp_dir).encode()).hexdigest()[:16])


def _replace_link(link: Path, target: Path) -> None:
    if link.is_symlink():
        link.unlink()  # left by a node of this path that was killed outright
    elif link.exists():
        raise SystemExit(f"{link} exists and is not a link: refusing to use it")
    link.symlink_to(target)


def _remove_link(link: Path, target: Path) -> None:
    try:
        if link.is_symlink() and os.readlink(link) == str(target):
            link.unlink()
    except OSError:
        pass


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    temp_dir = Path(argv[0]).resolve()
    temp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    link = link_for(temp_dir)
    _replace_link(link, temp_dir)
    ray = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--temp-dir", str(link), *argv[2:]]
    child = subprocess.Popen(ray)

    def stop(signum: int, _frame: object) -> None:
        _remove_link(link, temp_dir)
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return child.wait()
    finally:
        _remove_link(link, temp_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
