"""The `mapreduce` framework: the service manager deploys a Disco master and nodes, and a
Disco user's word count runs on it unchanged."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from sm_fixtures import ServiceManager, cluster_processes, listening_on, wait_state

pytestmark = pytest.mark.slow

WORDCOUNT = textwrap.dedent("""
    import sys
    from disco.core import Job, result_iterator

    def map(line, params):
        for word in line.split():
            yield word, 1

    def reduce(iter, params):
        from disco.util import kvgroup
        for word, counts in kvgroup(sorted(iter)):
            yield word, sum(counts)

    if __name__ == "__main__":
        inputs = ["raw://" + line for line in sys.argv[1:]]
        job = Job().run(input=inputs, map=map, reduce=reduce, partitions=2)
        for word, count in result_iterator(job.wait()):
            print(word, count)
""")


def assert_wordcount(master_url: str, token: str, folder: Path, timeout: float = 120) -> None:
    """A Disco user's word count, as a script of its own, on the cluster: the right counts."""
    lines = ["the quick brown fox", "jumps over the lazy dog", "the end", "fox and dog"]
    script = folder / "count_words.py"
    script.write_text(WORDCOUNT)
    run = subprocess.run([sys.executable, str(script), *lines], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "DISCO_MASTER": master_url, "DISCO_CLUSTER_TOKEN": token}, cwd=folder)
    assert run.returncode == 0, run.stderr[-3000:]
    counted = {word: int(n) for word, n in (line.split() for line in run.stdout.splitlines())}
    assert counted == dict(collections.Counter(" ".join(lines).split()))


def test_wordcount_on_a_deployed_mapreduce_cluster(sm: ServiceManager, api: httpx.Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    made = api.post("/api/v1/clusters", json={"frameworks": [{"name": "mapreduce", "properties": {"slots": 2}}],
                                              "workers": 2})
    assert made.status_code == 201, made.text
    cluster = wait_state(api, made.json()["id"], {"ready", "failed"}, 60)
    assert cluster["state"] == "ready", cluster["status_reason"]
    master_url = cluster["outputs"]["frameworks"]["mapreduce"]["master_url"]
    assert cluster["outputs"]["frameworks"]["mapreduce"]["web_uis"]["master"].startswith(master_url)
    # The master answers only requests with the cluster's token, which its tenant gets from the API.
    token = api.get(f"/api/v1/clusters/{cluster['id']}/credentials").json()["frameworks"]["mapreduce"]["env"][
        "DISCO_CLUSTER_TOKEN"]
    bearer = {"Authorization": f"Bearer {token}"}
    nodes = httpx.get(f"{master_url}/disco/ctrl/nodeinfo", headers=bearer, trust_env=False).json()
    assert sorted(nodes) == sorted(n["host"] for n in cluster["nodes"] if n["role"] == "worker")
    assert all(info["max_workers"] == 2 for info in nodes.values())

    assert_wordcount(master_url, token, tmp_path)

    jobs = httpx.get(f"{master_url}/disco/ctrl/joblist", headers=bearer, trust_env=False).json()
    assert [status for _, status, _ in jobs] == ["ready"]

    hosts = [n["host"] for n in cluster["nodes"]]
    assert api.delete(f"/api/v1/clusters/{cluster['id']}").status_code == 202
    wait_state(api, cluster["id"], {"deleted"}, 60)
    assert cluster_processes(cluster["id"]) == [] and listening_on(hosts) == []


def test_two_masters_over_one_set_of_nodes(sm: ServiceManager, api: httpx.Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`masters: 2`: two masters on the master node (ports 8989 and 8990), every node serving
    both with one of its two slots each; a word count runs through the second master."""
    made = api.post("/api/v1/clusters", json={"frameworks": [{"name": "mapreduce", "properties": {"slots": 2}}],
                                              "workers": 2, "masters": 2})
    assert made.status_code == 201, made.text
    cluster = wait_state(api, made.json()["id"], {"ready", "failed"}, 60)
    assert cluster["state"] == "ready", cluster["status_reason"]
    outputs = cluster["outputs"]["frameworks"]["mapreduce"]
    urls = outputs["master_urls"].split(",")
    assert len(urls) == 2 and urls[0] == outputs["master_url"] and urls[0] != urls[1]
    assert sorted(outputs["web_uis"]) == ["master", "master-2"]
    token = api.get(f"/api/v1/clusters/{cluster['id']}/credentials").json()["frameworks"]["mapreduce"]["env"][
        "DISCO_CLUSTER_TOKEN"]
    bearer = {"Authorization": f"Bearer {token}"}
    workers = sorted(n["host"] for n in cluster["nodes"] if n["role"] == "worker")
    for url in urls:
        nodes = httpx.get(f"{url}/disco/ctrl/nodeinfo", headers=bearer, trust_env=False).json()
        assert sorted(nodes) == workers
        assert all(info["max_workers"] == 1 and info["connected"] for info in nodes.values())

    assert_wordcount(urls[1], token, tmp_path)
    jobs = [httpx.get(f"{url}/disco/ctrl/joblist", headers=bearer, trust_env=False).json() for url in urls]
    assert jobs[0] == [] and [status for _, status, _ in jobs[1]] == ["ready"]

    hosts = [n["host"] for n in cluster["nodes"]]
    assert api.delete(f"/api/v1/clusters/{cluster['id']}").status_code == 202
    wait_state(api, cluster["id"], {"deleted"}, 60)
    assert cluster_processes(cluster["id"]) == [] and listening_on(hosts) == []


@pytest.mark.parametrize(("frameworks", "refused"), [(["dask"], ["dask"]), (["mapreduce", "dask"], ["dask"]),
                                                     ([], [])])
def test_two_masters_refused_where_a_framework_runs_one(sm: ServiceManager, api: httpx.Client,
                                                        frameworks: list[str], refused: list[str]) -> None:
    before = api.get("/api/v1/clusters").json()
    made = api.post("/api/v1/clusters", json={"frameworks": frameworks, "workers": 1, "masters": 2})
    assert made.status_code == 422, made.text
    error = made.json()["error"]
    assert error["code"] == "masters_not_supported"
    assert sorted(error["details"]["max_masters"]) == refused
    assert all(name in error["message"] for name in refused)
    assert api.get("/api/v1/clusters").json() == before  # nothing stored
