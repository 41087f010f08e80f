"""Warm starts: a node forks the workers of jobs made by our client from a per-job zygote
(`disco.mapreduce.node.zygote`), the node's spare when the job's environment allows;
workers of any other run-worker script are spawned as ever.

The maps below run on the nodes and report what their process looks like; they are module
level so that the client ships this module (it imports nothing heavy at import time)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from runtime_fixtures import Cluster, classic_pack, client_cluster, wait_until

from disco.core import Job, result_iterator
from disco.mapreduce.node.supervisor import SPARE_ZYGOTE_HOME
from disco.mapreduce.node.warmstart import adoptable, warm_module
from disco.worker import RUN_WORKER

ZYGOTE_MODULE = "disco.mapreduce.node.zygote"


def describe_process_map(entry: Any, params: Any) -> Iterator[tuple[str, str]]:
    parent = open(f"/proc/{os.getppid()}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    yield "parent", parent
    yield "ppid", str(os.getppid())
    yield "own_group", str(os.getpgid(0) == os.getpid() and os.getsid(0) == os.getpid())
    yield "cwd", os.getcwd()
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass  # the listing's own descriptor, closed by now
    yield "fds", " ".join(targets)
    yield "env_master", os.environ.get("DISCO_MASTER", "")
    yield "env_mark", os.environ.get("WARM_MARK", "")
    yield "path", " ".join(sys.path[:2])


def crash_once_map(entry: Any, params: Any) -> Iterator[tuple[str, str]]:
    marker = os.path.join(params, "crashed")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)  # no output at all: "Worker died without output"
    yield "parent", open(f"/proc/{os.getppid()}/cmdline", "rb").read().decode(errors="replace")


def _zygotes(cluster: Cluster, spares: bool = False) -> list[psutil.Process]:
    """The nodes' job zygotes (with `spares`, their spare zygotes instead)."""
    found = []
    for proc in cluster.nodes.values():
        for p in proc.descendants():
            try:
                if p.ppid() == proc.pid and ZYGOTE_MODULE in " ".join(p.cmdline()) and \
                        p.cwd().endswith(SPARE_ZYGOTE_HOME) == spares:
                    found.append(p)
            except psutil.Error:
                pass
    return found


def _spare_pids(cluster: Cluster) -> set[int]:
    return {p.pid for p in _zygotes(cluster, spares=True)}


def _run_describe(jobenvs: dict[str, str] | None = None) -> tuple[Any, dict[str, list[str]]]:
    job = Job().run(input=["raw://a", "raw://b", "raw://c", "raw://d"], map=describe_process_map,
                    jobenvs=jobenvs or {})
    seen: dict[str, list[str]] = {}
    for key, value in result_iterator(job.wait(timeout=60)):
        seen.setdefault(key, []).append(value)
    return job, seen


def test_our_client_script_is_recognised_and_nothing_else(tmp_path: Path) -> None:
    script = tmp_path / RUN_WORKER
    script.write_text('#!/bin/sh\nexec "${DISCO_PYTHON:-python3}" -m disco.worker.classic.worker "$@"\n')
    assert warm_module(script) == "disco.worker.classic.worker"
    script.write_text('#!/bin/sh\nexec "${DISCO_PYTHON:-python3}" -S -B -u testworker.py\n')
    assert warm_module(script) is None
    script.write_text('#!/bin/sh\nexec "${DISCO_PYTHON:-python3}" -m x.y "$@"\necho more\n')
    assert warm_module(script) is None
    assert warm_module(tmp_path / "missing") is None


