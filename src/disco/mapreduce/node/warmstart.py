"""Warm starts: workers forked from a per-job zygote (`disco.mapreduce.node.zygote`).

Only a job home whose worker is exactly the `run-worker` script our client writes
(`exec "${DISCO_PYTHON:-python3}" -m MODULE "$@"`) is started warm: the zygote runs that
module as the script would, so the task cannot tell the difference. Any other worker, and
any zygote failure, means the normal spawn (`spawn` returns None).

A warm worker is a child of the zygote, not of the node: the zygote reports its exit code,
and `WarmProcess` offers what `WorkerSession` uses of `asyncio.subprocess.Process`.

A zygote's start (an interpreter and its imports, ~0.1 s) would be on every job's first task
on every node; so the node keeps one spare zygote of our classic worker, started before any
job asks for it, and a job's first task makes the spare that job's (it moves into the job's
home and takes its environment); the next spare starts when the node has no task left, so
that its start takes no CPU from a running job. A job whose environment
changes what an interpreter reads at start (PYTHONPATH, LD_PRELOAD, …) gets a zygote of its
own, started in it, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from disco.mapreduce.node.zygote import ADOPT_MAX

log = logging.getLogger(__name__)

# What disco.worker.Worker writes as run-worker (byte for byte), and the module it runs.
RUN_WORKER = re.compile(rb'#!/bin/sh\nexec "\$\{DISCO_PYTHON:-python3\}" -m '
                        rb'([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*) "\$@"\n')
READY_TIMEOUT = 30.0   # the zygote's imports
REPLY_TIMEOUT = 10.0   # one fork
IDLE_CLOSE = 60.0      # a job's zygote with no task for this long is stopped
MAX_MESSAGE = 4096
SPARE_MODULE = "disco.worker.classic.worker"  # what our client's Job runs
# Variables an interpreter (or the C library) reads when it starts, not later: a spare
# started without the job's values of these cannot become the job's zygote.
STARTUP_VARIABLES = ("PYTHON", "LD_", "MALLOC_", "GLIBC_TUNABLES")
STREAM_LIMIT = 2 ** 16  # as asyncio.subprocess


class ZygoteError(Exception):
    """The zygote cannot start workers; the caller spawns normally."""


def warm_module(worker: Path) -> str | None:
    """The module our client's run-worker script runs, or None for any other worker."""
    try:
        with open(worker, "rb") as f:
            script = f.read(1024)
    except OSError:
        return None
    m = RUN_WORKER.fullmatch(script)
    return m.group(1).decode() if m else None


class WarmProcess:
    """A zygote-forked worker, seen through the parts of asyncio.subprocess.Process a
    WorkerSession uses: pid, stdin, stdout, returncode, wait()."""

    def __init__(self, pid: int, stdin: asyncio.StreamWriter, stdout: asyncio.StreamReader,
                 read_transport: asyncio.BaseTransport, exited: asyncio.Future[int | None]) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self._read_transport = read_transport
        self._exited = exited

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int | None:
        code = await asyncio.shield(self._exited)
        if code is None:
            # The zygote died: nobody reports this exit; wait until the pid is gone.
            while _alive(self.pid):
                await asyncio.sleep(0.05)
        return code

    def close(self) -> None:
        """Drop the node's end of the worker's output pipe (once the worker is dead)."""
        self._read_transport.close()


