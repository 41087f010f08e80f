"""Faults a job survives or dies of, on a real master and two real nodes: crashing, failing,
FATAL, garbage-printing and silent workers, malformed job packs, kill_job and purge_job."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runtime_fixtures import Cluster, classic_pack, pipeline_pack, wait_until  # noqa: E402

from disco.jobpack import JobPack  # noqa: E402
from disco.mapreduce.urls import job_path  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(Path(tempfile.mkdtemp(prefix="mr-faults-")), nodes=2, slots=2,
                node_args=["--worker-start-timeout", "3"])
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture()
def max_failures(cluster: Cluster) -> Iterator[callable]:
    """Set max_failure_rate for one test, and put it back afterwards."""
    def set_rate(n: int) -> None:
        cluster.post("save_settings", {"max_failure_rate": n})
    yield set_rate
    cluster.post("save_settings", {"max_failure_rate": 100})


def test_worker_that_crashes_once_is_retried(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "crashed"
    name = cluster.submit(pipeline_pack(["raw://again"], [["map", "split"]],
                                        env={"TW_MODE": "crash_once", "TW_MARKER": str(marker)}))
    status, results = cluster.wait(name)
    events = cluster.event_text(name)
    assert status == "ready", events
    assert marker.exists()
    assert cluster.result_data(results) == [(0, b"AGAIN\n")]
    assert "WARNING: [map:0] Worker died without output (exit code 3)" in events
    assert "Task map:0 failed on" in events and "retrying in" in events
    [failed_on] = [e[1] for e in cluster.events(name) if "Worker died" in e[2]]
    [done_on] = [e[1] for e in cluster.events(name) if e[2].startswith("DONE: [map:0]")]
    assert done_on != failed_on  # the retry went to the other node
    assert cluster.get("jobinfo", name=name)["pipeline"] == [["map", 0, 0, 0, 1, 1]]


def test_fatal_kills_the_job_with_its_message(cluster: Cluster) -> None:
    name = cluster.submit(pipeline_pack(["raw://a", "raw://b"], [["map", "split"]],
                                        env={"TW_MODE": "fatal"}))
    status, results = cluster.wait(name)
    assert (status, results) == ("dead", [])
    last = cluster.events(name)[-1][2]
    assert last.startswith("FATAL: [map:") and "boom: the job cannot go on" in last
    assert cluster.get("jobinfo", name=name)["active"] == "dead"


def test_garbage_output_fails_the_task_with_last_words(cluster: Cluster, max_failures) -> None:
    max_failures(0)  # the first failure is one too many: no retries
    name = cluster.submit(pipeline_pack(["raw://g"], [["map", "split"]], env={"TW_MODE": "garbage"}))
    status, _results = cluster.wait(name)
    assert status == "dead"
    events = cluster.event_text(name)
    assert "Worker died. Last words:\nthis is not the worker protocol" in events
    assert "cannot parse the worker's output" in events
    assert cluster.events(name)[-1][2].startswith("ERROR: [map:0] Task failed 1 times")


def test_a_task_that_keeps_failing_kills_its_job(cluster: Cluster, max_failures) -> None:
    max_failures(2)
    name = cluster.submit(pipeline_pack(["raw://e"], [["map", "split"]],
                                        env={"TW_MODE": "error_always"}))
    status, _results = cluster.wait(name)
    assert status == "dead"
    events = cluster.events(name)
    assert sum("this task always fails" in m for _ts, _h, m in events) == 3
    assert "failed 3 times; at most 2 failures are allowed" in events[-1][2]


def test_a_worker_that_never_says_worker_is_killed(cluster: Cluster, max_failures,
                                                   tmp_path: Path) -> None:
    max_failures(0)
    name = cluster.submit(pipeline_pack(["raw://s"], [["map", "split"]], env={"TW_MODE": "silent"}))
    status, _results = cluster.wait(name, timeout=30)
    assert status == "dead"
    assert "did not announce itself (WORKER) within 3 s" in cluster.event_text(name)
    # No worker of that job survives.
    home = str(cluster.root)
    wait_until(lambda: not any((p.info.get("cwd") or "").startswith(home) and name in p.info["cwd"]
                               for p in psutil.process_iter(["cwd"])), 10, "the worker to go")


def test_malformed_job_packs_are_refused_and_the_master_carries_on(cluster: Cluster) -> None:
    good = pipeline_pack(["raw://fine"], [["map", "split"]])
    bad_json = bytearray(good)
    bad_json[128] = ord("}")  # the jobdict no longer parses
    no_pipeline = JobPack({"prefix": "x", "worker": "w", "pipeline": [["m", "nonsense"]],
                           "inputs": []}, version=2).dumps()
    bad_prefix = classic_pack(["raw://x"], prefix="a/b")
    for body in (b"", b"not a job pack at all", good[:100], b"\0" * 200, bytes(bad_json),
                 no_pipeline, bad_prefix):
        resp = cluster.http.post(f"{cluster.url}/disco/job/new", content=body)
        assert resp.status_code == 200
        reply = resp.json()
        assert reply[0] == "error" and isinstance(reply[1], str) and reply[1], (body[:40], reply)
    name = cluster.submit(good)
    assert cluster.wait(name)[0] == "ready"


def test_kill_job_stops_its_workers(cluster: Cluster, tmp_path: Path) -> None:
    started = tmp_path / "started"
    started.mkdir()
    name = cluster.submit(pipeline_pack([f"raw://{i}" for i in range(3)], [["map", "split"]],
                                        env={"TW_SLEEP": "60", "TW_STARTED": str(started)}))
    markers = wait_until(lambda: list(started.iterdir()) if len(list(started.iterdir())) == 3 else None,
                         60, "the three tasks to start")  # slow only on a loaded machine
    pids = [int(m.read_text()) for m in markers]
    assert all(psutil.pid_exists(p) for p in pids)
    assert cluster.get("jobinfo", name=name)["pipeline"][0][3] == 3  # three running
    assert cluster.post("kill_job", name) == ""
    assert cluster.post("get_results", [0, [name]]) == [[name, ["dead", []]]]
    wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                               for p in pids), 10, "the workers to be killed")
    assert cluster.events(name)[-1][2] == "ERROR: Job killed on request"
    assert cluster.get("jobinfo", name=name)["pipeline"][0][3] == 0


def test_purge_job_deletes_its_data_on_the_nodes(cluster: Cluster) -> None:
    name = cluster.submit(pipeline_pack([f"raw://{i}" for i in range(4)], [["map", "split"]]))
    assert cluster.wait(name)[0] == "ready"
    homes = [cluster.data(h) / job_path(h, name) for h in cluster.node_hosts]
    assert all(home.is_dir() for home in homes)  # tasks ran on both nodes
    assert cluster.post("purge_job", name) == ""
    wait_until(lambda: not any(home.exists() for home in homes), 10, "the job homes to go")
    assert cluster.post("get_results", [0, [name]]) == [[name, ["unknown job", []]]]
    assert cluster.http.get(f"{cluster.url}/disco/ctrl/jobinfo", params={"name": name}).status_code == 404


def test_a_job_whose_worker_is_missing_dies_at_once(cluster: Cluster) -> None:
    name = cluster.submit(pipeline_pack(["raw://m"], [["map", "split"]], worker="no-such-worker"))
    status, _results = cluster.wait(name)
    assert status == "dead"
    last = cluster.events(name)[-1][2]
    assert last.startswith("FATAL: [map:0] cannot run the job's worker 'no-such-worker'")
