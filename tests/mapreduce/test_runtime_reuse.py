"""Short tasks: workers kept for the job's next task, tasks queued on nodes beyond their slots,
and task ends reported in batches.

The maps below run on the nodes; they are module level so that the client ships this module
(it imports nothing heavy at import time)."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtime_fixtures import client_cluster

from disco.core import Job, result_iterator
from disco.worker import Params


def pid_map(entry: Any, params: Any) -> Iterator[tuple[str, int]]:
    yield "pid", os.getpid()


def counting_map(entry: Any, params: Any) -> Iterator[tuple[str, int]]:
    # Each task must get the job's parameters as submitted, whatever the one before did.
    params.calls += 1
    yield "calls", params.calls


def overlap_map(entry: Any, params: Any) -> Iterator[tuple[str, int]]:
    """Record how many tasks of this node run at this moment (at least this one)."""
    here = os.path.join(params.dir, Task.host)  # noqa: F821 - a job global
    os.makedirs(here, exist_ok=True)
    mine = os.path.join(here, f"{os.getpid()}-{time.monotonic_ns()}")
    open(mine, "w").close()
    time.sleep(0.01)
    running = len(os.listdir(here))
    os.remove(mine)
    yield "running", running


def crash_once_map(entry: Any, params: Any) -> Iterator[tuple[str, int]]:
    marker = os.path.join(params.dir, "crashed")
    if entry in (b"3", "3") and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(5)  # a kept worker dies in the middle of its job
    yield "pid", os.getpid()


def _results(job: Job) -> list[tuple[Any, Any]]:
    return list(result_iterator(job.wait(timeout=120)))


def test_a_worker_runs_several_tasks_of_its_job() -> None:
    with client_cluster("reuse-pids", slots=1):
        job = Job().run(input=[f"raw://{i}" for i in range(40)], map=pid_map)
        pids = [pid for _key, pid in _results(job)]
        assert len(pids) == 40
        # Two nodes with one slot each: a handful of processes, not one per task.
        assert len(set(pids)) <= 6, Counter(pids)
        events = " ".join(e[2] for _o, e in job.events())
        assert events.count("DONE: [map:") == 40


def test_a_job_can_ask_for_a_process_per_task() -> None:
    with client_cluster("reuse-optout", slots=1):
        job = Job().run(input=[f"raw://{i}" for i in range(12)], map=pid_map,
                        reuse_worker=False)
        pids = [pid for _key, pid in _results(job)]
        assert len(pids) == 12 and len(set(pids)) == 12


def test_a_node_can_refuse_to_keep_workers() -> None:
    with client_cluster("reuse-node-off", slots=1, node_args=["--no-worker-reuse"]):
        job = Job().run(input=[f"raw://{i}" for i in range(12)], map=pid_map)
        pids = [pid for _key, pid in _results(job)]
        assert len(pids) == 12 and len(set(pids)) == 12


def test_each_task_gets_fresh_params_in_a_kept_worker() -> None:
    with client_cluster("reuse-params", slots=1):
        job = Job().run(input=[f"raw://{i}" for i in range(20)], map=counting_map,
                        params=Params(calls=0))
        assert sorted(v for _k, v in _results(job)) == [1] * 20


def test_a_kept_worker_that_dies_is_replaced_and_its_task_retried(tmp_path: Path) -> None:
    with client_cluster("reuse-crash", slots=1):
        job = Job().run(input=[f"raw://{i}" for i in range(8)], map=crash_once_map,
                        params=Params(dir=str(tmp_path)))
        assert len(_results(job)) == 8
        events = " ".join(e[2] for _o, e in job.events())
        assert "Worker died without output (exit code 5)" in events


def test_queued_tasks_never_run_more_than_the_slots_at_once(tmp_path: Path) -> None:
    with client_cluster("reuse-slots", slots=2):
        job = Job().run(input=[f"raw://{i}" for i in range(150)], map=overlap_map,
                        params=Params(dir=str(tmp_path)))
        counts = [v for _k, v in _results(job)]
        assert len(counts) == 150
        assert max(counts) <= 2, Counter(counts)
        events = " ".join(e[2] for _o, e in job.events())
        assert events.count("DONE: [map:") == 150
