"""The master's state and the operations its HTTP handlers call.

Everything here runs on one asyncio event loop; handlers call these methods without awaiting in
the middle of a state change, so there are no locks. Blocking work (writing a job pack, deleting
a job's folder) goes to a thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx

from disco.jobpack import JobPack, JobPackError
from disco.mapreduce.auth import bearer_headers
from disco.mapreduce.ddfs.remote import RemoteDdfs
from disco.mapreduce.ddfs.service import Ddfs
from disco.mapreduce.master.config import MasterConfig, Settings, slots_from_table
from disco.mapreduce.master.coordinator import Job
from disco.mapreduce.master.errors import RequestError
from disco.mapreduce.master.jobnames import new_jobname
from disco.mapreduce.master.journal import (
    FINAL,
    JOURNAL,
    Durability,
    JobJournal,
    empty_trash,
    move_to_trash,
    write_durably,
    write_pack,
)
from disco.mapreduce.master.nodes import NodeRegistry, NodeState
from disco.mapreduce.master.pipeline import JobSpecError, job_spec
from disco.mapreduce.master.resume import awaited_hosts, final_record, load_jobs
from disco.mapreduce.master.scheduler import Scheduler
from disco.mapreduce.master.tasks import Task, TaskState
from disco.mapreduce.urls import disco_to_http, hexhash, url_host

log = logging.getLogger(__name__)

PURGED_MEMORY = 10_000  # purged job names remembered for nodes that were away


class Master:
    def __init__(self, config: MasterConfig) -> None:
        self.config = config
        self.settings = Settings(max_failure_rate=config.max_failure_rate)
        self.registry = NodeRegistry()
        self.scheduler = Scheduler(self, config.scheduler)
        self.jobs: dict[str, Job] = {}
        self.purged: deque[str] = deque(maxlen=PURGED_MEMORY)
        self.config_table: list[list[Any]] = []
        self.table_slots: dict[str, int] = {}
        self.jobs_root = config.data / "jobs"
        self._table_path = config.data / "config_table.json"
        self._background: list[asyncio.Task[None]] = []
        self._job_starts: set[asyncio.Task[None]] = set()
        self.http: httpx.AsyncClient | None = None
        # DDFS here, or at the pool's DDFS authority (docs/mapreduce.md, "Several masters").
        self.ddfs: Ddfs | RemoteDdfs = (Ddfs(self, config.ddfs) if config.ddfs_authority is None
                                        else RemoteDdfs(config.ddfs_authority, config.token))
        self.stopping = asyncio.Event()  # once set, held requests are answered at once
        self.durability = Durability()  # the journals' group commit (see journal)
        # After a restart: hosts whose outputs resumed jobs rely on -> when to give up on them.
        self.awaited: dict[str, float] = {}
        self._syncs: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        self.jobs_root.mkdir(parents=True, exist_ok=True)
        self._load_table()
        # Reads of the nodes' dir:// indexes: cluster traffic, never through a proxy.
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0), trust_env=False)
        self._background = [asyncio.create_task(self._watch_nodes()),
                            asyncio.create_task(self._flush_events())]
        await self.ddfs.start()
        self._resume()

    def _resume(self) -> None:
        """The jobs of the data folder, before the first request is served (see resume)."""
        empty_trash(self.jobs_root)
        deadline = time.monotonic() + self.config.node_timeout
        for job in load_jobs(self):
            self.jobs[job.name] = job
            if not job.active:
                continue
            for host in awaited_hosts(job):
                self.awaited.setdefault(host, deadline)
            start = asyncio.create_task(job.start())
            self._job_starts.add(start)
            start.add_done_callback(self._job_starts.discard)
        if self.jobs:
            log.info("resumed %d jobs (%d unfinished)", len(self.jobs), len(self.active_jobs()))

    def release_held(self) -> None:
        """Answer every request held open (node polls, get_results, input waits) now and
        hold no more: a stopping server waits for them, up to its graceful timeout."""
        self.stopping.set()
        for node in self.registry.nodes.values():
            node.wake()
        for job in self.jobs.values():
            for task in job.tasks.values():
                task.notify_inputs()

    async def stop(self) -> None:
        for task in self._background + list(self._job_starts):
            task.cancel()
        for job in self.jobs.values():
            job.events.flush()
        try:
            self.durability.flush_now()
        except OSError as exc:
            log.error("cannot sync the job journals at shutdown: %s", exc)
        await self.ddfs.stop()
        if self.http is not None:
            await self.http.aclose()

    async def _watch_nodes(self) -> None:
        """Declare lost the nodes that stopped polling."""
        interval = min(0.5, self.config.node_timeout / 4)
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval)
            now = time.monotonic()
            if self.awaited:
                self._give_up_on_awaited(now)
            lag = now - before - interval
            if lag > 1.0:
                # This loop itself was held up; the nodes' polls were waiting in line too.
                for node in self.registry.nodes.values():
                    node.last_seen += lag
                continue
            for node in list(self.registry.nodes.values()):
                if node.connected and now - node.last_seen > self.config.node_timeout:
                    self.node_lost(node, f"node {node.host} stopped responding")

    def _give_up_on_awaited(self, now: float) -> None:
        """A host that resumed jobs hold outputs on and that has not come back in time is
        lost: what it held is made again before anything reads it."""
        settled = False
        for host, deadline in list(self.awaited.items()):
            if host in self.registry.nodes:
                del self.awaited[host]
                settled = True
            elif now > deadline:
                del self.awaited[host]
                settled = True
                log.warning("node %s has not come back since the restart; its outputs are lost",
                            host)
                self.registry.mark_lost(host)
                self.scheduler.kick()
        if settled and not self.awaited:
            for job in self.active_jobs():
                if job.finish_waits:
                    job.results_hosts_settled()

    async def _flush_events(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for job in self.active_jobs():
                job.events.flush()

    # ------------------------------------------------------------------ jobs

    def active_jobs(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.active]

    def job(self, name: str) -> Job:
        job = self.jobs.get(name)
        if job is None:
            raise RequestError(f"unknown job {name!r}", 404)
        return job

    async def submit(self, body: bytes) -> str:
        """A job pack in, a job name out (or RequestError)."""
        if not self.settings.accept_new_jobs:
            raise RequestError("this master does not accept new jobs at the moment", 403)
        try:
            pack = await asyncio.to_thread(JobPack.loads, body)
            spec = job_spec(pack)
        except (JobPackError, JobSpecError) as exc:
            raise RequestError(str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise RequestError(f"invalid jobdict: {exc!r}") from None
        name = new_jobname(spec.prefix, self.jobs, index=self.config.instance,
                           count=self.config.instances)
        jobdir = self.jobs_root / hexhash(name) / name
        try:
            # The pack and the journal's first line are on disk before the name is answered:
            # a job the client knows of is one a restarted master resumes.
            await asyncio.to_thread(write_pack, self.jobs_root, jobdir, body)
            journal = JobJournal(jobdir / JOURNAL, fresh=True)
        except OSError as exc:
            raise RequestError(f"cannot store the job pack: {exc}", 500) from None
        job = Job(self, name, spec, jobdir)
        job.journal = journal
        self.durability.append(journal, {"ev": "submitted", "time": job.submitted})
        self.jobs[name] = job
        job.event(f"New job {name} from {spec.owner}: "
                  f"{' -> '.join(f'{s.name}/{s.grouping}' for s in spec.pipeline)}, "
                  f"{len(spec.inputs)} inputs")
        try:
            await self.sync()
        except RequestError:
            del self.jobs[name]
            raise
        start = asyncio.create_task(job.start())
        self._job_starts.add(start)
        start.add_done_callback(self._job_starts.discard)
        return name

    async def sync(self) -> None:
        """Wait until the journals hold everything recorded so far (see journal)."""
        try:
            await self.durability.sync()
        except OSError as exc:
            log.error("cannot sync the job journals: %s", exc)
            raise RequestError(f"cannot store the master's journal: {exc}", 500) from None

    def sync_soon(self) -> None:
        """Sync in the background: nobody waits, but it should not wait for a next caller."""
        task = asyncio.create_task(self.sync())
        self._syncs.add(task)
        task.add_done_callback(self._synced)

    def _synced(self, task: asyncio.Task[None]) -> None:
        self._syncs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background journal sync failed: %s", task.exception())

    def job_ended(self, job: Job) -> None:
        self.scheduler.kick()  # its slots are free for the others
        journal, job.journal = job.journal, None
        if journal is None:
            return  # not journaled (or ended before: nothing more to record)
        # The final state replaces the journal (the compaction): written whole, then the
        # journal goes. A crash in between leaves both; a restart trusts final.json.
        data = json.dumps(final_record(job), separators=(",", ":")).encode()
        jobdir = job.jobdir
        self.durability.later(lambda: write_durably(jobdir / FINAL, data))
        self.durability.close(journal)
        self.durability.later(lambda: journal.path.unlink(missing_ok=True))
        self.sync_soon()

    async def kill_job(self, name: str) -> None:
        self.job(name).kill("Job killed on request")
        await self.sync()

    async def clean_job(self, name: str) -> None:
        """Forget a job on the master (its data stays on the nodes)."""
        job = self.job(name)
        job.kill("Job cleaned on request")
        del self.jobs[name]
        # One durable rename takes it out of what a restart resumes; deleting can take its time.
        moved: list[Path | None] = []
        self.durability.later(lambda: moved.append(move_to_trash(self.jobs_root, job.jobdir)))
        await self.sync()
        if moved and moved[0] is not None:
            await asyncio.to_thread(shutil.rmtree, moved[0], True)

    async def purge_job(self, name: str) -> None:
        """Forget a job and delete its data everywhere."""
        await self.clean_job(name)
        self.purged.append(name)
        for node in self.registry.nodes.values():
            if node.connected:
                node.purge_jobs.add(name)
                node.wake()

    async def fetch_text(self, url: str) -> str:
        """Read a (small) file that a node serves, such as a dir:// index."""
        assert self.http is not None
        host = url_host(url)
        node = self.registry.nodes.get(host or "")
        port = node.port if node is not None and node.port else self.config.port
        # The token goes to this cluster's nodes only, not to any host a job input names.
        headers = bearer_headers(self.config.token) if node is not None else {}
        resp = await self.http.get(disco_to_http(url, port), headers=headers)
        resp.raise_for_status()
        return resp.text

    async def wait_results(self, timeout_ms: float, names: list[str]) -> list[list[Any]]:
        """Disco's get_results: wait until one of the named active jobs ends (or the timeout),
        then report every job's status."""
        if self.durability.pending:
            await self.sync()  # a status a client saw must be one a restart still knows
        waits = [asyncio.ensure_future(self.jobs[n].ended.wait()) for n in names
                 if n in self.jobs and self.jobs[n].active]
        if waits and not self.stopping.is_set():
            waits.append(asyncio.ensure_future(self.stopping.wait()))
            _done, pending = await asyncio.wait(waits, timeout=max(0.0, timeout_ms) / 1000,
                                                return_when=asyncio.FIRST_COMPLETED)
            for fut in pending:
                fut.cancel()
            if self.durability.pending:
                await self.sync()
        out: list[list[Any]] = []
        for name in names:
            job = self.jobs.get(name)
            if job is None:
                out.append([name, ["unknown job", []]])
            else:
                out.append([name, [job.status, job.results if job.status == "ready" else []]])
        return out

    # ------------------------------------------------------------------ tasks <-> nodes

    def dispatch(self, job: Job, task: Task, host: str) -> None:
        node = self.registry.nodes[host]
        job.dispatched(task, host)
        node.running[task.key] = task
        node.outbox.append(job.assignment(task))
        node.wake()

    def release(self, task: Task, kill: bool = False) -> None:
        """Take a task off its node's books; `kill` tells the node to stop its worker."""
        node = self.registry.nodes.get(task.host or "")
        if node is None:
            return
        node.running.pop(task.key, None)
        node.delivered.pop(task.key, None)
        if kill and node.connected:
            node.outbox = [a for a in node.outbox
                           if (a["job"], a["taskid"]) != task.key]
            node.kill_tasks.append([task.job, task.taskid, task.attempt])
            node.wake()
        self.scheduler.kick()

    def forget_job_orders(self, name: str) -> None:
        """A dead job's undelivered tasks must not start anywhere."""
        for node in self.registry.nodes.values():
            if any(a["job"] == name for a in node.outbox):
                node.outbox = [a for a in node.outbox if a["job"] != name]

    def node_lost(self, node: NodeState, reason: str) -> None:
        log.warning("%s", reason)
        node.connected = False
        node.outbox.clear()
        for task in list(node.running.values()):
            self.fail_running(task, node, "error", reason)
        node.running.clear()
        node.delivered.clear()
        node.wake()
        self.scheduler.kick()

    def fail_running(self, task: Task, node: NodeState, kind: str, message: str,
                     failed_inputs: list[list[Any]] | None = None) -> None:
        self.release(task)
        job = self.jobs.get(task.job)
        if job is not None and job.active and task.state is TaskState.RUNNING:
            job.task_failed(task, node.host, kind, message, failed_inputs)

    # ------------------------------------------------------------------ cluster config

    def _load_table(self) -> None:
        try:
            table = json.loads(self._table_path.read_text())
            self.table_slots = slots_from_table(table)
            self.config_table = table
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable config table %s: %s", self._table_path, exc)

    def load_config_table(self) -> list[list[Any]]:
        if self.config_table:
            return self.config_table
        return [[h, str(n.slots)] for h, n in sorted(self.registry.nodes.items())]

    def save_config_table(self, table: Any) -> None:
        if not isinstance(table, list):
            raise RequestError("the config table is a list of [hostspec, cores]")
        try:
            slots = slots_from_table(table)
        except (TypeError, ValueError) as exc:
            raise RequestError(str(exc)) from None
        self._table_path.write_text(json.dumps(table))
        self.config_table, self.table_slots = table, slots
        for host, node in self.registry.nodes.items():
            node.slots = slots.get(host, node.declared_slots)
        self.scheduler.kick()

    def set_blacklisted(self, host: Any, flag: bool) -> None:
        node = self.registry.nodes.get(host) if isinstance(host, str) else None
        if node is None:
            raise RequestError(f"unknown node {host!r}", 404)
        node.blacklisted = flag
        self.scheduler.kick()

    def nodeinfo(self) -> dict[str, Any]:
        return {h: n.info() for h, n in sorted(self.registry.nodes.items())}

