"""One job's coordinator: its stages, tasks, retries, and end.

Stages run in pipeline order. A stage starts when the one before it has finished, with one task
per group of the previous stage's outputs (see `grouping`); a *concurrent* stage instead gets its
tasks as soon as outputs appear, and its tasks learn that their inputs are complete when the
stage before finishes. The job is ready when its last stage has finished; its results are the
last stage's outputs.

Faults: a task that fails (ERROR, a worker that dies, a node that is lost) is retried after a
pause of min(n, 60) x retry_base plus jitter, away from the hosts it failed on (the per-task
blacklist is forgotten once it covers every host). A task failing more than max_failure_rate
times kills the job; FATAL kills it at once. An input whose every replica is gone (its host lost,
or the worker could not read it) makes the task that produced it run again, and the consumer
waits for it.

All methods run on the master's event loop and never block, so the coordinator needs no locks.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from disco.mapreduce.master.data import (
    InputRef,
    Output,
    output_to_json,
    output_urls,
    ref_hosts,
    ref_size,
    replicas_for,
)
from disco.mapreduce.master.events import EventLog
from disco.mapreduce.master.grouping import pack_consecutive, route, sort_key
from disco.mapreduce.master.job_inputs import annotate, index_urls, read_index
from disco.mapreduce.master.journal import JobJournal
from disco.mapreduce.master.pipeline import JobSpec, StageSpec
from disco.mapreduce.master.queue import JobQueue
from disco.mapreduce.master.tasks import Task, TaskState
from disco.mapreduce.timefmt import duration, event_timestamp

if TYPE_CHECKING:
    from disco.mapreduce.master.master import Master
    from disco.mapreduce.master.resume import Resumption

log = logging.getLogger(__name__)

MAX_RETRY_FACTOR = 60  # pauses grow as n x retry_base up to 60 x retry_base
# Short tasks are pipelined: a node may hold up to this many seconds of a job's queued work
# per slot beyond what runs (estimated from the job's recent task times), at most
# MAX_PIPELINE tasks per slot.
PIPELINE_SECONDS = 0.25
MAX_PIPELINE = 16


@dataclass(eq=False)
class Stage:
    spec: StageSpec
    index: int
    tasks: list[Task] = field(default_factory=list)
    groups: dict[Hashable, Task] = field(default_factory=dict)
    n_done: int = 0
    started: bool = False
    finished: bool = False
    inputs_closed: bool = False
    start_time: float = 0.0
    failures: int = 0

    @property
    def name(self) -> str:
        return self.spec.name


class Job:
    def __init__(self, master: Master, name: str, spec: JobSpec, jobdir: Path) -> None:
        self.master = master
        self.name = name
        self.spec = spec
        self.jobdir = jobdir
        self.pack_path = jobdir / "jobpack"
        self.submitted = time.time()
        self.started_mono = time.monotonic()
        self.status = "active"
        self.results: list[list[str]] = []
        self.events = EventLog(jobdir / "events")
        self.stages = [Stage(s, i) for i, s in enumerate(spec.pipeline)]
        self.tasks: dict[int, Task] = {}
        self.input_outputs: list[Output] = []
        self.queue = JobQueue(spec.force_local, spec.force_remote)
        self.n_queued = 0
        self.n_running = 0
        self.task_seconds: float | None = None  # moving average of recent tasks' run times
        self._stage_of = {s.name: s for s in self.stages}
        self.hosts: set[str] = set()
        self.ended = asyncio.Event()
        self._next_taskid = 0
        self._summary: list[list[Any]] | None = None
        self._saving: asyncio.Task[None] | None = None
        self._stage_results: dict[str, list[list[str]]] = {}
        # Persistence (see journal): where task ends are recorded, and after a restart what
        # the journal held, applied again once the job's tasks are made anew (see resume).
        self.journal: JobJournal | None = None
        self.resumption: Resumption | None = None  # None: not a resumed job
        self.replaying = False  # task ends being applied from the journal: not recorded again
        self.finish_waits = False  # its results are on hosts not yet back since a restart

    # ------------------------------------------------------------------ lifecycle

    @property
    def active(self) -> bool:
        return self.status == "active"

    def event(self, msg: str, host: str = "master") -> None:
        self.events.add(host, msg)

    def task_event(self, task: Task, kind: str, msg: str, host: str = "master") -> None:
        self.events.add(host, f"{kind}: [{task.name}] {msg}")

    async def start(self) -> None:
        """Expand tag:// inputs to their blobs and read the inputs' dir indexes (to learn their
        labels), then start the first stage."""
        try:
            self.input_outputs = [await annotate(blob, self.master.fetch_text)
                                  for i in self.spec.inputs
                                  for blob in await self.master.ddfs.expand_input(i)]
        except Exception as exc:  # noqa: BLE001 - any failure to read inputs ends the job
            self.kill(f"Cannot read the job's inputs: {exc}")
            return
        if self.active:
            self.check_stages()
        if self.active and self.resumption is not None:
            self.resumption.apply(self)

    def kill(self, reason: str, kind: str = "ERROR", log_event: bool = True) -> None:
        """End the job as dead; `kind` is the severity its last event line shows."""
        if not self.active:
            return
        if log_event:
            self.event(f"{kind}: {reason}")
        self.status = "dead"
        self._stop_everything()
        log.info("job %s dead: %s", self.name, reason)
        self._end()

    def _stop_everything(self) -> None:
        for task in self.tasks.values():
            if task.retry_timer is not None:
                task.retry_timer.cancel()
                task.retry_timer = None
            if task.state is TaskState.RUNNING:
                self.master.release(task, kill=True)
            if task.state is not TaskState.DONE:
                task.state = TaskState.PENDING  # nothing of a dead job waits or runs any more
            task.notify_inputs()
        self.master.forget_job_orders(self.name)
        self.queue.clear()
        self.n_queued = self.n_running = 0

    def _finish(self) -> None:
        if self._saving is not None:
            return  # the results are being saved; the job ends when they are
        last = self.stages[-1]
        if self.resumption is not None and not self.resumption.results_reachable(self):
            return
        self.results = [output_urls(o) for t in last.tasks for o in t.outputs]
        if self.spec.save_results:
            self._saving = asyncio.create_task(self._save_results())
            return
        self._ready()

    def run_again(self, task: Task, hosts: set[str], why: str) -> None:
        """A finished task whose outputs on `hosts` are lost runs again, away from them."""
        self._stage_of[task.stage].finished = False
        self.event(f"Running {task.name} again: {why}")
        task.blacklist |= hosts
        self._set_state(task, TaskState.PENDING)
        self.enqueue(task)

    def results_hosts_settled(self) -> None:
        self.finish_waits = False
        self.check_stages()

    async def _save_results(self) -> None:
        """Put the results in the DDFS tag disco:results:<job>, which becomes the result: one
        entry per output file, as Disco tags them (a results index is read for its files)."""
        try:
            entries: list[list[str]] = []
            for replicas in self.results:
                if replicas and replicas[0].startswith("dir://"):
                    _url, urls = await read_index(replicas, self.master.fetch_text, index_urls)
                    entries.extend([url] for url in urls)
                else:
                    entries.append(replicas)
            tag = await self.master.ddfs.save_results(self.name, entries)
        except Exception as exc:  # noqa: BLE001 - any failure to save ends the job
            self.kill(f"Cannot save the results in DDFS: {exc}")
            return
        if self.active:
            self.event(f"Results saved to {tag}")
            self.results = [[tag]]
            self._ready()

    def _ready(self) -> None:
        self.status = "ready"
        self.event(f"READY: Job done in {duration(time.monotonic() - self.started_mono)}")
        self._stop_everything()  # nothing should be left running; if it is, free its slot
        self._end()

    def _end(self) -> None:
        self._summary = self._pipeline_counts()
        self._stage_results = {s.name: [output_urls(o) for t in s.tasks for o in t.outputs
                                        if t.state is TaskState.DONE] for s in self.stages}
        self.events.close()
        # Drop the task graph: a finished job only answers questions about its summary.
        self.tasks = {}
        for s in self.stages:
            s.tasks, s.groups = [], {}
        self.ended.set()
        self.master.job_ended(self)

    # ------------------------------------------------------------------ stages

    def _outputs_of(self, producer: int | None) -> list[Output]:
        return self.input_outputs if producer is None else self.tasks[producer].outputs

    def _output(self, ref: InputRef) -> Output | None:
        outputs = self._outputs_of(ref.producer)
        return outputs[ref.index] if ref.index < len(outputs) else None

    def check_stages(self) -> None:
        """Start, close and finish stages as far as the finished ones allow."""
        for i, stage in enumerate(self.stages):
            if not self.active:
                return
            if stage.finished:
                continue
            if i > 0 and not self.stages[i - 1].finished:
                return
            if not stage.started:
                self._start_stage(stage)
            if not stage.inputs_closed:
                stage.inputs_closed = True
                for task in stage.tasks:
                    task.inputs_done = True
                    task.notify_inputs()
            if stage.n_done < len(stage.tasks):
                return
            stage.finished = True
            if stage.tasks:
                self.event(f"Stage {stage.name} finished in "
                           f"{duration(time.monotonic() - stage.start_time)}")
        if self.active:
            self._finish()

    def _produced(self, stage: Stage) -> list[tuple[int | None, int, Output]]:
        if stage.index == 0:
            return [(None, i, o) for i, o in enumerate(self.input_outputs)]
        prev = self.stages[stage.index - 1]
        return [(t.taskid, i, o) for t in prev.tasks for i, o in enumerate(t.outputs)]

    def _start_stage(self, stage: Stage) -> None:
        self.task_seconds = None  # a new stage's tasks may take any time
        stage.started = True
        stage.start_time = time.monotonic()
        grouped: dict[Hashable, tuple[tuple[int, str | None], list[InputRef]]] = {}
        routed: Iterable[tuple[Hashable, tuple[int, str | None], InputRef]] = (
            triple for producer, index, output in self._produced(stage)
            for triple in route(stage.spec.grouping, producer, index, output))
        if stage.index == 0 and stage.spec.grouping == "split" and self.spec.inputs_per_task > 1:
            routed = pack_consecutive(routed, self.spec.inputs_per_task)
        for key, group, ref in routed:
            grouped.setdefault(key, (group, []))[1].append(ref)
        keys = list(grouped)
        if stage.spec.grouping != "split":
            keys.sort(key=sort_key)
        for key in keys:
            group, refs = grouped[key]
            self._new_task(stage, key, group, refs, inputs_done=True)
        if stage.tasks:
            self.event(f"Stage {stage.name} started with {len(stage.tasks)} tasks")

    def _feed_concurrent(self, producer: Task) -> None:
        """Hand a finished task's outputs to the next stage at once, if it is concurrent."""
        stage = self._stage_of[producer.stage]
        if stage.index + 1 >= len(self.stages):
            return
        nxt = self.stages[stage.index + 1]
        if not nxt.spec.concurrent or nxt.inputs_closed:
            return
        if not nxt.started:
            nxt.started = True
            nxt.start_time = time.monotonic()
        for index, output in enumerate(producer.outputs):
            for key, group, ref in route(nxt.spec.grouping, producer.taskid, index, output):
                task = nxt.groups.get(key)
                if task is None:
                    self._new_task(nxt, key, group, [ref], inputs_done=False)
                elif task.state is TaskState.DONE:
                    self.task_event(task, "WARNING", "new input arrived after the task was done; "
                                    "it is ignored")
                else:
                    task.inputs.append(ref)
                    task.notify_inputs()

    def _new_task(self, stage: Stage, key: Hashable, group: tuple[int, str | None],
                  refs: list[InputRef], inputs_done: bool) -> Task:
        task = Task(job=self.name, stage=stage.name, taskid=self._next_taskid,
                    grouping=stage.spec.grouping, group=group, inputs=refs, inputs_done=inputs_done)
        self._next_taskid += 1
        self.tasks[task.taskid] = task
        stage.tasks.append(task)
        stage.groups[key] = task
        self.enqueue(task)
        return task

    # ------------------------------------------------------------------ scheduling hooks

    def enqueue(self, task: Task) -> None:
        if not self.active:
            return
        task.retry_timer = None
        task.preferred = self._preferred_hosts(task)
        self._set_state(task, TaskState.QUEUED)
        self.queue.push(task)
        self.master.scheduler.kick()

    def _preferred_hosts(self, task: Task) -> list[str]:
        if task.group[1]:
            return [task.group[1]]
        weight: dict[str, int] = {}
        for ref in task.inputs:
            output = self._output(ref)
            size = ref_size(output, ref.label)
            for host in ref_hosts(output):
                weight[host] = weight.get(host, 0) + size + 1
        return sorted(weight, key=lambda h: -weight[h])

    def _set_state(self, task: Task, state: TaskState) -> None:
        old = task.state
        if old is state:
            return
        self.n_queued += (state is TaskState.QUEUED) - (old is TaskState.QUEUED)
        self.n_running += (state is TaskState.RUNNING) - (old is TaskState.RUNNING)
        if state is TaskState.DONE or old is TaskState.DONE:
            self._stage_of[task.stage].n_done += 1 if state is TaskState.DONE else -1
        task.state = state

    def pipeline_depth(self) -> int:
        """How many more of this job's tasks per slot a node may hold beyond those that run:
        0 until its tasks are known to be short, and for a job limited to fewer cores."""
        if self.task_seconds is None or self.spec.max_cores < (1 << 31):
            return 0
        return min(MAX_PIPELINE, int(PIPELINE_SECONDS / max(self.task_seconds, 1e-3)))

    def _timed(self, seconds: float | None) -> None:
        if seconds is None or seconds < 0:
            return
        old = self.task_seconds
        self.task_seconds = seconds if old is None else 0.8 * old + 0.2 * seconds

    def pick_task(self, free: dict[str, int]) -> tuple[Task, str] | tuple[None, None]:
        hosts = sorted(free, key=lambda h: -free[h])
        usable = {n.host for n in self.master.registry.usable()}
        for host in hosts:
            task = self.queue.pop_local(host, usable)
            if task is not None:
                return task, host
        connected = self.master.registry.connected_hosts()
        for host in hosts:
            task = self.queue.pop_remote(host, free, connected, usable)
            if task is not None:
                return task, host
        return None, None

    def inputs_reachable(self, task: Task) -> bool:
        """Before dispatch: are the inputs this task reads still somewhere? If every replica of
        a stage output is on a lost node, re-run its producer and let this task wait."""
        lost: dict[int, set[str]] = {}
        for ref in task.inputs:
            if ref.producer is None:
                continue
            hosts = ref_hosts(self._output(ref))
            if hosts and all(self.master.registry.unreachable(h) for h in hosts):
                lost.setdefault(ref.producer, set()).update(hosts)
        if not lost:
            return True
        self._set_state(task, TaskState.PENDING)
        for producer, gone in lost.items():
            self._regenerate(producer, gone, task, why=f"its output on {', '.join(sorted(gone))} "
                                                       "is unreachable")
        return False

    def dispatched(self, task: Task, host: str) -> None:
        self._set_state(task, TaskState.RUNNING)
        task.host = host
        task.attempt += 1
        task.started_at = time.monotonic()
        self.hosts.add(host)

    def assignment(self, task: Task) -> dict[str, Any]:
        """What a node needs to run the task (the master <-> node protocol's task entry)."""
        label, host = task.group
        return {
            "job": self.name, "taskid": task.taskid, "attempt": task.attempt,
            "stage": task.stage, "grouping": task.grouping, "group": [label, host or ""],
            "worker": self.spec.worker, "inputs": self.worker_inputs(task, 0),
            "inputs_done": task.inputs_done,
            # Outputs of the last stage are the job's results; the others only a later stage
            # reads, and the node need not sync their index to disk.
            "final": task.stage == self.stages[-1].spec.name,
        }

    def worker_inputs(self, task: Task, start: int) -> list[list[Any]]:
        """Inputs from number `start` on, as the worker protocol lists them (without status)."""
        out = []
        for iid in range(start, len(task.inputs)):
            ref = task.inputs[iid]
            urls = replicas_for(self._output(ref), ref.label)
            out.append([iid, ref.label, [[rid, u] for rid, u in enumerate(urls)]])
        return out

    # ------------------------------------------------------------------ task results

    def task_done(self, task: Task, host: str, outputs: list[Output],
                  seconds: float | None = None) -> None:
        task.outputs = outputs
        task.completions += 1
        self._set_state(task, TaskState.DONE)
        task.blacklist.discard(host)
        if self.replaying:
            task.host = host
            self.hosts.add(host)
        else:
            self._timed(seconds)
            if self.journal is not None:
                self.master.durability.append(self.journal, {
                    "ev": "done", "task": task.taskid, "stage": task.stage,
                    "group": list(task.group), "host": host,
                    "outputs": [output_to_json(o) for o in outputs]})
            self.task_event(task, "DONE", f"finished on {host} in "
                            f"{duration(time.monotonic() - task.started_at)}", host)
        for cid in sorted(task.waiters):
            consumer = self.tasks[cid]
            consumer.waiting_on.discard(task.taskid)
            if not consumer.waiting_on and consumer.state is TaskState.PENDING \
                    and consumer.retry_timer is None:
                self.enqueue(consumer)
        task.waiters.clear()
        if task.completions == 1:
            self._feed_concurrent(task)
        self.check_stages()

    def task_failed(self, task: Task, host: str, kind: str, message: str,
                    failed_inputs: list[list[Any]] | None = None) -> None:
        stage = self._stage_of[task.stage]
        stage.failures += 1
        self._set_state(task, TaskState.PENDING)
        if kind == "fatal":
            self.task_event(task, "FATAL", message, host)
            self.kill(message, log_event=False)
            return
        self.task_event(task, "WARNING", message, host)
        if kind == "input_error" and failed_inputs:
            lost: dict[int, set[str]] = {}
            for iid, hosts in failed_inputs:
                if 0 <= iid < len(task.inputs) and task.inputs[iid].producer is not None:
                    lost.setdefault(task.inputs[iid].producer, set()).update(hosts)
            # The worker stops at the first input it cannot read; the others it would have
            # read from the same hosts are as good as lost too.
            bad_hosts = set().union(*lost.values()) if lost else set()
            for ref in task.inputs:
                hosts = set(ref_hosts(self._output(ref)))
                if ref.producer is not None and hosts and hosts <= bad_hosts:
                    lost.setdefault(ref.producer, set()).update(hosts)
            if lost:
                # The reader is not to blame for its input's loss: count, but do not avoid it.
                if not self._count_failure(task, host, blame_host=False):
                    return
                for producer, hosts in lost.items():
                    self._regenerate(producer, set(hosts), task,
                                     why=f"{task.name} could not read it from "
                                         f"{', '.join(sorted(hosts)) or 'anywhere'}")
                return
        self._retry(task, host)

    def _count_failure(self, task: Task, host: str, blame_host: bool = True) -> bool:
        """Count a failure; False (and the job dead) when the task has failed too often."""
        task.failures += 1
        limit = self.master.settings.max_failure_rate
        if task.failures > limit:
            self.task_event(task, "ERROR", f"Task failed {task.failures} times; at most {limit} "
                            "failures are allowed")
            self.kill(f"Task {task.name} failed {task.failures} times", log_event=False)
            return False
        if blame_host:
            task.blacklist.add(host)
        if {n.host for n in self.master.registry.usable()} <= task.blacklist:
            task.blacklist.clear()  # every host has failed it: give them all another chance
        return True

    def _retry(self, task: Task, host: str) -> None:
        if not self._count_failure(task, host):
            return
        base = self.master.config.retry_base
        pause = min(task.failures, MAX_RETRY_FACTOR) * base + random.uniform(0, base)
        limit = self.master.settings.max_failure_rate
        self.event(f"Task {task.name} failed on {host} (failure {task.failures}, at most "
                   f"{limit} allowed); retrying in {pause:.2f} s")
        loop = asyncio.get_running_loop()
        task.retry_timer = loop.call_later(pause, self._retry_due, task)

    def _retry_due(self, task: Task) -> None:
        task.retry_timer = None
        if self.active and task.state is TaskState.PENDING and not task.waiting_on:
            self.enqueue(task)

    def _regenerate(self, producer_id: int, hosts: set[str], consumer: Task, why: str) -> None:
        producer = self.tasks[producer_id]
        consumer.waiting_on.add(producer_id)
        producer.waiters.add(consumer.taskid)
        if producer.state is not TaskState.DONE:
            return  # already being re-run; the consumer waits for it too
        producer.blacklist |= hosts
        if {n.host for n in self.master.registry.usable()} <= producer.blacklist:
            producer.blacklist.clear()
        self.event(f"Running {producer.name} again: {why}")
        self._set_state(producer, TaskState.PENDING)
        self.enqueue(producer)

    def inputs_for(self, task: Task, known: int) -> tuple[bool, list[list[Any]]]:
        return task.inputs_done, self.worker_inputs(task, known)

    # ------------------------------------------------------------------ reports

    def _pipeline_counts(self) -> list[list[Any]]:
        rows = []
        for stage in self.stages:
            counts = {state: 0 for state in TaskState}
            for task in stage.tasks:
                counts[task.state] += 1
            rows.append([stage.name, counts[TaskState.PENDING], counts[TaskState.QUEUED],
                         counts[TaskState.RUNNING], counts[TaskState.DONE], stage.failures])
        return rows

    def restore_summary(self, counts: list[list[Any]],
                        stage_results: dict[str, list[list[str]]]) -> None:
        """A finished job's summary, as a restart finds it on disk."""
        self._summary, self._stage_results = counts, stage_results

    @property
    def all_stage_results(self) -> dict[str, list[list[str]]]:
        return self._stage_results

    def pipeline_counts(self) -> list[list[Any]]:
        return self._summary if self._summary is not None else self._pipeline_counts()

    def stage_results(self, stage: str) -> list[list[str]] | None:
        if self._summary is not None:
            return self._stage_results.get(stage)
        for s in self.stages:
            if s.name == stage:
                return [output_urls(o) for t in s.tasks if t.state is TaskState.DONE
                        for o in t.outputs]
        return None

    def info(self) -> dict[str, Any]:
        return {
            "timestamp": event_timestamp(self.submitted),
            "active": self.status,
            "pipeline": self.pipeline_counts(),
            "results": [url for urls in self.results for url in urls],
            "inputs": self.spec.raw_inputs[:100],
            "worker": self.spec.worker,
            "hosts": sorted(self.hosts),
            "owner": self.spec.owner,
        }
