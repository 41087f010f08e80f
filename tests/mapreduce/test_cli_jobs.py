"""`disco mr master|node` start the runtime; `disco jobs|wait|results|events|kill|purge|nodeinfo`
work on its jobs as Disco users know them."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime_fixtures import PYTHON, Proc, _free_port, _my_nets, wait_until

JOB = """
import sys
from disco.core import Job
job = Job(name="clijob").run(input=["raw://a b a", "raw://b c"], partitions=1,
                             map=lambda line, params: [(w, 1) for w in line.split()])
print(job.name)
"""


class MiniCluster:
    def __init__(self, root: Path) -> None:
        net = random.choice(_my_nets(range(91, 100)))
        self.master_host, self.node_host = f"127.{net}.0.1", f"127.{net}.0.2"
        self.port = _free_port([self.master_host, self.node_host])
        self.url = f"http://{self.master_host}:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCO_", "DDFS_"))}
        self.master = Proc([PYTHON, "-m", "disco.cli.main", "mr", "master", "--host", self.master_host,
                            "--port", str(self.port), "--data", str(root / "master")], root / "master.log", env)
        wait_until(lambda: _answers(f"{self.url}/disco/version"), 20, "master")
        self.node = Proc([PYTHON, "-m", "disco.cli.main", "mr", "node", "--master", self.url, "--host",
                          self.node_host, "--port", str(self.port), "--data", str(root / "node"), "--slots", "2"],
                         root / "node.log", env)
        wait_until(lambda: httpx.get(f"{self.url}/disco/ctrl/nodeinfo").json(), 20, "node registered")

    def stop(self) -> None:
        self.node.stop()
        self.master.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[MiniCluster]:
    mini = MiniCluster(tmp_path)
    try:
        yield mini
    finally:
        mini.stop()


def disco(cluster: MiniCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DISCO_MASTER": cluster.url, "DISCO_PORT": str(cluster.port), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "disco.cli.main", *args], capture_output=True, text=True,
                          timeout=90, env=env)


def test_job_verbs(cluster: MiniCluster, tmp_path: Path) -> None:
    env = {**os.environ, "DISCO_MASTER": cluster.url, "DISCO_PORT": str(cluster.port)}
    submitted = subprocess.run([sys.executable, "-c", JOB], capture_output=True, text=True, env=env, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    name = submitted.stdout.strip()
    assert name.startswith("clijob@")

    waited = disco(cluster, "wait", "@", "--timeout", "60")
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.startswith("dir://")
    results = disco(cluster, "results", "@?clijob")
    assert results.stdout.splitlines()[0] == "ready"
    jobs = json.loads(disco(cluster, "jobs", "--json").stdout)
    assert [(status, job) for _, status, job in jobs] == [("ready", name)]
    table = disco(cluster, "jobs").stdout  # the start as a local time, as events show it
    assert time.strftime("%Y/%m/%d %H:%M", time.localtime(jobs[0][0])) in table
    events = disco(cluster, "events", name).stdout
    assert "READY" in events
    nodes = json.loads(disco(cluster, "nodeinfo").stdout)
    assert nodes[cluster.node_host]["max_workers"] == 2

    assert disco(cluster, "purge", name).returncode == 0
    assert json.loads(disco(cluster, "jobs", "--json").stdout) == []
    missing = disco(cluster, "results", "@")
    assert missing.returncode == 2 and "no job matches" in missing.stderr


def test_unreachable_master(tmp_path: Path) -> None:
    port = _free_port(["127.0.0.1"])
    result = subprocess.run([sys.executable, "-m", "disco.cli.main", "jobs", "-M", f"http://127.0.0.1:{port}"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "error" in result.stderr and "Traceback" not in result.stderr
