"""One task on a node: the worker process and the worker protocol (1.1) spoken with it.

The worker runs as `<jobhome>/<jobdict.worker>` in its job home, in a session (and process
group) of its own, niced, with the job's environment. Its stdout and stderr come through one
pipe: everything on it must be protocol messages. Replies go to its stdin.
A job made by our client (its `run-worker` is exactly the script the client writes) has its
workers forked, already imported, from the job's zygote (`warmstart`); the worker sees the same
session, directory, environment and pipes, and everything below is the same for both.

How a task ends:
- DONE: the task is done, with the outputs its OUTPUT messages declared;
- ERROR, or a worker that exits, sends garbage, leaves a message half-sent for too long or does
  not say WORKER in time: the task failed and the master retries it ("Worker died. Last
  words: ..." carries what the worker printed); if inputs could not be read, the master is told
  which, so it can make them again;
- FATAL, a malformed message, or a worker flooding MSG: the job fails.
Whatever the end, the worker's whole process group is killed.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from disco.mapreduce.node.config import NodeConfig
from disco.mapreduce.node.events import EventSender
from disco.mapreduce.node.inputs import TaskInputs
from disco.mapreduce.node.outputs import OutputError, ResultsIndex
from disco.mapreduce.node.throttle import MsgThrottle
from disco.mapreduce.node.warmstart import WarmPool, WarmProcess
from disco.mapreduce.node.wire import Frame, FrameParser, encode

log = logging.getLogger(__name__)

LAST_WORDS_LIMIT = 100 * 1024
READ_CHUNK = 1 << 16
# Variables of the node's own environment a worker also gets (beyond DISCO_*/DDFS_* ones).
INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR", "TZ")

MoreInputs = Callable[[int], Awaitable[dict[str, Any] | None]]


@dataclass
class Outcome:
    status: str  # done | error | input_error | fatal
    message: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    failed_inputs: list[list[Any]] = field(default_factory=list)


def worker_env(cfg: NodeConfig, jobenvs: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("DISCO_", "DDFS_"))})
    env.update(cfg.worker_settings())
    env.update(jobenvs)
    env["DISCO_PYTHON"] = sys.executable
    return env


class WorkerSession:
    def __init__(self, cfg: NodeConfig, assignment: dict[str, Any], home: Path,
                 jobenvs: dict[str, str], events: EventSender, more_inputs: MoreInputs,
                 warm: WarmPool | None = None) -> None:
        self.cfg = cfg
        self.a = assignment
        self.job: str = assignment["job"]
        self.taskid: int = int(assignment["taskid"])
        self.stage: str = assignment["stage"]
        self.home = home
        self.jobenvs = jobenvs
        self.events = events
        self.more_inputs = more_inputs
        self.warm = warm
        self.inputs = TaskInputs(assignment["inputs"], bool(assignment["inputs_done"]))
        self.index = ResultsIndex(home, cfg.host, self.job, self.stage, self.taskid)
        self.throttle = MsgThrottle()
        self.proc: asyncio.subprocess.Process | WarmProcess | None = None
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._reader_done = asyncio.Event()
        self._said_worker = False
        self._handlers: dict[str, Callable[[Any], Awaitable[Outcome | None]]] = {
            "WORKER": self._on_worker, "TASK": self._on_task, "INPUT": self._on_input,
            "INPUT_ERR": self._on_input_err, "MSG": self._on_msg, "OUTPUT": self._on_output,
            "PING": self._on_ping, "ERROR": self._on_error, "FATAL": self._on_fatal,
            "DONE": self._on_done,
        }

    def event(self, kind: str, msg: str) -> None:
        self.events.add(self.job, f"{kind}: [{self.stage}:{self.taskid}] {msg}")

    # ------------------------------------------------------------------ process

    async def run(self) -> Outcome:
        worker = self.home / self.a["worker"]
        env = worker_env(self.cfg, self.jobenvs)
        if self.warm is not None:
            # Forked from the job's zygote: the same worker, without its ~0.3 s of imports.
            try:
                self.proc = await self.warm.spawn(self.job, worker, self.home, env)
            except Exception:  # noqa: BLE001 - any failure of the warm path: spawn as ever
                log.exception("warm start of %s:%s failed", self.job, self.taskid)
        try:
            self.proc = self.proc or await asyncio.create_subprocess_exec(
                str(worker), cwd=str(self.home), env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except (FileNotFoundError, PermissionError) as exc:
            # The job's worker is missing or cannot run: no retry anywhere would do better.
            return Outcome("fatal", f"cannot run the job's worker {self.a['worker']!r}: {exc}")
        except OSError as exc:
            if exc.errno == errno.ENOEXEC:
                return Outcome("fatal", f"the job's worker {self.a['worker']!r} is not an "
                                        f"executable: {exc}")
            return self._failed(f"cannot start the worker {self.a['worker']}: {exc}")
        try:
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, self.cfg.nice)
        except OSError:
            pass  # not worth failing a task over
        reader = asyncio.create_task(self._read())
        try:
            return await self._converse()
        finally:
            reader.cancel()
            self.index.abandon()
            await self._kill()

    async def _kill(self) -> None:
        """Kill the worker's process group, and any descendant that left it."""
        proc = self.proc
        if proc is None:
            return
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

    async def _read(self) -> None:
        """Parse the worker's output into the queue: ("frame", Frame), then one of ("eof", b""),
        ("died", last words) or ("stuck", last words)."""
        assert self.proc is not None and self.proc.stdout is not None
        out = self.proc.stdout
        parser = FrameParser()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(
                        out.read(READ_CHUNK), self.cfg.message_timeout if parser.partial else None)
                except TimeoutError:
                    await self._queue.put(("stuck", bytes(parser.buffer)))
                    return
                if not chunk:
                    await self._queue.put(("died", bytes(parser.buffer)) if parser.partial
                                          else ("eof", b""))
                    return
                for frame in parser.feed(chunk):
                    await self._queue.put(("frame", frame))
                if parser.error is not None:
                    self.event("WARNING", f"cannot parse the worker's output: {parser.error}")
                    await self._queue.put(("died", await self._last_words(parser.buffer)))
                    return
        finally:
            self._reader_done.set()

    async def _last_words(self, start: bytearray) -> bytes:
        """After garbage, collect what else the worker says (until it stops, or enough)."""
        assert self.proc is not None and self.proc.stdout is not None
        words = bytearray(start)
        while len(words) < LAST_WORDS_LIMIT:
            wait = self.cfg.last_words_wait if self.proc.returncode is None else 0.5
            try:
                chunk = await asyncio.wait_for(self.proc.stdout.read(READ_CHUNK), wait)
            except TimeoutError:
                break
            if not chunk:
                break
            words += chunk
        if len(words) > LAST_WORDS_LIMIT:
            words = words[:LAST_WORDS_LIMIT - 3] + b"..."
        return bytes(words)

    async def _send(self, name: str, payload: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(encode(name, payload))
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the worker is gone; the reader reports how

    async def _exit_code(self) -> int | None:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), 2)
        except TimeoutError:
            return None

    # ------------------------------------------------------------------ conversation

    def _failed(self, message: str) -> Outcome:
        """A retryable failure; an input the worker could not read makes it an input error."""
        if self.inputs.failed:
            return Outcome("input_error", message, failed_inputs=self.inputs.failures())
        return Outcome("error", message)

    async def _converse(self) -> Outcome:
        deadline = time.monotonic() + self.cfg.worker_start_timeout
        while True:
            timeout = None if self._said_worker else max(0.0, deadline - time.monotonic())
            try:
                kind, value = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                return self._failed(f"Worker did not announce itself (WORKER) within "
                                    f"{self.cfg.worker_start_timeout:g} s; killed")
            if kind == "frame":
                outcome = await self._handle(value)
                if outcome is not None:
                    return outcome
            elif kind == "eof":
                code = await self._exit_code()
                return self._failed(f"Worker died without output (exit code {code})")
            elif kind == "stuck":
                return self._failed("Worker left a message half-sent for "
                                    f"{self.cfg.message_timeout:g} s. Worker died. Last words:\n"
                                    + value.decode("utf-8", "replace"))
            else:  # died
                return self._failed("Worker died. Last words:\n" + value.decode("utf-8", "replace"))

    async def _handle(self, frame: Frame) -> Outcome | None:
        handler = self._handlers.get(frame.name)
        if handler is None:
            return Outcome("fatal", f"Unknown message {frame.name!r} from the worker")
        try:
            payload = json.loads(frame.payload)
        except ValueError:
            return Outcome("fatal", f"The worker's {frame.name} message has a payload that is "
                                    f"not JSON: {frame.payload[:500]!r}")
        return await handler(payload)

    @staticmethod
    def _invalid(name: str, payload: Any) -> Outcome:
        return Outcome("fatal", f"Invalid {name} message from the worker: {str(payload)[:500]}")

    async def _on_worker(self, p: Any) -> Outcome | None:
        if not isinstance(p, dict) or not isinstance(p.get("pid"), int):
            return self._invalid("WORKER", p)
        if p.get("version") != "1.1":
            return Outcome("fatal", f"The worker speaks protocol version {p.get('version')!r}; "
                                    "this node speaks 1.1")
        self._said_worker = True
        await self._send("OK", "ok")
        return None

    async def _on_task(self, p: Any) -> Outcome | None:
        await self._send("TASK", {
            "taskid": self.taskid, "master": self.cfg.master, "disco_port": self.cfg.port,
            "put_port": self.cfg.put_port, "ddfs_data": str(self.cfg.ddfs),
            "disco_data": str(self.cfg.data), "stage": self.stage,
            "grouping": self.a["grouping"], "group": self.a["group"],
            "jobfile": str(self.home / "jobfile"), "jobname": self.job, "host": self.cfg.host,
        })
        return None

    async def _on_input(self, p: Any) -> Outcome | None:
        include = exclude = None
        if p != "":
            if (not isinstance(p, list) or len(p) != 2 or p[0] not in ("include", "exclude")
                    or not isinstance(p[1], list) or not all(isinstance(i, int) for i in p[1])):
                return self._invalid("INPUT", p)
            include, exclude = (p[1], None) if p[0] == "include" else (None, p[1])
        while True:
            entries = self.inputs.listing(include, exclude)
            if entries or self.inputs.done:
                break
            # A concurrent stage's task: no reply until there is something to say.
            if not await self._wait_for_inputs():
                return None  # the worker is gone; the reader says how it ended
        await self._send("INPUT", ["done" if self.inputs.done else "more", entries])
        return None

    async def _wait_for_inputs(self) -> bool:
        fetch = asyncio.ensure_future(self.more_inputs(self.inputs.known))
        gone = asyncio.ensure_future(self._reader_done.wait())
        try:
            await asyncio.wait({fetch, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not fetch.done():
            fetch.cancel()
            return False
        reply = fetch.result()
        if reply is None:
            await asyncio.sleep(1)  # the master was not reachable; ask again
            return True
        if reply.get("status") == "gone":
            return False
        self.inputs.add(reply.get("inputs", []))
        self.inputs.done = reply.get("status") == "done"
        return True

    async def _on_input_err(self, p: Any) -> Outcome | None:
        if (not isinstance(p, list) or len(p) != 2 or not isinstance(p[0], int)
                or not isinstance(p[1], list) or not all(isinstance(r, int) for r in p[1])):
            return self._invalid("INPUT_ERR", p)
        left = self.inputs.report_failure(p[0], p[1])
        if left:
            await self._send("RETRY", left)
        else:
            await self._send("FAIL", "")
        return None

    async def _on_msg(self, p: Any) -> Outcome | None:
        self.event("MSG", p if isinstance(p, str) else json.dumps(p))
        delay = self.throttle.check(time.monotonic())
        if delay is None:
            return Outcome("fatal", "Worker sent more than 15 messages in a second; "
                                    "it does not wait for replies")
        if delay:
            await asyncio.sleep(delay)
        await self._send("OK", "ok")
        return None

    async def _on_output(self, p: Any) -> Outcome | None:
        if not isinstance(p, list) or len(p) not in (2, 3) or not isinstance(p[1], str):
            return self._invalid("OUTPUT", p)
        try:
            label = int(p[0])
            size = int(p[2]) if len(p) == 3 else 0
        except (TypeError, ValueError):
            return self._invalid("OUTPUT", p)
        try:
            self.index.add(label, p[1], size)
        except (OutputError, OSError) as exc:
            return self._failed(str(exc))
        await self._send("OK", "ok")
        return None

    async def _on_ping(self, p: Any) -> Outcome | None:
        await self._send("OK", "pong")
        return None

    async def _on_error(self, p: Any) -> Outcome | None:
        return self._failed(p if isinstance(p, str) else json.dumps(p))

    async def _on_fatal(self, p: Any) -> Outcome | None:
        return Outcome("fatal", p if isinstance(p, str) else json.dumps(p))

    async def _on_done(self, p: Any) -> Outcome | None:
        try:
            outputs = await asyncio.to_thread(self.index.close)
        except OSError as exc:
            return self._failed(f"cannot write the task's results index: {exc}")
        return Outcome("done", outputs=outputs)
