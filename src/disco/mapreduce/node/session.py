"""One task on a node: the worker protocol (1.1) spoken with its worker process.

The worker runs as `<jobhome>/<jobdict.worker>` in its job home, in a session (and process
group) of its own, niced, with the job's environment. Its stdout and stderr come through one
pipe: everything on it must be protocol messages. Replies go to its stdin.
A job made by our client (its `run-worker` is exactly the script the client writes) has its
workers forked, already imported, from the job's zygote (`warmstart`); and a worker that
offered to stay is kept after DONE for the job's next task on this node (`workers`).

How a task ends:
- DONE: the task is done, with the outputs its OUTPUT messages declared;
- ERROR, or a worker that exits, sends garbage, leaves a message half-sent for too long or does
  not say WORKER in time: the task failed and the master retries it ("Worker died. Last
  words: ..." carries what the worker printed); if inputs could not be read, the master is told
  which, so it can make them again;
- FATAL, a malformed message, or a worker flooding MSG: the job fails.
Whatever the end, the worker's whole process group is killed, unless it is parked for reuse.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disco.mapreduce.auth import TOKEN_ENV
from disco.mapreduce.node.config import NodeConfig
from disco.mapreduce.node.events import EventSender
from disco.mapreduce.node.inputs import TaskInputs
from disco.mapreduce.node.outputs import OutputError, ResultsIndex
from disco.mapreduce.node.throttle import FATAL_COUNT, MsgThrottle
from disco.mapreduce.node.warmstart import WarmPool
from disco.mapreduce.node.wire import Frame, encode
from disco.mapreduce.node.workers import SpawnError, WorkerPool, WorkerProcess

log = logging.getLogger(__name__)

# Variables of the node's own environment a worker also gets (beyond DISCO_*/DDFS_* ones).
# PYTHONPATH too: a node run from a source tree (PYTHONPATH=…/src) gives its workers the same
# disco it runs itself, not whatever copy the interpreter would find on its own.
INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR", "TZ",
                 "PYTHONPATH")

MoreInputs = Callable[[int], Awaitable[dict[str, Any] | None]]


@dataclass
class Outcome:
    status: str  # done | error | input_error | fatal
    message: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    failed_inputs: list[list[Any]] = field(default_factory=list)
    seconds: float = 0.0  # from the worker's TASK to its last message


def worker_env(cfg: NodeConfig, jobenvs: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("DISCO_", "DDFS_"))})
    env.update(cfg.worker_settings())
    env.update(jobenvs)
    # The node's token, whatever the job's environment says (a job cannot lend one either).
    env.pop(TOKEN_ENV, None)
    if cfg.token is not None:
        env[TOKEN_ENV] = cfg.token
    env["DISCO_PYTHON"] = sys.executable
    return env


class _ParkedWorkerGone(Exception):
    """A parked worker ended before asking for its task: start a new one instead."""


class WorkerSession:
    def __init__(self, cfg: NodeConfig, assignment: dict[str, Any], home: Path,
                 jobenvs: dict[str, str], events: EventSender, more_inputs: MoreInputs,
                 warm: WarmPool | None = None, pool: WorkerPool | None = None) -> None:
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
        self.pool = pool
        self.inputs = TaskInputs(assignment["inputs"], bool(assignment["inputs_done"]), cfg.host)
        # Whether the outputs are the job's results (a master that does not say: they are).
        self.final = bool(assignment.get("final", True))
        self.index = ResultsIndex(home, cfg.host, self.job, self.stage, self.taskid,
                                  sync=self.final)
        self.throttle = MsgThrottle()
        self.wp: WorkerProcess | None = None
        self._said_worker = False
        self._got_task = False
        self._started = 0.0
        self._keep = False  # the worker is parked for the next task, not killed
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
        while True:
            parked = self.pool.take(self.job) if self.pool is not None else None
            if parked is None:
                break
            self.wp, self._said_worker = parked, True
            try:
                return await self._run_worker()
            except _ParkedWorkerGone:
                self.wp, self._said_worker = None, False
        try:
            self.wp = await WorkerProcess.start(
                self.job, self.home / self.a["worker"], self.home,
                worker_env(self.cfg, self.jobenvs), self.warm, self.cfg.nice,
                self.cfg.message_timeout, self.cfg.last_words_wait)
        except SpawnError as exc:
            # A worker that is missing or cannot run: no retry anywhere would do better.
            return Outcome("fatal", str(exc)) if exc.fatal else self._failed(str(exc))
        return await self._run_worker()

    async def _run_worker(self) -> Outcome:
        assert self.wp is not None
        try:
            outcome = await self._converse()
            outcome.seconds = time.monotonic() - self._started if self._started else 0.0
            return outcome
        finally:
            self.index.abandon()
            if self._keep and self.pool is not None:
                self.pool.park(self.wp)
            else:
                await self.wp.kill()

    async def _send(self, name: str, payload: Any) -> None:
        assert self.wp is not None
        self.wp.send(encode(name, payload))
        await self.wp.drain()

    # ------------------------------------------------------------------ conversation

    def _failed(self, message: str) -> Outcome:
        """A retryable failure; an input the worker could not read makes it an input error."""
        if self.inputs.failed:
            return Outcome("input_error", message, failed_inputs=self.inputs.failures())
        return Outcome("error", message)

    async def _converse(self) -> Outcome:
        assert self.wp is not None
        deadline = time.monotonic() + self.cfg.worker_start_timeout
        while True:
            parked = self.wp.tasks_run > 0 and not self._got_task
            starting = parked or not self._said_worker
            timeout = max(0.0, deadline - time.monotonic()) if starting else None
            try:
                kind, value = await asyncio.wait_for(self.wp.queue.get(), timeout)
            except TimeoutError:
                if parked:
                    raise _ParkedWorkerGone() from None
                return self._failed(f"Worker did not announce itself (WORKER) within "
                                    f"{self.cfg.worker_start_timeout:g} s; killed")
            if kind != "frame" and parked:
                raise _ParkedWorkerGone()
            if kind == "frame":
                outcome = await self._handle(value)
                if outcome is not None:
                    return outcome
            elif kind == "garbage":
                self.event("WARNING", f"cannot parse the worker's output: {value}")
            elif kind == "eof":
                code = await self.wp.exit_code()
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
        assert self.wp is not None
        self.wp.reusable = p.get("reuse") is True
        await self._send("OK", "ok")
        return None

    async def _on_task(self, p: Any) -> Outcome | None:
        self._got_task = True
        self._started = time.monotonic()
        await self._send("TASK", {
            "taskid": self.taskid, "master": self.cfg.master, "disco_port": self.cfg.port,
            "put_port": self.cfg.put_port, "ddfs_data": str(self.cfg.ddfs),
            "disco_data": str(self.cfg.data), "stage": self.stage,
            "grouping": self.a["grouping"], "group": self.a["group"],
            "jobfile": str(self.home / "jobfile"), "jobname": self.job, "host": self.cfg.host,
            "final": self.final,
            # Beyond Disco's protocol: what INPUT "" would answer, saving our workers a round
            # trip; other workers ignore it.
            **({"inputs": ["done", self.inputs.listing()]} if self.inputs.done else {}),
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
        assert self.wp is not None
        gone = asyncio.ensure_future(self.wp.reader_done.wait())
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
            return Outcome("fatal", f"Worker is behaving badly: sent {self.throttle.count} "
                                    f"messages in a second (at most {FATAL_COUNT - 1}; "
                                    f"run the job with batch_messages=True to gather "
                                    f"its prints)")
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
            # A results index is synced to disk: off the event loop. No outputs, no index.
            outputs = (await asyncio.to_thread(self.index.close)
                       if self.index.writing and self.index.sync else self.index.close())
        except OSError as exc:
            return self._failed(f"cannot write the task's results index: {exc}")
        assert self.wp is not None
        self.wp.tasks_run += 1
        if self.wp.reusable and self.cfg.reuse_workers and self.pool is not None:
            self._keep = True
            self.wp.send(encode("OK", "next"))
        return Outcome("done", outputs=outputs)
