"""A warm Python process that forks framework processes with their modules already imported.

Starting `python -m dask worker` spends about a second importing before it does anything;
five such processes on two cores take as long again. The zygote imports the modules a
framework declares (`preload`) once, then for each request forks a child that becomes a
session leader with its own working directory, environment and log, and runs the module as
`python -m` would. Copy-on-write also shares the imported code's memory between children.

Protocol (one JSON object per line): the zygote writes {"ready": true} once its imports are
done; each request {"module", "args", "env", "cwd", "log", "exit_file",
"after_fork"} is answered with
{"pid": N} or {"error": "..."}. When a child ends, its exit code is written to exit_file.
End of input makes the zygote exit; its children keep running.

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

from disco.reaping import reaped_children

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


def _become(request: dict[str, Any]) -> None:
    """In the child: detach, take the request's environment and run the module."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()
    os.chdir(request["cwd"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    os.environ.clear()
    os.environ.update(request["env"])
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
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
        except (ValueError, OSError) as exc:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            _answer({"error": f"{type(exc).__name__}: {exc}"})
            continue
        if pid == 0:
            _become(request)
        _exit_files[pid] = request["exit_file"]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        _answer({"pid": pid})
        _reap()


if __name__ == "__main__":
    main(sys.argv[1:])
