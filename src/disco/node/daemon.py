"""Starting the supervisor as a daemon: double fork and setsid, so it belongs to no SSH
session and no service manager, then exec of a fresh interpreter that carries the node's
marks. The caller returns once the supervisor's socket answers (or with its error)."""

from __future__ import annotations

import fcntl
import os
import select
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from disco.node import control
from disco.node.layout import CLUSTER_ENV, NODE_ENV, PROCESS_ENV, NodeDir

_KEPT_ENV = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ")


class SupervisorStartError(RuntimeError):
    pass


def ensure_supervisor(node: NodeDir, timeout_s: float = 30.0) -> dict[str, Any]:
    if control.answers(node.socket):
        return {"started": False, "pid": control.call(node.socket, {"op": "ping"})["pid"]}
    bundle = node.load_bundle()  # fails here, readably, rather than in the daemon
    control.check_socket_path(node.socket)
    read_fd, write_fd = os.pipe()
    env = {key: os.environ[key] for key in _KEPT_ENV if key in os.environ}
    env.update({CLUSTER_ENV: bundle.cluster_id, NODE_ENV: bundle.node, PROCESS_ENV: "_supervisor"})
    argv = [sys.executable, "-m", "disco.node", "_supervisor", "--node-dir", str(node.path),
            "--ready-fd", str(write_fd)]
    first = os.fork()
    if first == 0:
        _detach_and_exec(read_fd, write_fd, node.supervisor_log, argv, env)
    os.close(write_fd)
    os.waitpid(first, 0)
    said = _read_until_eof(read_fd, timeout_s)
    if said.startswith(b"ready"):
        # "ready" may also come from a second supervisor that found the first one holding the
        # pid file and left: the first one answers shortly.
        deadline = time.monotonic() + 5.0
        while not control.answers(node.socket) and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"started": True, "pid": control.call(node.socket, {"op": "ping"})["pid"]}
    reason = said.decode(errors="replace").strip() or _tail(node.supervisor_log)
    raise SupervisorStartError(f"the supervisor did not start: {reason}")


def _detach_and_exec(read_fd: int, write_fd: int, log: Path, argv: list[str], env: dict[str, str]) -> None:
    try:
        os.close(read_fd)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        null = os.open("/dev/null", os.O_RDWR)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.set_inheritable(write_fd, True)
        os.chdir("/")
        os.umask(0o022)
        os.execve(argv[0], argv, env)
    finally:
        os._exit(127)


def _read_until_eof(fd: int, timeout_s: float) -> bytes:
    data = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"ready\n"):
                break
    finally:
        os.close(fd)
    return bytes(data)


def _tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace").strip()
    except OSError:
        return "no log"


def hold_pid_file(node: NodeDir) -> TextIO | None:
    """The pid file, locked for the supervisor's life; None if a live supervisor holds it."""
    handle = open(node.pid_file, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