def adoptable(spare_env: dict[str, str], job_env: dict[str, str]) -> bool:
    """Whether a spare zygote started with `spare_env` can become the zygote of a job whose
    workers get `job_env`: every variable read at start has the same value in both."""
    names = {k for k in spare_env.keys() | job_env.keys() if k.startswith(STARTUP_VARIABLES)}
    return all(spare_env.get(k) == job_env.get(k) for k in names)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Zygote:
    """One job's warm process and the socket to it."""

    def __init__(self, module: str, home: Path, env: dict[str, str]) -> None:
        self.module = module
        self.home = home
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None
        self.broken = False
        self.last_used = time.monotonic()
        self.live: set[int] = set()  # workers forked and not yet reported dead
        self._lock = asyncio.Lock()  # replies come in request order: one request at a time
        self._replies: deque[asyncio.Future[dict[str, Any]]] = deque()
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self, nice: int) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            python = self.env.get("DISCO_PYTHON") or sys.executable
            self.proc = await asyncio.create_subprocess_exec(
                python, "-m", "disco.mapreduce.node.zygote", str(theirs.fileno()), self.module,
                cwd=str(self.home), env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
        except OSError as exc:
            ours.close()
            raise ZygoteError(f"cannot start the zygote: {exc}") from exc
        finally:
            theirs.close()
        self.sock = ours
        ours.setblocking(False)
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, nice)  # workers inherit it
        try:
            first = json.loads(await asyncio.wait_for(loop.sock_recv(ours, MAX_MESSAGE),
                                                      READY_TIMEOUT) or b"{}")
        except (TimeoutError, OSError, ValueError) as exc:
            await self.close()
            raise ZygoteError(f"the zygote did not start: {exc!r}") from exc
        if first.get("ready") is not True:
            await self.close()
            raise ZygoteError(f"the zygote did not start: {first.get('error', first)}")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.sock is not None
        try:
            while True:
                data = await loop.sock_recv(self.sock, MAX_MESSAGE)
                if not data:
                    break
                msg = json.loads(data)
                if "exit" in msg:
                    pid = int(msg["exit"])
                    self.live.discard(pid)
                    fut = self._exits.pop(pid, None)
                    if fut is not None and not fut.done():
                        fut.set_result(int(msg["code"]))
                    continue
                if "pid" in msg:
                    # Registered before anyone awaits the reply: its exit may be the next message.
                    self.live.add(int(msg["pid"]))
                    self._exits[int(msg["pid"])] = loop.create_future()
                if self._replies:
                    fut = self._replies.popleft()
                    if not fut.done():
                        fut.set_result(msg)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("lost the zygote of %s: %r", self.home.name, exc)
        finally:
            self._broken()

    def _broken(self) -> None:
        self.broken = True
        while self._replies:
            fut = self._replies.popleft()
            if not fut.done():
                fut.set_exception(ZygoteError("the zygote is gone"))
        for fut in self._exits.values():
            if not fut.done():
                fut.set_result(None)
        self._exits.clear()

    async def _request(self, send: Callable[[socket.socket], Any]) -> dict[str, Any]:
        """Send a request (`send(sock)`, which must not block) and wait for the zygote's
        answer. One request at a time, so that answers come in the order of the requests."""
        if self.broken or self.sock is None:
            raise ZygoteError("the zygote is gone")
        sock = self.sock
        async with self._lock:
            reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            try:
                send(sock)
            except OSError as exc:
                raise ZygoteError(f"cannot ask the zygote: {exc}") from exc
            self._replies.append(reply)  # before any await: the answer may come at once
            try:
                return await asyncio.wait_for(reply, REPLY_TIMEOUT)
            except TimeoutError as exc:
                self._broken()
                raise ZygoteError("the zygote did not answer") from exc

    async def adopt(self, home: Path, env: dict[str, str]) -> None:
        """Make this (spare) zygote the zygote of the job at `home`, whose workers get `env`."""
        data = json.dumps({"adopt": {"cwd": str(home), "env": env}}).encode()
        if len(data) > ADOPT_MAX:
            raise ZygoteError("the job's environment is too big to hand to a spare zygote")
        msg = await self._request(lambda sock: sock.send(data))
        if msg.get("adopted") is not True:
            raise ZygoteError(f"the spare zygote could not move: {msg.get('error', msg)}")
        self.home, self.env = home, env
        self.last_used = time.monotonic()

    async def spawn(self) -> WarmProcess:
        if self.broken or self.sock is None:
            raise ZygoteError("the zygote is gone")
        loop = asyncio.get_running_loop()
        self.last_used = time.monotonic()
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        theirs = [in_r, out_w]  # the worker's ends, ours to close once sent (or not sent)

        def close_theirs() -> None:
            # The worker has its copies once sent; ours would keep its stdout open forever.
            while theirs:
                with contextlib.suppress(OSError):
                    os.close(theirs.pop())

        def send(sock: socket.socket) -> None:
            try:
                socket.send_fds(sock, [b'{"spawn": true}'], [in_r, out_w])
            finally:
                close_theirs()

        try:
            msg = await self._request(send)
            if "pid" not in msg:
                raise ZygoteError(f"the zygote could not fork: {msg.get('error', msg)}")
            pid = int(msg["pid"])
            exited = self._exits.get(pid)
            if exited is None:  # already reaped (or the zygote broke) before we got here
                exited = loop.create_future()
                exited.set_result(None)
            reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
            rt, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader, loop=loop), open(out_r, "rb", 0))
            out_r = -1
            wt, wp = await loop.connect_write_pipe(
                lambda: asyncio.streams.FlowControlMixin(loop=loop), open(in_w, "wb", 0))
            in_w = -1
            return WarmProcess(pid, asyncio.StreamWriter(wt, wp, None, loop), reader, rt, exited)
        except BaseException:
            close_theirs()  # not sent: cancelled waiting for its turn, or the zygote is gone
            for fd in (in_w, out_r):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            raise

    async def close(self) -> None:
        """Stop the zygote (its workers are their sessions' to kill)."""
        if self._reader is not None:
            self._reader.cancel()
        if self.sock is not None:
            self.sock.close()  # EOF: the zygote exits
        self._broken()
        proc = self.proc
        if proc is None:
            return
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            await proc.wait()


