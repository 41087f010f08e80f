"""What a client measures of its slots for the heartbeat (disco.taskfarm.client.stats): a real
worker process spinning on the CPU, and a real podman container doing the same (its processes
found through `podman inspect`, not through the engine's client process), and a slot with no
process at all."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from disco.taskfarm.client.slots import Limits, Slot, engine_flags
from disco.taskfarm.client.stats import SlotMeter

SPIN = "while :; do :; done"


def measured_twice(slot: Slot, instance_id: int | None) -> dict[str, object]:
    meter = SlotMeter()
    meter.measure(0, slot, instance_id)
    time.sleep(1.5)
    return meter.measure(0, slot, instance_id)


def test_a_process_slot_is_measured(tmp_path: Path) -> None:
    slot = Slot([sys.executable, "-c", "while True: pass"], tmp_path, in_image=False)
    slot._worker()  # the slot's worker, started as a unit would start it
    try:
        stats = measured_twice(slot, 7)
    finally:
        slot.kill()
    assert stats["kind"] == "process" and stats["busy"] is True and stats["instance_id"] == 7
    assert stats["cpu_percent"] > 5, stats  # spinning: far from idle, even on two cores other tests share
    assert stats["memory_mb"] > 1, stats


def test_a_slot_without_a_process_has_no_numbers(tmp_path: Path) -> None:
    slot = Slot([sys.executable, "-c", "pass"], tmp_path, in_image=False)
    assert SlotMeter().measure(3, slot, None) == {"slot": 3, "kind": "process", "busy": False,
                                                  "instance_id": None, "cpu_percent": None, "memory_mb": None}


def _tiny_rootfs(folder: Path) -> Path:
    """A root filesystem of /bin/sh and the libraries it loads: enough to spin in a container."""
    shell = Path("/bin/dash") if Path("/bin/dash").exists() else Path("/bin/sh")
    (folder / "bin").mkdir(parents=True)
    shutil.copy(shell, folder / "bin" / "sh")
    libs = subprocess.run(["ldd", str(shell)], capture_output=True, text=True, check=True).stdout
    for part in libs.split():
        if part.startswith("/"):
            target = folder / part.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(part).resolve(), target)
    return folder


@pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman")
def test_a_container_slot_is_measured_inside_its_container(tmp_path: Path) -> None:
    rootfs = _tiny_rootfs(tmp_path / "rootfs")
    name = f"disco-farm-stats-{uuid.uuid4().hex[:10]}"
    argv = ["podman", "run", "--rm", "-i", "--name", name, *engine_flags("podman", Limits()),
            "--rootfs", f"{rootfs}:O", "/bin/sh", "-c", SPIN]
    slot = Slot(argv, tmp_path, in_image=True, engine="podman")
    slot.container_name = name
    slot._worker()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the container runs (its main process is known)
            found = subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", name],
                                   capture_output=True, text=True)
            if found.returncode == 0 and found.stdout.strip() not in ("", "0"):
                break
            time.sleep(0.2)
        stats = measured_twice(slot, None)
    finally:
        slot.kill()  # the container removed by its name
    assert stats["kind"] == "container" and stats["busy"] is False
    # The engine's client process sleeps; the spinning is inside the container.
    assert stats["cpu_percent"] > 5, stats
    assert stats["memory_mb"] is not None and stats["memory_mb"] > 0, stats
    gone = subprocess.run(["podman", "container", "exists", name])
    assert gone.returncode == 1
