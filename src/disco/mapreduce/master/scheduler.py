"""Matching free node slots with runnable tasks, across jobs.

The job queue policy decides which job gets the next free slot:

- `fifo`: the oldest job with a runnable task that can be placed;
- `fair` (default): the job with the fewest running tasks, so that concurrent jobs share the
  cluster's slots evenly (Disco's fairness re-prioritises by ideal versus actual share of cores;
  with equal weights that is the same as evening out running tasks); ties go to the older job.

Within a job, placement favours data locality (see `queue.JobQueue`). `kick()` may be called as
often as anything changes: one scheduling round runs per turn of the event loop.

A job whose tasks are short (see `Job.pipeline_depth`) may have more tasks on a node than it
has slots: they wait there, so that a slot goes on to its next task at once instead of after
a round trip to the master. A node runs at most its slots' worth at a time either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from disco.mapreduce.master.coordinator import Job
    from disco.mapreduce.master.master import Master

POLICIES = ("fair", "fifo")


def _fifo_key(job: Job) -> tuple[float, float]:
    return (0.0, job.submitted)


def _fair_key(job: Job) -> tuple[float, float]:
    return (float(job.n_running), job.submitted)


class Scheduler:
    def __init__(self, master: Master, policy: str = "fair") -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown scheduler {policy!r}; use one of {', '.join(POLICIES)}")
        self.master = master
        self.policy = policy
        self._order: Callable[[Job], tuple[float, float]] = _fair_key if policy == "fair" else _fifo_key
        self._pending = False

    def kick(self) -> None:
        if not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_soon(self._round)

    def _round(self) -> None:
        self._pending = False
        nodes = [n for n in self.master.registry.usable() if n.slots > 0]
        if not nodes:
            return
        jobs = [j for j in self.master.active_jobs() if j.n_queued > 0]
        stuck: set[str] = set()
        while True:
            job = self._next_job(jobs, stuck)
            if job is None:
                return
            per_slot = 1 + job.pipeline_depth()
            free = {n.host: room for n in nodes if (room := n.slots * per_slot - len(n.running)) > 0}
            task, host = job.pick_task(free) if free else (None, None)
            if task is None or host is None:
                stuck.add(job.name)  # nothing of this job fits the free slots this round
                continue
            if not job.inputs_reachable(task):
                continue  # it now waits for its lost input to be made again
            self.master.dispatch(job, task, host)

    def _next_job(self, jobs: Sequence[Job], stuck: set[str]) -> Job | None:
        best = None
        for job in jobs:
            if job.name in stuck or job.n_queued <= 0 or not job.active:
                continue
            if job.n_running >= job.spec.max_cores:
                continue
            if best is None or self._order(job) < self._order(best):
                best = job
        return best
