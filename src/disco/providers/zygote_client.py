"""The service manager's end of a zygote (zygote.py): start one, ask it for children."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from disco.providers.base import Launch


def runs_in_zygote(launch: Launch) -> bool:
    """Only `<this python> -m module …` can run in a warm zygote: same interpreter, module entry."""
    argv = launch.argv
    return bool(launch.preload) and len(argv) >= 3 and argv[1] == "-m" and \
        os.path.realpath(argv[0]) == os.path.realpath(sys.executable)


class Zygote:
    """One `python -m disco.providers.zygote` process, talked to over its stdin/stdout."""

    def __init__(self, modules: tuple[str, ...], log_dir: Path, env: dict[str, str]) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        name = "+".join(modules)[:100] or "exec"
        with open(log_dir / f"{name}.log", "ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "disco.providers.zygote", *modules], env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, start_new_session=True)
        self._lock = threading.Lock()
        self._ready = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("zygote exited")
        return json.loads(line)

    def spawn(self, request: dict) -> int:
        with self._lock:
            if not self._ready:  # the first request waits for the imports to finish
                self._ready = bool(self._read().get("ready"))
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            reply = self._read()
        if "pid" not in reply:
            raise RuntimeError(reply.get("error", "no pid"))
        return int(reply["pid"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
