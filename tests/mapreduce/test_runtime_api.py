"""The master's control API and web page, against a real master and two real nodes."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runtime_fixtures import Cluster, pipeline_pack  # noqa: E402

from disco.core import Disco  # noqa: E402
from disco.jobpack import JobPack  # noqa: E402
from disco.settings import DiscoSettings  # noqa: E402
from disco.mapreduce.urls import url_host  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(Path(tempfile.mkdtemp(prefix="mr-api-")), nodes=2, slots=2)
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def done_job(cluster: Cluster) -> str:
    name = cluster.submit(pipeline_pack(["raw://one", "raw://two"], [["map", "split"]],
                                        prefix="ApiJob"))
    status, _results = cluster.wait(name)
    assert status == "ready"
    return name


def test_version_joblist_and_jobinfo(cluster: Cluster, done_job: str) -> None:
    assert isinstance(cluster.http.get(f"{cluster.url}/disco/version").json(), str)
    entries = {name: (ts, status) for ts, status, name in cluster.get("joblist")}
    assert entries[done_job][1] == "ready" and isinstance(entries[done_job][0], int)
    assert done_job.startswith("ApiJob@")
    info = cluster.get("jobinfo", name=done_job)
    assert set(info) == {"timestamp", "active", "pipeline", "results", "inputs", "worker",
                         "hosts", "owner"}
    assert info["inputs"] == [[0, 0, "raw://one"], [0, 0, "raw://two"]]
    missing = cluster.http.get(f"{cluster.url}/disco/ctrl/jobinfo", params={"name": "nope@1:2:3"})
    assert missing.status_code == 404


def test_events(cluster: Cluster, done_job: str) -> None:
    raw = cluster.http.get(f"{cluster.url}/disco/ctrl/rawevents", params={"name": done_job})
    lines = [json.loads(line) for line in raw.text.splitlines()]
    assert all(len(e) == 3 and all(isinstance(x, str) for x in e) for e in lines)
    assert lines[-1][2].startswith("READY: Job done in")
    assert lines[0][1] == "master"
    tail = cluster.http.get(f"{cluster.url}/disco/ctrl/rawevents", params={"name": done_job},
                            headers={"Range": f"bytes={len(raw.content) - 10}-"})
    assert tail.status_code == 206 and raw.content.endswith(tail.content) and len(tail.content) == 10
    newest = cluster.get("jobevents", name=done_job, num=2)
    assert len(newest) == 2 and newest[0] == lines[-1]
    done = cluster.get("jobevents", name=done_job, num=100, filter="done:")
    assert len(done) == 2 and all("DONE: [map:" in m for _ts, _h, m in done)


def test_get_results_of_unknown_and_several_jobs(cluster: Cluster, done_job: str) -> None:
    replies = cluster.post("get_results", [10, [done_job, "Nothing@1:2:3"]])
    assert replies[0][0] == done_job and replies[0][1][0] == "ready" and len(replies[0][1][1]) == 2
    assert replies[1] == ["Nothing@1:2:3", ["unknown job", []]]


def test_stage_results_parameters_and_data_redirect(cluster: Cluster, done_job: str) -> None:
    stage = cluster.get("get_stageresults", name=done_job, stage="map")
    assert sorted(stage) == sorted(cluster.get("jobinfo", name=done_job)["results"][i:i + 1]
                                   for i in range(2))
    pack = cluster.http.get(f"{cluster.url}/disco/ctrl/parameters", params={"name": done_job})
    assert pack.content[:2] == b"\xd5\xc0"
    [url] = stage[0]
    host = url_host(url)
    path = url.split(f"dir://{host}/", 1)[1]
    moved = cluster.http.get(f"{cluster.url}/{path}")  # the master sends us to the node
    assert moved.status_code == 302
    assert moved.headers["location"] == f"http://{host}:{cluster.port}/{path}"
    assert cluster.http.get(moved.headers["location"]).text.startswith("0 disco://")
    assert httpx.get(moved.headers["location"], trust_env=False).status_code == 401


def test_nodeinfo_blacklist_and_whitelist(cluster: Cluster) -> None:
    node1, node2 = cluster.node_hosts
    info = cluster.get("nodeinfo")
    assert set(info) == {node1, node2}
    assert set(info[node1]) >= {"job_ok", "data_error", "error", "max_workers", "connected",
                                "blacklisted", "tasks", "diskfree", "diskused"}
    assert info[node1]["max_workers"] == 2 and info[node1]["connected"] is True
    assert cluster.post("blacklist", node1) == ""
    try:
        assert cluster.get("get_blacklist") == [node1]
        name = cluster.submit(pipeline_pack([f"raw://{i}" for i in range(4)], [["map", "split"]]))
        status, results = cluster.wait(name)
        assert status == "ready"
        assert {url_host(u) for [u] in results} == {node2}
    finally:
        cluster.post("whitelist", node1)
    assert cluster.get("get_blacklist") == []
    unknown = cluster.http.post(f"{cluster.url}/disco/ctrl/blacklist", content='"no-such-node"')
    assert unknown.status_code == 404


def test_config_table_sets_slots(cluster: Cluster) -> None:
    node1 = cluster.node_hosts[0]
    assert [node1, "2"] in cluster.get("load_config_table")
    # Disco's client checks the master's answer word for word ("table saved!").
    # (The token from the client's own settings, as a script may give it.)
    Disco(cluster.url, settings=DiscoSettings(DISCO_CLUSTER_TOKEN=cluster.token)).config = [[node1, "1"]]
    try:
        assert cluster.get("load_config_table") == [[node1, "1"]]
        assert cluster.get("nodeinfo")[node1]["max_workers"] == 1
    finally:
        assert cluster.post("save_config_table", []) == "table saved!"
    assert cluster.get("nodeinfo")[node1]["max_workers"] == 2
    bad = cluster.http.post(f"{cluster.url}/disco/ctrl/save_config_table", content='[["x"]]')
    assert bad.status_code == 400


def test_refused_job_packs_are_named_in_discos_words(cluster: Cluster) -> None:
    # Disco's clients and tests look for these phrases in the master's answer.
    size = JobPack.HEADER_SIZE
    named = JobPack({"prefix": "a/b", "worker": "w", "input": [], "map?": True}).dumps()
    whole = JobPack({"prefix": "Cut", "worker": "w", "input": ["raw://x"], "map?": True},
                    jobdata=b"0" * 64).dumps()
    cases = {
        "missing key": JobPack({}).dumps(),
        "invalid prefix": named,
        "invalid header": whole[:-65],  # the last section ends beyond the pack
    }
    # Sections that start before the header ends, by Disco's own header builder.
    bad_offsets = JobPack.header([size + 1, size + 2, size + 2, size + 2]) + b"0" * 3
    for phrase, pack in [*cases.items(), ("invalid header", bad_offsets)]:
        reply = cluster.http.post(f"{cluster.url}/disco/job/new", content=pack).json()
        assert reply[0] == "error" and reply[1].startswith(phrase), (phrase, reply)


def test_settings_and_refusing_new_jobs(cluster: Cluster) -> None:
    assert cluster.get("get_settings") == {"max_failure_rate": 100, "accept_new_jobs": 1}
    cluster.post("save_settings", {"max_failure_rate": "5", "accept_new_jobs": "0"})
    try:
        assert cluster.get("get_settings") == {"max_failure_rate": 5, "accept_new_jobs": 0}
        refused = cluster.http.post(f"{cluster.url}/disco/job/new",
                                    content=pipeline_pack(["raw://x"], [["map", "split"]]))
        assert refused.status_code == 403 and refused.json()[0] == "error"
    finally:
        cluster.post("save_settings", {"max_failure_rate": 100, "accept_new_jobs": 1})
    assert cluster.get("get_settings") == {"max_failure_rate": 100, "accept_new_jobs": 1}


def test_clean_job_forgets_it(cluster: Cluster) -> None:
    name = cluster.submit(pipeline_pack(["raw://c"], [["map", "split"]]))
    assert cluster.wait(name)[0] == "ready"
    assert cluster.post("clean_job", name) == ""
    assert cluster.post("get_results", [0, [name]]) == [[name, ["unknown job", []]]]
    assert name not in {n for _ts, _s, n in cluster.get("joblist")}


def test_web_pages(cluster: Cluster, done_job: str) -> None:
    index = cluster.http.get(f"{cluster.url}/")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert all(host in index.text for host in cluster.node_hosts)
    assert done_job in index.text
    page = cluster.http.get(f"{cluster.url}/ui/job", params={"name": done_job})
    assert page.status_code == 200
    assert "<h2>Stages</h2>" in page.text and ">map<" in page.text and "READY: Job done" in page.text
    assert cluster.http.get(f"{cluster.url}/ui/job", params={"name": "x@1:2:3"}).status_code == 404


def test_a_stopping_master_answers_the_requests_it_holds() -> None:
    # No node: the job never ends, so get_results holds its request for the full minute
    # asked, unless the master answers it when told to stop.
    lone = Cluster(Path(tempfile.mkdtemp(prefix="mr-held-")), nodes=0)
    try:
        lone.start()
        name = lone.submit(pipeline_pack(["raw://x"], [["map", "split"]], prefix="Held"))
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(lone.http.post, f"{lone.url}/disco/ctrl/get_results",
                               json=[60_000, [name]], timeout=60)
            time.sleep(0.5)  # the request is in the master's hands
            assert not held.done()
            assert lone.master is not None
            lone.master.stop()
            reply = held.result(timeout=30)
        assert reply.status_code == 200
        assert reply.json() == [[name, ["active", []]]]
    finally:
        lone.stop()
