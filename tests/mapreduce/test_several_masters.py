"""Two masters over one node pool (docs/mapreduce.md, "Several masters"), real processes on
loopback: two nodes of 2 slots serve both masters, 1 slot each.

- a job on each master; master 0 is killed with SIGKILL in the middle: master 1's job ends
  with the right results and not one of its tasks failed or ran again; master 0, started
  again on its data folder, resumes its job to the right results too;
- all along, no node ever runs more than one worker of a master at once (its share), and
  the nodes did run both masters' tasks side by side;
- DDFS is one: a tag pushed through master 1 (which passes DDFS on to master 0) is read
  through master 0 and the other way round, and a job on master 1 reads a `tag://` input and
  saves its results in a tag.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from pool_fixtures import Pool
from runtime_fixtures import Cluster, pipeline_pack, wait_until

from disco.ddfs import DDFS
from disco.error import CommError
from disco.mapreduce.master.jobnames import instance_of
from disco.settings import DiscoSettings

PIPELINE = [["map", "split"], ["reduce", "group_all"]]
ENV = {"TW_SLEEP": "0.7", "TW_REDUCE_DELAY": "0.5"}


def _inputs(tag: str, n: int = 8) -> tuple[list[str], bytes]:
    lines = [f"{tag} line {i} of input {k}" for k in range(n) for i in range(2)]
    inputs = ["raw://" + "\n".join(lines[k * 2:(k + 1) * 2]) for k in range(n)]
    return inputs, b"".join(line.upper().encode() + b"\n" for line in sorted(lines))


@pytest.fixture()
def pool() -> Iterator[Pool]:
    p = Pool(Path(tempfile.mkdtemp(prefix="mr-pool-")), masters=2, nodes=2, slots=2,
             node_args=["--no-worker-reuse"])  # a worker lives as long as its task
    try:
        yield p.start()
    finally:
        p.stop()


class WorkerCensus:
    """Samples the workers running on each node, by job (a worker's working directory is its
    job home, DATA/<host>/<hh>/<job>), and keeps the most seen at once."""

    def __init__(self, pool: Pool, jobs: list[str]) -> None:
        self.roots = {host: str(pool.data(host).resolve()) for host in pool.node_hosts}
        self.jobs = jobs
        self.most: Counter[tuple[str, str]] = Counter()
        self.together = 0  # samples where a node ran tasks of two jobs at once
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _sample(self) -> Counter[tuple[str, str]]:
        now: Counter[tuple[str, str]] = Counter()
        for p in psutil.process_iter(["cwd", "cmdline"]):
            cwd, cmd = p.info.get("cwd") or "", p.info.get("cmdline") or []
            if not any("testworker.py" in part for part in cmd):
                continue
            for host, root in self.roots.items():
                if cwd.startswith(root + "/"):
                    for job in self.jobs:
                        if cwd.endswith("/" + job):
                            now[(host, job)] += 1
        return now

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self._sample()
            for key, n in now.items():
                self.most[key] = max(self.most[key], n)
            if any(sum(1 for j in self.jobs if now[(h, j)]) > 1 for h in self.roots):
                self.together += 1
            time.sleep(0.03)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)


def _failures(view: Cluster, name: str) -> int:
    return sum(row[5] for row in view.get("jobinfo", name=name)["pipeline"])


def _check(view: Cluster, results: list[list[str]], expected: bytes) -> None:
    data = view.result_data(results)
    assert [lab for lab, _ in data] == [0]
    assert data[0][1] == expected


def test_one_master_dies_the_others_jobs_go_on(pool: Pool) -> None:
    a, b = pool.on(0), pool.on(1)
    inputs_a, expected_a = _inputs("alpha")
    inputs_b, expected_b = _inputs("beta")
    job_a = a.submit(pipeline_pack(inputs_a, PIPELINE, env=ENV, prefix="PoolA"))
    job_b = b.submit(pipeline_pack(inputs_b, PIPELINE, env=ENV, prefix="PoolB"))
    # Job names say which master made them; neither master knows the other's job.
    assert (instance_of(job_a, 2), instance_of(job_b, 2)) == (0, 1)
    assert job_b not in [row[2] for row in a.get("joblist")]
    census = WorkerCensus(pool, [job_a, job_b])
    try:
        # Both masters' maps under way on the nodes, then master 0 dies as a machine does.
        wait_until(lambda: census.most[(pool.node_hosts[0], job_a)]
                   and census.most[(pool.node_hosts[0], job_b)], 30, "both jobs' workers")
        assert a.get("jobinfo", name=job_a)["active"] == "active"
        pool.master_procs[0].kill9()
        status, results = b.wait(job_b, timeout=60)
        assert status == "ready", b.event_text(job_b)
        _check(b, results, expected_b)
        # Untouched: no task of master 1's job failed or was handed out again.
        assert _failures(b, job_b) == 0, b.event_text(job_b)
        assert not [m for _t, _h, m in b.events(job_b) if "WARNING" in m or "ERROR" in m]

        # Master 0 back on its data folder: its job resumes and ends right.
        pool.start_master_at(0, log_name="master0-again.log")
        a = pool.on(0)
        status, results = a.wait(job_a, timeout=60)
        assert status == "ready", a.event_text(job_a)
        _check(a, results, expected_a)
        assert "Resumed after a master restart" in a.event_text(job_a)
    finally:
        census.stop()
    # Each master's share of a node is 1 of its 2 slots, and it never had more running there.
    assert census.most and max(census.most.values()) == 1, census.most
    assert census.together > 0, "the nodes never ran both masters' tasks side by side"


def _ddfs(pool: Pool, i: int) -> DDFS:
    settings = DiscoSettings(DISCO_MASTER=pool.urls[i], DISCO_PORT=pool.port,
                             DDFS_PUT_PORT=pool.put_port,
                             DISCO_CLUSTER_TOKEN=pool.token, DISCO_SETTINGS_FILE=os.devnull,
                             DISCO_EVENTS="")
    return DDFS(pool.urls[i], settings=settings)


def test_one_ddfs_through_every_master(pool: Pool) -> None:
    via_a, via_b = _ddfs(pool, 0), _ddfs(pool, 1)
    via_b.push("pool:words", [(b"x y\nz\n", "part1")])
    assert via_a.exists("pool:words")
    assert "pool:words" in via_a.list("pool:")
    via_a.setattr("pool:words", "who", "alpha")
    assert via_b.getattr("pool:words", "who") == "alpha"
    blobs = via_a.get("pool:words")["urls"]
    assert blobs == via_b.get("pool:words")["urls"] and len(blobs) == 1

    # A job on master 1 reads the tag and saves its results in a tag, both at master 0.
    b = pool.on(1)
    name = b.submit(pipeline_pack(["tag://pool:words"], PIPELINE, prefix="PoolTag",
                                  save_results=True))
    status, results = b.wait(name, timeout=60)
    assert status == "ready", b.event_text(name)
    tag = f"disco:results:{name}"
    assert results == [[f"tag://{tag}"]]
    assert via_a.exists(tag)
    [[url]] = via_a.get(tag)["urls"]
    assert b.fetch(url) == b"X Y\nZ\n"

    via_b.delete("pool:words")
    assert not via_a.exists("pool:words")

    # Tag tokens pass through a master that is not the authority, and so do refusals.
    via_b.push("pool:secret", [(b"s\n", "part1")], token="r")
    assert len(via_a.get("pool:secret", token="r")["urls"]) == 1
    with pytest.raises(CommError) as refused:
        via_b.get("pool:secret")
    assert refused.value.code == 401


def test_a_dead_ddfs_authority_is_a_clear_503(pool: Pool) -> None:
    pool.master_procs[0].kill9()
    resp = pool.http.get(f"{pool.urls[1]}/ddfs/tags")
    assert resp.status_code == 503
    assert "DDFS authority" in resp.text