def test_a_task_worker_is_forked_from_the_jobs_zygote() -> None:
    with client_cluster("warm-fork") as cluster:
        job = Job().run(input=["raw://a", "raw://b", "raw://c", "raw://d"],
                        map=describe_process_map)
        results = job.wait(timeout=60)
        seen: dict[str, list[str]] = {}
        for key, value in result_iterator(results):
            seen.setdefault(key, []).append(value)
        zygotes = _zygotes(cluster)
        node_pids = {str(p.pid) for p in cluster.nodes.values()}
        job.purge()
    assert len(seen["parent"]) == 4
    assert all(ZYGOTE_MODULE in parent for parent in seen["parent"]), seen["parent"]
    assert not set(seen["ppid"]) & node_pids  # not the node's children
    assert {z.pid for z in zygotes} >= {int(p) for p in seen["ppid"]}
    assert seen["own_group"] == ["True"] * 4  # a session and process group of its own
    assert all(cwd.endswith(job.name) for cwd in seen["cwd"])  # the job home
    assert seen["env_master"] == [cluster.url] * 4
    # Nothing of the zygote's leaks into a worker: no socket (its line to the node).
    assert all("socket:" not in fds and "pipe:" in fds for fds in seen["fds"]), seen["fds"]


def test_a_job_takes_the_spare_zygote_and_a_new_spare_starts() -> None:
    with client_cluster("warm-spare") as cluster:
        wait_until(lambda: len(_spare_pids(cluster)) == 2, 30, "a spare zygote on each node")
        spares = _spare_pids(cluster)
        job, seen = _run_describe({"WARM_MARK": "marked"})
        # Each node's zygote for the job is its former spare, now in the job's home.
        assert {int(p) for p in seen["ppid"]} <= spares
        zygotes = _zygotes(cluster)
        assert {z.pid for z in zygotes} <= spares
        assert all(z.cwd().endswith(job.name) for z in zygotes)
        # The task sees the job's environment and home as a fresh start would give them.
        assert seen["env_mark"] == ["marked"] * 4
        assert seen["env_master"] == [cluster.url] * 4
        assert all(cwd.endswith(job.name) for cwd in seen["cwd"])
        for path, cwd in zip(seen["path"], seen["cwd"]):
            assert path.split() == [os.path.join(cwd, "lib"), cwd]
        wait_until(lambda: len(_spare_pids(cluster) - spares) == 2, 30, "new spares")
        job.purge()


def test_a_job_that_sets_a_start_up_variable_starts_its_own_zygote() -> None:
    assert adoptable({"PATH": "/bin"}, {"PATH": "/usr/bin", "DISCO_X": "1"})
    assert not adoptable({"PYTHONPATH": "/a"}, {"PYTHONPATH": "/b"})
    assert not adoptable({}, {"LD_PRELOAD": "x.so"})
    with client_cluster("warm-own") as cluster:
        wait_until(lambda: len(_spare_pids(cluster)) == 2, 30, "a spare zygote on each node")
        spares = _spare_pids(cluster)
        job, seen = _run_describe({"PYTHONWARNINGS": "ignore", "WARM_MARK": "own"})
        assert seen["env_mark"] == ["own"] * 4
        assert not {int(p) for p in seen["ppid"]} & spares
        assert all(ZYGOTE_MODULE in parent for parent in seen["parent"])
        assert _spare_pids(cluster) == spares  # the spares wait for another job
        job.purge()


def test_a_crashing_warm_worker_is_retried(tmp_path: Path) -> None:
    with client_cluster("warm-crash") as cluster:
        job = Job().run(input=["raw://x"], map=crash_once_map, params=str(tmp_path))
        results = job.wait(timeout=60)
        out = list(result_iterator(results))
        text = cluster.event_text(job.name)
        job.purge()
    assert (tmp_path / "crashed").exists()
    assert len(out) == 1 and ZYGOTE_MODULE in out[0][1]
    assert "Worker died without output (exit code 3)" in text


def test_another_run_worker_script_is_spawned_as_before(tmp_path: Path) -> None:
    started = tmp_path / "started"
    started.mkdir()
    with client_cluster("warm-cold") as cluster:
        name = cluster.submit(classic_pack(["raw://one", "raw://two"],
                                           env={"TW_STARTED": str(started)}))
        status, results = cluster.wait(name)
        data = sorted(d for _lab, d in cluster.result_data(results))
        zygotes = _zygotes(cluster)
    assert status == "ready"
    assert data == [b"ONE\n", b"TWO\n"]
    # Both map tasks ran the test worker (its shuffle tasks too).
    assert len([p for p in started.iterdir() if p.name.startswith("map-")]) == 2
    assert zygotes == []  # the spares stay spares
