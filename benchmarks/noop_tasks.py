"""No-op map tasks: how many tasks per second a master + 2 nodes on loopback get through.

Disco's target: 50,000 no-op map tasks finish in at most 60 s. The cluster is the one the
runtime tests use (`tests/mapreduce/runtime_fixtures.py`: master on 127.N.0.1, nodes on
127.N.0.2 and .3, temporary data folders, every process in its own group, all stopped in
`finally`). The job is submitted with the real client (`disco.core.Job`): N `raw://` inputs,
a map that returns nothing, no reduce. Time is submit -> ready.

CPU is accounted per role from /proc (psutil): the master, the node supervisors, and the
workers (every descendant of a node, live or already reaped, so forks of a zygote count too).

    .venv/bin/python benchmarks/noop_tasks.py --tasks 2000
    .venv/bin/python benchmarks/noop_tasks.py            # 50,000: the PASS/MISS line

The baseline, in the same run, is the same cluster with nodes started `--no-worker-reuse`:
one worker process per task, as Disco ran them (still forked from the job's zygote).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "mapreduce"))

from runtime_fixtures import Cluster, client_cluster  # noqa: E402

TARGET_TASKS = 50_000
TARGET_SECONDS = 60.0


def _cpu(p: psutil.Process, with_reaped: bool) -> float:
    try:
        t = p.cpu_times()
    except psutil.Error:
        return 0.0
    own = t.user + t.system
    return own + (t.children_user + t.children_system if with_reaped else 0.0)


def cpu_by_role(cluster: Cluster) -> dict[str, float]:
    """Seconds of CPU: master, node supervisors, workers (reaped children + live ones)."""
    assert cluster.master is not None
    out = {"master": _cpu(psutil.Process(cluster.master.pid), True), "nodes": 0.0, "workers": 0.0}
    for proc in cluster.nodes.values():
        node = psutil.Process(proc.pid)
        t = node.cpu_times()
        out["nodes"] += t.user + t.system
        out["workers"] += t.children_user + t.children_system
        for child in proc.descendants():
            # A live zygote's reaped children are in its children_* times.
            out["workers"] += _cpu(child, True)
    return out


def run(tasks: int, slots: int, timeout: float, node_args: list[str] | None = None) -> dict[str, Any]:
    from disco.core import Job

    with client_cluster("noop-bench", nodes=2, slots=slots, node_args=node_args) as cluster:
        before = cpu_by_role(cluster)
        inputs = [f"raw://{i}" for i in range(tasks)]
        t0 = time.monotonic()
        job = Job(name="noop").run(input=inputs, map=lambda entry, params: [])
        submitted = time.monotonic() - t0
        job.wait(poll_interval=0.2, timeout=timeout)
        elapsed = time.monotonic() - t0
        after = cpu_by_role(cluster)
        cpu = {k: after[k] - before[k] for k in after}
    return {"tasks": tasks, "slots": slots, "seconds": elapsed, "submit_seconds": submitted,
            "tasks_per_s": tasks / elapsed, "cpu": cpu}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=TARGET_TASKS)
    p.add_argument("--slots", type=int, default=2, help="slots per node (default 2)")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--baseline-tasks", type=int, default=1000,
                   help="tasks for the baseline run, one worker process per task as Disco "
                        "ran them (nodes with --no-worker-reuse); 0 skips it")
    a = p.parse_args()
    print(f"machine: {os.cpu_count()} cores; master + 2 nodes x {a.slots} slots on loopback")
    base = None
    if a.baseline_tasks:
        base = run(a.baseline_tasks, a.slots, a.timeout, node_args=["--no-worker-reuse"])
        report("baseline, a process per task", base)
    r = run(a.tasks, a.slots, a.timeout)
    report("DISCO", r)
    if base is not None:
        print(f"ratio: {r['tasks_per_s'] / base['tasks_per_s']:.1f}x the tasks per second of "
              "a process per task")
    projected = TARGET_TASKS / r["tasks_per_s"]
    verdict = "PASS" if projected <= TARGET_SECONDS else "MISS"
    measured = "measured" if r["tasks"] >= TARGET_TASKS else "projected from this rate"
    print(f"{verdict}: 50000 tasks in {projected:.0f} s ({measured}); target {TARGET_SECONDS:.0f} s")


def report(label: str, r: dict[str, Any]) -> None:
    cpu = r["cpu"]
    print(f"{label}: {r['tasks']} no-op map tasks: {r['seconds']:.1f} s submit->ready "
          f"(submit {r['submit_seconds']:.1f} s), {r['tasks_per_s']:.0f} tasks/s")
    print("  CPU s (per task ms): " + ", ".join(
        f"{k} {v:.1f} ({1000 * v / r['tasks']:.2f})" for k, v in cpu.items()))


if __name__ == "__main__":
    main()
