"""A job's warm worker process: imports the worker module once, then forks one worker per task.

A fresh `python -m disco.worker.classic.worker` spends ~0.3 s of CPU importing before it says
WORKER; for no-op tasks that is nearly all of a task's cost. The node starts this process once
per job, with the job home as working directory and the workers' environment, exactly as it
would start `run-worker` (so `sys.path[0]` is the job home, as under `python -m`).

Run as `python -m disco.mapreduce.node.zygote FD MODULE`: FD is one end of a SOCK_SEQPACKET
socket pair (message boundaries kept; file descriptors travel with SCM_RIGHTS).
- zygote -> node: {"ready": true} after the import (or {"error": ...} and exit);
- node -> zygote: {"adopt": {"cwd": DIR, "env": {...}}}, to a spare zygote the node started
  before any job wanted it (`warmstart.WarmPool`): it becomes the zygote of the job whose
  home is DIR, as if started there with that environment; answered {"adopted": true} or
  {"error": ...};
- node -> zygote: {"spawn": true} with two descriptors, the worker's stdin and its
  stdout/stderr; answered {"pid": N} or {"error": ...};
- zygote -> node, whenever a worker is reaped: {"exit": pid, "code": exit code as Popen
  gives it, negative for a signal}.
End of the socket makes the zygote exit (its workers are the node's to kill).

The forked child becomes a session leader, puts the descriptors on 0, 1 and 2, drops the
socket and runs the module as `python -m` would, at the top of the stack, so its exit
(SystemExit, an uncaught exception, atexit) is that of a normal interpreter.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import select
import signal
import socket
import sys
from typing import Any

from disco.reaping import reaped_children

ADOPT_MAX = 1 << 17  # the longest message from the node: an adopt carries a job's environment
# Modules Disco's Python workers import lazily, inside functions, in every task: importing
# them once here saves each forked worker that work. Only library code without per-process
# state (the environment and working directory are the workers' own already).
LAZY_IMPORTS = ("pickle", "codecs", "resource", "cloudpickle", "disco.jobpack",
                "disco.settings", "disco.fileutils", "disco.schemes", "disco.util",
                "disco.worker.protocol", "disco.worker.task_io", "disco.worker.classic.func")


# Where the zygote started: sys.path[0] (as under `python -m`) until a job's home replaces it.
_started_in = os.getcwd()


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode())


def _reap(sock: socket.socket) -> None:
    for pid, code in reaped_children():
        _send(sock, {"exit": pid, "code": code})


def serve(sock: socket.socket) -> None:
    """Fork workers on request; returns only in a forked child, with its stdio in place."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    # A handler (not SIG_DFL) so that SIGCHLD writes to the wakeup pipe.
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        _reap(sock)
        if sock not in ready:
            continue
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, ADOPT_MAX, 2)
        except ConnectionError:
            data, fds = b"", []
        if not data:
            os._exit(0)  # the node is gone
        if not fds and data.startswith(b'{"adopt"'):
            _send(sock, _adopt(data))
            continue
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            _send(sock, {"error": f"expected 2 descriptors, got {len(fds)}"})
            continue
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            _send(sock, {"error": f"fork: {exc}"})
            continue
        if pid == 0:
            _become_worker(sock, (wake_r, wake_w), fds[0], fds[1])
            return
        for fd in fds:
            os.close(fd)
        _send(sock, {"pid": pid})


def _adopt(data: bytes) -> dict[str, Any]:
    """Become a job's zygote: its home as working directory (and as sys.path[0], where
    `python -m` puts the directory it starts in) and its environment. Nothing imported so far
    read either (the node checks that the variables the interpreter reads at start, PYTHON*
    and the like, are the same)."""
    try:
        order = json.loads(data)["adopt"]
        cwd, env = str(order["cwd"]), dict(order["env"])
        os.chdir(cwd)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return {"error": f"cannot adopt: {exc!r}"}
    if sys.path and sys.path[0] == _started_in:
        sys.path[0] = os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    importlib.invalidate_caches()
    return {"adopted": True}


def _become_worker(sock: socket.socket, wake: tuple[int, int], stdin: int, stdout: int) -> None:
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.close(wake[0])
    os.close(wake[1])
    sock.close()
    os.setsid()  # its own session and process group, as start_new_session gives
    os.dup2(stdin, 0)
    os.dup2(stdout, 1)
    os.dup2(stdout, 2)
    os.close(stdin)
    os.close(stdout)


def main(argv: list[str]) -> None:
    fd, module = int(argv[0]), argv[1]
    sock = socket.socket(fileno=fd)
    try:
        importlib.import_module(module)
    except BaseException as exc:  # noqa: BLE001 - the node falls back to a normal spawn
        _send(sock, {"error": f"cannot import {module}: {exc!r}"})
        os._exit(1)
    if module.startswith("disco.worker."):
        for name in LAZY_IMPORTS:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the worker imports it itself, or fails as ever
                pass
    _send(sock, {"ready": True})
    serve(sock)
    # Only the forked worker gets here: run the module as `python -m MODULE` does.
    sys.argv = sys.argv[:1]  # run-worker passes no arguments
    # As in a fresh `python -m`, the module exists only as __main__ (runpy warns otherwise);
    # what it imported stays imported, which is the point.
    sys.modules.pop(module, None)
    package, _, leaf = module.rpartition(".")
    if package in sys.modules:
        vars(sys.modules[package]).pop(leaf, None)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
