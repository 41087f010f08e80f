"""Where units run: a slot is a long-lived `run_python.py` worker, as a child process or inside a
container, plus per-unit container runs for image projects. A unit past its timeout, or one the
server says is `gone`, is stopped by killing its worker (a new one starts for the next unit):
nothing else stops arbitrary Python reliably."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from disco.taskfarm.client import run_python

RUNNER = Path(run_python.__file__).resolve()
IN_IMAGE_CODE = "/farm/code"
IN_IMAGE_RUNNER = "/farm/run_python.py"


@dataclass
class Job:
    kind: str  # "python" | "container"
    data: bytes
    code_path: Path | None = None  # python: the cached pickle
    sha256: str = ""
    image: str = ""  # container: the project's image and command
    command: tuple[str, ...] = ()


@dataclass
class Outcome:
    ok: bool
    output: bytes = b""
    error: str = ""
    cpu_s: float = 0.0


@dataclass
class Limits:
    memory_mb: int = 0  # 0: no limit given
    cpus: float = 0.0


class Stopped(Exception):
    """The unit was stopped on purpose (gone, or the client is shutting down)."""


def find_engine(forced: str = "") -> str:
    """podman or docker, whichever is present (podman first: it needs no daemon); `forced` must exist."""
    for name in ([forced] if forced else ["podman", "docker"]):
        if shutil.which(name):
            return name
    raise RuntimeError(f"no container engine found ({forced or 'podman or docker'} not on PATH)")


def engine_flags(engine: str, limits: Limits) -> list[str]:
    flags = ["--network", "none"]  # units get their input on stdin: they need no network at all
    if limits.memory_mb:
        flags += ["--memory", f"{limits.memory_mb}m"]
    if limits.cpus:
        flags += ["--cpus", str(limits.cpus)]
    if engine == "podman":
        from disco.testbed.podman import runtime_flags  # this machine's runc and ulimit needs

        flags += runtime_flags()
    return flags


def image_args(image: str) -> list[str]:
    """A directory is a root filesystem (the project's images, as the test hosts use them; podman
    only), anything else an image name."""
    return ["--rootfs", f"{image}:O"] if image.startswith("/") else [image]


class Slot:
    """One unit at a time. `python_argv` starts the worker (a process, or a container running it)."""

    def __init__(self, python_argv: list[str], code_dir: Path, in_image: bool, engine: str = "",
                 limits: Limits | None = None) -> None:
        self.python_argv = python_argv
        self.code_dir = code_dir
        self.in_image = in_image
        self.engine = engine
        self.limits = limits or Limits()
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.stopped = False
        self.container_name = ""  # a container slot's worker: removed by name when killed

    def run(self, job: Job, timeout: float) -> Outcome:
        self.stopped = False
        started = time.monotonic()
        try:
            if job.kind == "python":
                out = self._python(job, timeout)
            else:
                out = self._container(job, timeout)
        except Stopped:
            raise
        except TimeoutError:
            self.kill()
            return Outcome(False, error=f"timed out after {timeout:.0f} s")
        out.cpu_s = time.monotonic() - started
        return out

    def _worker(self) -> subprocess.Popen[bytes]:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = subprocess.Popen(self.python_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.DEVNULL, start_new_session=True)
            return self.proc

    def _python(self, job: Job, timeout: float) -> Outcome:
        assert job.code_path is not None
        proc = self._worker()
        assert proc.stdin is not None and proc.stdout is not None
        path = f"{IN_IMAGE_CODE}/{job.code_path.name}" if self.in_image else str(job.code_path)
        try:
            run_python.write_frame(proc.stdin, {"code": path, "sha256": job.sha256}, job.data)
        except (BrokenPipeError, OSError):
            self._check_stopped()
            return Outcome(False, error="the worker died")
        deadline = time.monotonic() + timeout
        fd = proc.stdout.fileno()
        while True:  # wait for the answer line, the timeout, or a stop
            ready, _, _ = select.select([fd], [], [], min(0.5, max(0.0, deadline - time.monotonic())))
            if ready:
                break
            self._check_stopped()
            if time.monotonic() >= deadline:
                raise TimeoutError
        frame = run_python.read_frame(proc.stdout)
        if frame is None:
            self._check_stopped()
            self.kill()
            return Outcome(False, error=f"the worker died (exit {proc.wait()})")
        header, output = frame
        return Outcome(True, output) if header["ok"] else Outcome(False, error=header["error"])

    def _container(self, job: Job, timeout: float) -> Outcome:
        if not self.engine:
            return Outcome(False, error="a container unit, and no container engine on this client")
        name = f"disco-farm-{uuid.uuid4().hex[:12]}"
        argv = [self.engine, "run", "--rm", "-i", "--name", name, *engine_flags(self.engine, self.limits),
                *image_args(job.image), *job.command]
        with self.lock:
            self.container_name = name
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
            proc = self.proc
        try:
            out, err = proc.communicate(job.data, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError from None
        finally:
            with self.lock:
                self.proc = None
                self.container_name = ""
        self._check_stopped()
        if proc.returncode != 0:
            return Outcome(False, error=f"exit {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
        return Outcome(True, out)

    def _check_stopped(self) -> None:
        if self.stopped:
            raise Stopped

    def stop(self) -> None:
        """From another thread: stop the unit running now (its worker is killed)."""
        self.stopped = True
        self.kill()

    def kill(self) -> None:
        with self.lock:
            proc, self.proc = self.proc, None
            name = self.container_name
        if name:  # killing the engine's client may leave its container running
            subprocess.run([self.engine, "rm", "-f", name], capture_output=True, timeout=60)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, 9)  # its own session: the worker and anything it started
            except ProcessLookupError:
                pass
            proc.wait()


def process_slot(code_dir: Path, engine: str = "", limits: Limits | None = None) -> Slot:
    return Slot([sys.executable, str(RUNNER)], code_dir, in_image=False, engine=engine, limits=limits)


def container_slot(code_dir: Path, engine: str, image: str, python: str, limits: Limits) -> Slot:
    """The worker inside the client image: the cached code and the runner mounted read-only."""
    name = f"disco-farm-slot-{uuid.uuid4().hex[:12]}"
    argv = [engine, "run", "--rm", "-i", "--name", name, *engine_flags(engine, limits),
            "-v", f"{code_dir}:{IN_IMAGE_CODE}:ro", "-v", f"{RUNNER}:{IN_IMAGE_RUNNER}:ro",
            *image_args(image), python, IN_IMAGE_RUNNER]
    slot = Slot(argv, code_dir, in_image=True, engine=engine, limits=limits)
    slot.container_name = name
    return slot

