"""The node supervisor: registers with the master, long-polls it for work and orders, runs each
task's worker session, and reports how each task ended.

The master may hand out more tasks than this node has slots (when its tasks are short, so
that no slot waits for a round trip); at most `slots` run at once, the others wait here in
order. How tasks ended goes back in batches (`ResultSender`), with the events before them.

A task stays in the `running` list this node sends with every poll until the master has its
result; a task the master handed out but never sees listed is taken as lost and run elsewhere.
If the master forgets this node's session (it thought the node dead), every task still running
here is killed (the master has given them to other nodes) and the node registers again.

A node serving several masters runs one Supervisor per master (see `__main__`), each with its
own share of the slots, tasks, workers and reports: one master's death or restart touches the
tasks of that master only.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from typing import Any

import httpx

from disco.mapreduce.node.client import MasterClient, SessionExpired, TokenRefused
from disco.mapreduce.node.config import NodeConfig
from disco.mapreduce.node.events import EventSender
from disco.mapreduce.node.jobhome import JobHomeError, JobHomes
from disco.mapreduce.node.reports import ResultSender
from disco.mapreduce.node.session import Outcome, WorkerSession, worker_env
from disco.mapreduce.node.slots import SlotGate
from disco.mapreduce.node.warmstart import WarmPool
from disco.mapreduce.node.workers import IDLE_CLOSE, WorkerPool

log = logging.getLogger(__name__)

RETRY_PAUSE = 0.5
# The spare zygote's working directory until a job takes it (an empty folder of the node's).
SPARE_ZYGOTE_HOME = ".spare-zygote"


@dataclass(eq=False)
class RunningTask:
    assignment: dict[str, Any]
    runner: asyncio.Task[None] | None = None
    killed: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.assignment["job"], int(self.assignment["taskid"]))

    @property
    def attempt(self) -> int:
        return int(self.assignment["attempt"])


def _awaiting(task: asyncio.Task[Any] | None) -> list[str]:
    """Where a task is parked (innermost last), for whoever debugs a stuck task."""
    if task is None:
        return ["(not started)"]
    if task.done():
        return ["(ended: " + ("cancelled" if task.cancelled() else repr(task.exception())) + ")"]
    out = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            out.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return out


class Supervisor:
    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.client = MasterClient(cfg.master, cfg.host, cfg.token)
        self.events = EventSender(self.client)
        self.homes = JobHomes(cfg.data, cfg.host, self.client)
        self.warm = WarmPool(cfg.nice, spare_home=cfg.data / SPARE_ZYGOTE_HOME,
                             spare_env=worker_env(cfg, {}))
        self.pool = WorkerPool(max_idle=cfg.slots)
        self.gate = SlotGate(cfg.slots)
        self.results = ResultSender(self.client, self.events,
                                    busy=lambda: self.gate.waiting >= self.gate.limit)
        self.tasks: dict[tuple[str, int], RunningTask] = {}
        self.registered = False
        self._reporter: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self.put_port = 0  # announced to the master once the DDFS upload server listens

    def status(self) -> dict[str, Any]:
        return {"host": self.cfg.host, "master": self.cfg.master, "registered": self.registered,
                "slots": self.cfg.slots, "share": self.cfg.share, "running": [list(k) for k in self.tasks],
                "held": self.gate.held, "gate_waiting": self.gate.waiting,
                "waits": {f"{k[0]}:{k[1]}": _awaiting(rt.runner) for k, rt in self.tasks.items()},
                "reporter": _awaiting(self._reporter), "events_sender": _awaiting(self._sender),
                "events_lock": self.events.lock.locked(), "reports_pending": self.results.pending}

    async def run(self) -> None:
        (self.cfg.data / self.cfg.host).mkdir(parents=True, exist_ok=True)
        sender = self._sender = asyncio.create_task(self.events.run())
        reporter = self._reporter = asyncio.create_task(self.results.run())
        self.warm.keep_spare()
        try:
            while True:
                await self._register()
                try:
                    await self._poll_forever()
                except SessionExpired:
                    log.warning("the master dropped this node's session; registering again")
                    self.registered = False
                    await self.kill_all()
                    self.events.drop()
                    self.results.drop()
        finally:
            sender.cancel()
            reporter.cancel()
            await self.kill_all()
            await self.pool.close()
            await self.warm.close_all()
            await self.client.close()

    async def _register(self) -> None:
        # Nodes are often started together with their master: try again soon at first.
        delay = 0.05
        while True:
            try:
                reply = await self.client.register(self.cfg.slots, self.cfg.port, self.put_port)
                break
            except TokenRefused:
                raise  # trying again cannot help: the node ends, saying why
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.info("cannot register with %s yet: %s", self.cfg.master, exc)
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
        self.registered = True
        log.info("registered with %s as %s (%d slots)", self.cfg.master, self.cfg.host, self.cfg.slots)
        for job in reply.get("purged", []):
            await self.homes.remove(str(job))

    async def _poll_forever(self) -> None:
        seq = 0
        while True:
            seq += 1
            running = [[k[0], k[1], rt.attempt] for k, rt in self.tasks.items() if not rt.killed]
            try:
                orders = await self.client.poll(seq, running, self._disk())
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("poll failed: %s", exc)
                await asyncio.sleep(RETRY_PAUSE)
                continue
            await self._obey(orders)
            await self.pool.close(older_than=IDLE_CLOSE)
            await self.warm.close_idle({k[0] for k in self.tasks} | self.pool.jobs())

    def _disk(self) -> tuple[int, int]:
        try:
            usage = shutil.disk_usage(self.cfg.data)
            return usage.free, usage.used
        except OSError:
            return 0, 0

    async def _obey(self, orders: dict[str, Any]) -> None:
        if isinstance(orders.get("slots"), int):
            slots = orders["slots"]
            if self.cfg.share is not None:
                # Another master's tasks use the rest of this node (see split_slots).
                slots = min(slots, self.cfg.share)
            self.gate.limit = slots
            self.pool.max_idle = slots
        for job, taskid, attempt in orders.get("kill_tasks", []):
            rt = self.tasks.get((job, int(taskid)))
            if rt is not None and rt.attempt == int(attempt):
                self._kill(rt)
        for job in orders.get("kill_jobs", []):
            for rt in list(self.tasks.values()):
                if rt.key[0] == job:
                    self._kill(rt)
            asyncio.create_task(self.pool.close(job))
        for job in orders.get("purge_jobs", []):
            for rt in list(self.tasks.values()):
                if rt.key[0] == job:
                    self._kill(rt)
            asyncio.create_task(self.pool.close(job))
            asyncio.create_task(self.warm.close(job))
            asyncio.create_task(self.homes.remove(job))
        for assignment in orders.get("tasks", []):
            self._start(assignment)

    def _start(self, assignment: dict[str, Any]) -> None:
        rt = RunningTask(assignment)
        old = self.tasks.get(rt.key)
        if old is not None:
            self._kill(old)
        self.tasks[rt.key] = rt
        rt.runner = asyncio.create_task(self._run_task(rt))

    def _kill(self, rt: RunningTask) -> None:
        """Stop a task without reporting it: the master already wrote it off."""
        rt.killed = True
        if rt.runner is not None:
            rt.runner.cancel()
        if self.tasks.get(rt.key) is rt:
            del self.tasks[rt.key]

    async def kill_all(self) -> None:
        runners = [rt.runner for rt in self.tasks.values() if rt.runner is not None]
        for rt in list(self.tasks.values()):
            self._kill(rt)
        if runners:
            await asyncio.gather(*runners, return_exceptions=True)

    async def _run_task(self, rt: RunningTask) -> None:
        try:
            async with self.gate:
                outcome = await self._session(rt)
            if not rt.killed:
                # It stays in the running list until the master has heard how it ended.
                await self.results.report(self._report_of(rt, outcome), lambda: rt.killed)
        finally:
            if self.tasks.get(rt.key) is rt:
                del self.tasks[rt.key]
            if not self.tasks:
                # Now, not when a job takes the spare: its start would slow that job's tasks.
                self.warm.keep_spare()

    async def _session(self, rt: RunningTask) -> Outcome:
        a = rt.assignment
        try:
            home = await self.homes.ensure(a["job"])
            session = WorkerSession(self.cfg, a, home, self.homes.jobenvs(a["job"]),
                                    self.events, lambda known: self._more_inputs(rt, known),
                                    self.warm, self.pool)
            return await session.run()
        except JobHomeError as exc:
            return Outcome("error", str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - report it rather than lose the task
            log.exception("task %s:%s failed on this node", a["job"], a["taskid"])
            return Outcome("error", f"the node could not run the task: {exc!r}")

    async def _more_inputs(self, rt: RunningTask, known: int) -> dict[str, Any] | None:
        a = rt.assignment
        try:
            return await self.client.inputs(a["job"], int(a["taskid"]), rt.attempt, known)
        except SessionExpired:
            return {"status": "gone", "inputs": []}
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("cannot get inputs of %s:%s: %s", a["job"], a["taskid"], exc)
            return None

    @staticmethod
    def _report_of(rt: RunningTask, outcome: Outcome) -> dict[str, Any]:
        a = rt.assignment
        return {"job": a["job"], "taskid": a["taskid"], "attempt": rt.attempt,
                "status": outcome.status, "message": outcome.message,
                "outputs": outcome.outputs, "failed_inputs": outcome.failed_inputs,
                "seconds": round(outcome.seconds, 6)}
