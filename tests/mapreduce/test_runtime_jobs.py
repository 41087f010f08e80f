"""Jobs that succeed, on a real master and two real nodes: map-only, map then reduce, classic
job packs, a concurrent stage, data locality, and many small tasks."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runtime_fixtures import Cluster, classic_pack, pipeline_pack  # noqa: E402

from disco.mapreduce.urls import url_host  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(Path(tempfile.mkdtemp(prefix="mr-jobs-")), nodes=2, slots=3)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def test_map_only_job_over_raw_inputs(cluster: Cluster) -> None:
    words = ["alpha", "beta", "gamma"]
    name = cluster.submit(pipeline_pack([f"raw://{w}" for w in words], [["map", "split"]]))
    status, results = cluster.wait(name)
    assert status == "ready", cluster.event_text(name)
    assert len(results) == 3
    seen = []
    for [url] in results:
        assert url.startswith("dir://")
        host = url_host(url)
        assert host in cluster.node_hosts
        index = cluster.index(url)  # fetched over HTTP from the node that ran the task
        assert len(index) == 1
        label, data_url, size = index[0]
        assert label == 0 and url_host(data_url) == host
        assert data_url.startswith(f"disco://{host}/disco/{host}/")
        data = cluster.fetch(data_url)
        assert len(data) == size
        seen.append(data)
    assert sorted(seen) == sorted(w.upper().encode() + b"\n" for w in words)
    info = cluster.get("jobinfo", name=name)
    assert info["active"] == "ready"
    assert info["pipeline"] == [["map", 0, 0, 0, 3, 0]]
    assert sorted(info["results"]) == sorted(u for [u] in results)
    assert info["owner"] == "tests@runtime" and info["worker"] == "run-worker"
    assert set(info["hosts"]) <= set(cluster.node_hosts)
    assert cluster.events(name)[-1][2].startswith("READY: ")


def test_two_stage_job_feeds_map_outputs_to_the_reduce(cluster: Cluster) -> None:
    name = cluster.submit(pipeline_pack(["raw://b\na", "raw://d\nc", "raw://e"],
                                        [["map", "split"], ["reduce", "group_all"]]))
    status, results = cluster.wait(name)
    assert status == "ready", cluster.event_text(name)
    assert len(results) == 1
    assert cluster.result_data(results) == [(0, b"A\nB\nC\nD\nE\n")]
    map_results = sorted(u for [u] in cluster.get("get_stageresults", name=name, stage="map"))
    assert len(map_results) == 3
    [reduce_inputs] = [m for _ts, _h, m in cluster.events(name) if m.startswith("MSG: [reduce:")]
    assert sorted(reduce_inputs.split("inputs: ", 1)[1].split()) == map_results
    assert cluster.get("jobinfo", name=name)["pipeline"] == [["map", 0, 0, 0, 3, 0],
                                                             ["reduce", 0, 0, 0, 1, 0]]


def test_classic_job_with_a_partitioned_reduce(cluster: Cluster) -> None:
    lines = ["one", "two", "three", "four", "five", "six"]
    pack = classic_pack(["raw://" + "\n".join(lines[:3]), "raw://" + "\n".join(lines[3:])],
                        env={"TW_LABELS": "2"}, reduce=True, nr_reduces=2)
    name = cluster.submit(pack)
    status, results = cluster.wait(name)
    assert status == "ready", cluster.event_text(name)
    pipeline = cluster.get("jobinfo", name=name)["pipeline"]
    assert [row[0] for row in pipeline] == ["map", "map_shuffle", "reduce"]
    assert pipeline[0][4] == 2  # two maps
    assert pipeline[2][4] == 2  # one reduce per label
    assert len(results) == 2
    got = b"".join(data for _label, data in cluster.result_data(results)).split()
    assert sorted(got) == sorted(w.upper().encode() for w in lines)


def test_concurrent_stage_starts_before_its_predecessor_ends(cluster: Cluster) -> None:
    pack = pipeline_pack(["raw://x", "raw://y", "raw://z"],
                         [["map", "split"], ["reduce", "group_all", True]],
                         env={"TW_SLEEP_STEP": "0.8"})
    name = cluster.submit(pack)
    status, results = cluster.wait(name)
    assert status == "ready", cluster.event_text(name)
    assert cluster.result_data(results) == [(0, b"X\nY\nZ\n")]
    messages = [m for _ts, _h, m in cluster.events(name)]
    more = messages.index("MSG: [reduce:3] more inputs to come")
    assert more < messages.index(next(m for m in messages if m.startswith("Stage map finished")))


def test_tasks_run_where_their_input_is(cluster: Cluster) -> None:
    node2 = cluster.node_hosts[1]
    folder = cluster.data(node2) / "inputs"
    folder.mkdir(parents=True)
    urls = []
    for i in range(3):
        (folder / f"part{i}").write_text(f"local data {i}\n")
        urls.append(f"disco://{node2}/disco/inputs/part{i}")
    name = cluster.submit(pipeline_pack(urls, [["map", "split"]]))
    status, results = cluster.wait(name)
    assert status == "ready", cluster.event_text(name)
    assert {url_host(u) for [u] in results} == {node2}
    assert cluster.get("jobinfo", name=name)["hosts"] == [node2]
    assert sorted(d for _l, d in cluster.result_data(results)) == [
        f"LOCAL DATA {i}\n".encode() for i in range(3)]


def test_inputs_per_task_packs_small_inputs_into_fewer_map_tasks(cluster: Cluster) -> None:
    words = [f"word{i}" for i in range(7)]
    name = cluster.submit(pipeline_pack([f"raw://{w}" for w in words],
                                        [["map", "split"], ["reduce", "group_all"]],
                                        scheduler={"inputs_per_task": 3}))
    status, results = cluster.wait(name)
    assert status == "ready", cluster.event_text(name)
    assert cluster.get("jobinfo", name=name)["pipeline"] == [["map", 0, 0, 0, 3, 0],
                                                             ["reduce", 0, 0, 0, 1, 0]]
    assert "Stage map started with 3 tasks" in cluster.event_text(name)
    expected = "".join(sorted(f"{w.upper()}\n" for w in words)).encode()
    assert cluster.result_data(results) == [(0, expected)]


def test_jobs_run_side_by_side(cluster: Cluster) -> None:
    names = [cluster.submit(pipeline_pack([f"raw://{j}{i}" for i in range(4)], [["map", "split"]]))
             for j in "pq"]
    deadline = time.monotonic() + 60
    while True:
        replies = cluster.post("get_results", [2000, names])
        if all(status != "active" for _n, (status, _r) in replies):
            break
        assert time.monotonic() < deadline
    assert [(n, s, len(r)) for n, (s, r) in replies] == [(names[0], "ready", 4), (names[1], "ready", 4)]
    listed = {n: s for _ts, s, n in cluster.get("joblist")}
    assert listed[names[0]] == listed[names[1]] == "ready"


def test_two_hundred_noop_tasks(cluster: Cluster) -> None:
    started = time.monotonic()
    name = cluster.submit(pipeline_pack([f"raw://{i}" for i in range(200)], [["map", "split"]],
                                        env={"TW_MODE": "noop"}))
    status, results = cluster.wait(name, timeout=120)
    took = time.monotonic() - started
    print(f"\n200 no-op tasks on 2 nodes x {cluster.slots} slots took {took:.2f} s")
    assert status == "ready", cluster.event_text(name)
    assert results == []  # no-op tasks declare no outputs
    assert cluster.get("jobinfo", name=name)["pipeline"] == [["map", 0, 0, 0, 200, 0]]


def test_a_job_reads_the_results_of_another(cluster: Cluster) -> None:
    first = cluster.submit(pipeline_pack(["raw://a\nb", "raw://c"], [["map", "split"]],
                                         env={"TW_LABELS": "2"}))
    status, results = cluster.wait(first)
    assert status == "ready"
    # dir:// inputs: the master reads their indexes, and `split` makes a task per label.
    second = cluster.submit(pipeline_pack([[0, 0, u] for [u] in results], [["map", "split"]]))
    status, results2 = cluster.wait(second)
    assert status == "ready", cluster.event_text(second)
    assert cluster.get("jobinfo", name=second)["pipeline"] == [["map", 0, 0, 0, 3, 0]]
    assert sorted(data for _label, data in cluster.result_data(results2)) == [b"A\n", b"B\n", b"C\n"]


def test_a_dead_replica_is_skipped_for_the_next(cluster: Cluster) -> None:
    node1 = cluster.node_hosts[0]
    (cluster.data(node1) / "replica").write_text("second replica\n")
    nowhere = f"127.{cluster.net}.0.250"  # no node there: the connection is refused
    entry = [0, 0, f"disco://{nowhere}/disco/replica", f"disco://{node1}/disco/replica"]
    name = cluster.submit(pipeline_pack([entry], [["map", "split"]]))
    status, results = cluster.wait(name)
    assert status == "ready", cluster.event_text(name)
    assert cluster.result_data(results) == [(0, b"SECOND REPLICA\n")]


def test_processes_a_worker_leaves_behind_are_killed(cluster: Cluster, tmp_path: Path) -> None:
    name = cluster.submit(pipeline_pack(["raw://k"], [["map", "split"]],
                                        env={"TW_MODE": "spawn_child", "TW_STARTED": str(tmp_path)}))
    status, _results = cluster.wait(name)
    assert status == "ready", cluster.event_text(name)
    child = int((tmp_path / "child-0").read_text())

    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 10
    while not gone():
        assert time.monotonic() < deadline, "the worker's child outlived its task"
        time.sleep(0.1)
