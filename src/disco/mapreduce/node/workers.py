"""Worker processes on a node, and the pool that keeps finished ones for the next task.

A `WorkerProcess` is one running worker: its process (spawned, or forked from the job's
zygote by `warmstart`), and a reader that turns everything it writes into a queue of
("frame", Frame) items ended by one of ("eof", b""), ("died", last words) or ("stuck", last
words). Its whole process group is killed when it is done with.

A worker that offered to stay (`"reuse": true` in WORKER, as our Python workers do) and
ended its task with DONE is not killed: the node answers DONE with `OK "next"` and parks it
in the `WorkerPool` under its job. It then asks for its next task (TASK), which the next
session of that job answers. Parked workers are killed when their job is killed or purged,
when they have waited IDLE_CLOSE seconds, or when more than `max_idle` are parked.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import time
from collections import OrderedDict
from pathlib import Path

import psutil

from disco.mapreduce.node.warmstart import WarmPool, WarmProcess
from disco.mapreduce.node.wire import FrameParser

log = logging.getLogger(__name__)

LAST_WORDS_LIMIT = 100 * 1024
READ_CHUNK = 1 << 16
IDLE_CLOSE = 10.0

Item = tuple[str, object]


class SpawnError(Exception):
    """The worker could not be started; `fatal` when no other node would do better."""

    def __init__(self, message: str, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


class WorkerProcess:
    def __init__(self, job: str, proc: asyncio.subprocess.Process | WarmProcess,
                 message_timeout: float, last_words_wait: float) -> None:
        self.job = job
        self.proc = proc
        self.pid = proc.pid
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.reader_done = asyncio.Event()
        self.reusable = False        # it said WORKER with "reuse": true
        self.tasks_run = 0
        self.parked_at = 0.0
        self._message_timeout = message_timeout
        self._last_words_wait = last_words_wait
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, job: str, worker: Path, home: Path, env: dict[str, str],
                    warm: WarmPool | None, nice: int, message_timeout: float,
                    last_words_wait: float) -> WorkerProcess:
        proc: asyncio.subprocess.Process | WarmProcess | None = None
        if warm is not None:
            # Forked from the job's zygote: the same worker, without its ~0.3 s of imports.
            try:
                proc = await warm.spawn(job, worker, home, env)
            except Exception:  # noqa: BLE001 - any failure of the warm path: spawn as ever
                log.exception("warm start of a worker of %s failed", job)
        try:
            proc = proc or await asyncio.create_subprocess_exec(
                str(worker), cwd=str(home), env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except (FileNotFoundError, PermissionError) as exc:
            raise SpawnError(f"cannot run the job's worker {worker.name!r}: {exc}", True) from exc
        except OSError as exc:
            if exc.errno == errno.ENOEXEC:
                raise SpawnError(f"the job's worker {worker.name!r} is not an executable: "
                                 f"{exc}", True) from exc
            raise SpawnError(f"cannot start the worker {worker.name}: {exc}", False) from exc
        try:
            os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
        except OSError:
            pass  # not worth failing a task over
        return cls(job, proc, message_timeout, last_words_wait)

    @property
    def alive(self) -> bool:
        return not self.reader_done.is_set()

    def send(self, data: bytes) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(data)
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            pass  # the worker is gone; the reader reports how

    async def drain(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass

    async def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        parser = FrameParser()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(
                        out.read(READ_CHUNK), self._message_timeout if parser.partial else None)
                except TimeoutError:
                    self.queue.put_nowait(("stuck", bytes(parser.buffer)))
                    return
                if not chunk:
                    self.queue.put_nowait(("died", bytes(parser.buffer)) if parser.partial
                                          else ("eof", b""))
                    return
                for frame in parser.feed(chunk):
                    self.queue.put_nowait(("frame", frame))
                if parser.error is not None:
                    self.queue.put_nowait(("garbage", parser.error))
                    self.queue.put_nowait(("died", await self._last_words(parser.buffer)))
                    return
        finally:
            self.reader_done.set()

    async def _last_words(self, start: bytearray) -> bytes:
        """After garbage, collect what else the worker says (until it stops, or enough)."""
        out = self.proc.stdout
        assert out is not None
        words = bytearray(start)
        while len(words) < LAST_WORDS_LIMIT:
            wait = self._last_words_wait if self.proc.returncode is None else 0.5
            try:
                chunk = await asyncio.wait_for(out.read(READ_CHUNK), wait)
            except TimeoutError:
                break
            if not chunk:
                break
            words += chunk
        if len(words) > LAST_WORDS_LIMIT:
            words = words[:LAST_WORDS_LIMIT - 3] + b"..."
        return bytes(words)

    async def exit_code(self) -> int | None:
        try:
            return await asyncio.wait_for(self.proc.wait(), 2)
        except TimeoutError:
            return None

    async def kill(self) -> None:
        """Kill the worker's process group, and any descendant that left it."""
        self._reader.cancel()
        proc = self.proc
        try:
            strays = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        except psutil.Error:
            strays = []
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            log.warning("worker %s of %s did not die", proc.pid, self.job)
        if proc.stdin is not None:
            proc.stdin.close()
        if isinstance(proc, WarmProcess):
            proc.close()  # asyncio closes a subprocess's pipes itself; ours are by hand


class WorkerPool:
    """Finished workers waiting for another task of their job, oldest first."""

    def __init__(self, max_idle: int) -> None:
        self.max_idle = max_idle
        self._idle: OrderedDict[int, WorkerProcess] = OrderedDict()

    def park(self, wp: WorkerProcess) -> None:
        wp.parked_at = time.monotonic()
        self._idle[wp.pid] = wp
        while len(self._idle) > max(0, self.max_idle):
            _pid, oldest = self._idle.popitem(last=False)
            asyncio.create_task(oldest.kill())

    def take(self, job: str) -> WorkerProcess | None:
        """A parked worker of `job` that is still alive (the most recently parked)."""
        for pid in reversed(list(self._idle)):
            wp = self._idle[pid]
            if wp.job != job:
                continue
            del self._idle[pid]
            if wp.alive:
                return wp
            asyncio.create_task(wp.kill())
        return None

    async def close(self, job: str | None = None, older_than: float | None = None) -> None:
        """Kill parked workers: those of `job` (every job when None), or only those parked
        for more than `older_than` seconds."""
        now = time.monotonic()
        doomed = [wp for wp in self._idle.values()
                  if (job is None or wp.job == job)
                  and (older_than is None or now - wp.parked_at > older_than)]
        for wp in doomed:
            del self._idle[wp.pid]
        await asyncio.gather(*(wp.kill() for wp in doomed), return_exceptions=True)

    def jobs(self) -> set[str]:
        return {wp.job for wp in self._idle.values()}
