"""What each slot uses, sent with the heartbeat: CPU (% of one core since the last measurement)
and resident memory of the slot's processes. A process slot: its worker and the worker's
children. A container (a container slot's worker, or a container project's unit): the
container's own processes, found from its main process id (`podman inspect`; the engine's
client process that started it is not their parent), then measured the same way with psutil."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import psutil

from disco.taskfarm.client.slots import Slot

INSPECT_TIMEOUT_S = 5.0


class SlotMeter:
    def __init__(self) -> None:
        # slot index -> (the process measured, its tree's CPU seconds then, the wall clock then)
        self._last: dict[int, tuple[int, float, float]] = {}
        self._container_pids: dict[str, int] = {}  # container name -> its main process id

    def measure(self, index: int, slot: Slot, instance_id: int | None) -> dict[str, Any]:
        kind = "container" if slot.in_image else "process"
        out: dict[str, Any] = {"slot": index, "kind": kind, "busy": instance_id is not None,
                               "instance_id": instance_id, "cpu_percent": None, "memory_mb": None}
        pid = self._pid(slot)
        if pid is None:
            self._last.pop(index, None)
            return out
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
            cpu_s, rss = 0.0, 0
            for proc in tree:
                try:
                    times = proc.cpu_times()
                    cpu_s += times.user + times.system
                    rss += proc.memory_info().rss
                except psutil.Error:  # gone between the listing and the reading
                    continue
            started = root.create_time()
        except psutil.Error:
            self._last.pop(index, None)
            return out
        wall = time.time()
        before = self._last.get(index)
        if before is not None and before[0] == pid:
            spent, span = cpu_s - before[1], wall - before[2]
        else:  # a new process: its whole life so far
            spent, span = cpu_s, wall - started
        self._last[index] = (pid, cpu_s, wall)
        out["cpu_percent"] = round(max(0.0, spent) * 100.0 / span, 1) if span > 0 else 0.0
        out["memory_mb"] = round(rss / 2 ** 20, 1)
        return out

    def _pid(self, slot: Slot) -> int | None:
        with slot.lock:
            proc, name = slot.proc, slot.container_name
        if proc is None or proc.poll() is not None:
            return None
        if name and slot.engine:
            return self._container_pid(slot.engine, name)
        return proc.pid

    def _container_pid(self, engine: str, name: str) -> int | None:
        pid = self._container_pids.get(name)
        if pid is not None and psutil.pid_exists(pid):
            return pid
        try:
            found = subprocess.run([engine, "inspect", "--format", "{{.State.Pid}}", name], capture_output=True,
                                   text=True, timeout=INSPECT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            return None
        text = found.stdout.strip()
        if found.returncode != 0 or not text.isdigit() or int(text) <= 0:
            return None  # not started yet, or already gone
        if len(self._container_pids) > 64:  # names are per container: forget old ones
            self._container_pids.clear()
        self._container_pids[name] = int(text)
        return int(text)