class WarmPool:
    """The zygotes of the jobs running on this node, started on a job's first task (or
    taken over from the spare, when `spare_home` is given: see the module's docstring)."""

    def __init__(self, nice: int, spare_home: Path | None = None,
                 spare_env: dict[str, str] | None = None) -> None:
        self.nice = nice
        self._zygotes: dict[str, Zygote] = {}
        self._cold: set[str] = set()  # jobs that spawn normally (not our script, or failed)
        self._locks: dict[str, asyncio.Lock] = {}
        self.spare_home = spare_home  # an empty folder: the spare's working directory
        self.spare_env = spare_env or {}
        self._spare: asyncio.Task[Zygote | None] | None = None
        self._closed = False

    def zygote(self, job: str) -> Zygote | None:
        return self._zygotes.get(job)

    def keep_spare(self) -> None:
        """Start the spare zygote in the background, unless there is one or none is wanted."""
        if self.spare_home is None or self._spare is not None or self._closed:
            return
        self._spare = asyncio.create_task(self._start_spare(self.spare_home))

    async def _start_spare(self, home: Path) -> Zygote | None:
        z = Zygote(SPARE_MODULE, home, self.spare_env)
        try:
            home.mkdir(parents=True, exist_ok=True)
            await z.start(self.nice)
        except (ZygoteError, OSError) as exc:
            # Not retried: what failed once would fail for every job, each paying for it.
            log.warning("no spare zygote (%s); each job starts its own", exc)
            self.spare_home = None
            return None
        return z

    async def _take_spare(self, home: Path, env: dict[str, str]) -> Zygote | None:
        """The spare, moved into a job's home with its environment, or None. The next spare
        is the caller's to start (`keep_spare`), when the node is idle."""
        task = self._spare
        if task is None or not adoptable(self.spare_env, env):
            return None
        # Shielded: a caller cancelled here leaves the spare starting, and still the spare.
        z = await asyncio.shield(task)
        if self._spare is not task:
            return None  # another job's first task took it meanwhile
        self._spare = None
        if z is None:
            return None
        try:
            await z.adopt(home, env)
        except ZygoteError as exc:
            log.warning("the spare zygote could not take a job (%s); starting one", exc)
            await z.close()
            return None
        return z

    async def spawn(self, job: str, worker: Path, home: Path,
                    env: dict[str, str]) -> WarmProcess | None:
        """A warm worker for a task of `job`, or None: spawn it the normal way."""
        if job in self._cold:
            return None
        try:
            async with self._locks.setdefault(job, asyncio.Lock()):
                z = self._zygotes.get(job)
                if z is None:
                    module = warm_module(worker)
                    if module is None:
                        self._cold.add(job)
                        return None
                    if module == SPARE_MODULE:
                        z = await self._take_spare(home, env)
                    if z is None:
                        z = Zygote(module, home, env)
                        await z.start(self.nice)
                    self._zygotes[job] = z
            return await z.spawn()
        except ZygoteError as exc:
            log.warning("job %s: no warm start (%s); workers are spawned", job, exc)
            self._cold.add(job)
            z = self._zygotes.pop(job, None)
            if z is not None:
                asyncio.create_task(z.close())
            return None

    async def close(self, job: str) -> None:
        self._cold.discard(job)
        self._locks.pop(job, None)
        z = self._zygotes.pop(job, None)
        if z is not None:
            await z.close()

    async def close_idle(self, busy: set[str]) -> None:
        """Stop the zygotes of jobs with no task here for IDLE_CLOSE seconds."""
        now = time.monotonic()
        for job, z in list(self._zygotes.items()):
            if job not in busy and not z.live and now - z.last_used > IDLE_CLOSE:
                await self.close(job)

    async def close_all(self) -> None:
        self._closed = True
        for job in list(self._zygotes):
            await self.close(job)
        task, self._spare = self._spare, None
        if task is not None:
            z = await task
            if z is not None:
                await z.close()
