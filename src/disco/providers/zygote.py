"""A warm Python process that forks framework processes with their modules already imported.

Starting `python -m dask worker` spends about a second importing before it does anything;
five such processes on two cores take as long again. The zygote imports the modules a
framework declares (`preload`) once, then for each request forks a child that becomes a
session leader with its own working directory, environment and log, and runs the module as
`python -m` would. Copy-on-write also shares the imported code's memory between children.

Protocol (one JSON object per line): the zygote writes {"ready": true} once its imports are
done; each request {"name", "module" and "args" (run the module) or "exec" (an argv to exec),
"env_file", "cwd", "log", "exit_file", "record", "title", "after_fork", "sandbox"} is answered
with {"pid": N}
or {"error": "..."}. When a child ends, its exit code is written to exit_file.
End of input makes the zygote exit; its children keep running.

A child runs nothing of its own until the zygote has written its record ({"name", "pid",
"started"} in the file `record`): whoever dies at whatever moment, no process of a cluster
exists that its node's records do not list (a child whose zygote dies first exits). A child
that runs a module in the zygote's interpreter shows the launch's `title` (with its cluster's
mark, see marks.py) as its command line, since /proc shows it the zygote's environment.

Run as: python -m disco.providers.zygote MODULE [MODULE ...]
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import signal
import sys
from typing import Any

import psutil

from disco.providers.sandbox import enter as enter_sandbox
from disco.reaping import reaped_children

try:  # renaming a forked child is what makes it findable by a /proc scan (marks.py)
    from setproctitle import setproctitle
except ImportError:  # pragma: no cover - a declared dependency; the record still finds it
    setproctitle = None

_exit_files: dict[int, str] = {}


def _reap(_signum: int = 0, _frame: Any = None) -> None:
    for pid, code in reaped_children():
        path = _exit_files.pop(pid, None)
        if path:
            try:
                with open(path, "w") as handle:
                    handle.write(str(code))
            except OSError:
                pass


def _become(request: dict[str, Any], go: int) -> None:
    """In the child: once the zygote says go, detach, take the request's environment and run
    the module or exec the command. Never returns into the zygote's loop."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.read(go, 1) != b"g":  # the zygote could not record us, or died: run nothing
        os._exit(1)
    os.close(go)
    try:
        env = _prepare(request)
    except BaseException as exc:  # nothing of the framework's may run half-set-up
        print(f"cannot start {request.get('name')}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        os._exit(126)
    if "exec" in request:
        _exec(request["exec"], env)
    sys.argv = [request["module"], *request["args"]]
    code = 0
    try:
        # Modules that read the environment at import (dask.config) re-read it here.
        for target in request.get("after_fork", []):
            module, _, function = target.partition(":")
            getattr(importlib.import_module(module), function)()
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:  # the child must never return into the zygote's loop
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _prepare(request: dict[str, Any]) -> dict[str, str]:
    """Session, log, environment, marks and sandbox of the child; its environment."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    # The environment (secrets included) comes in a file only this child reads, never
    # through the zygote's own memory, which every later child inherits.
    with open(request["env_file"]) as handle:
        env = json.load(handle)
    os.unlink(request["env_file"])
    os.chdir(request["cwd"])
    # Kept open for the process's life: /proc/PID/fd names the node's directory, a mark of
    # its cluster that survives the program renaming itself (marks.py).
    os.open(request["cwd"], os.O_RDONLY | os.O_DIRECTORY)
    if request.get("sandbox"):
        enter_sandbox(request["sandbox"])
    # Before the environment changes: setproctitle finds the memory to write the title in
    # next to the process's original environment block.
    if setproctitle is not None and request.get("title"):
        setproctitle(request["title"])
    os.environ.clear()
    os.environ.update(env)
    return env


def _exec(argv: list[str], env: dict[str, str]) -> None:
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        print(f"cannot run {argv[0]}: {exc}", file=sys.stderr, flush=True)
    os._exit(127)


def _write_record(path: str, name: str, pid: int) -> None:
    record = {"name": name, "pid": pid, "started": psutil.Process(pid).create_time()}
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(record, handle)
    os.replace(tmp, path)


def _fork(request: dict[str, Any]) -> int:
    """Fork the child, record it, then let it go. Raises if it could not be recorded (the child
    then exits without running anything)."""
    go_read, go_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(go_write)
        _become(request, go_read)
    os.close(go_read)
    try:
        _write_record(request["record"], request["name"], pid)
        os.write(go_write, b"g")
    finally:
        os.close(go_write)
    return pid


def _answer(reply: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


def main(modules: list[str]) -> None:
    for name in modules:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, _reap)
    _answer({"ready": True})
    for line in sys.stdin:
        # SIGCHLD waits until the child is registered: a child that dies at once must still
        # get its exit code written.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            request = json.loads(line)
            pid = _fork(request)
        except (ValueError, KeyError, OSError, psutil.Error) as exc:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            _answer({"error": f"{type(exc).__name__}: {exc}"})
            continue
        _exit_files[pid] = request["exit_file"]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        _answer({"pid": pid})
        _reap()


if __name__ == "__main__":
    main(sys.argv[1:])
