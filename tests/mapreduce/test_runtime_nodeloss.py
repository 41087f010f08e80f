"""A node dies (SIGKILL, with its workers) during a job: its tasks run on the other node, and
outputs that died with it are made again. Each test gets a cluster of its own."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runtime_fixtures import Cluster, pipeline_pack, wait_until  # noqa: E402

from disco.mapreduce.urls import url_host  # noqa: E402


@pytest.fixture()
def cluster() -> Iterator[Cluster]:
    c = Cluster(Path(tempfile.mkdtemp(prefix="mr-nodeloss-")), nodes=2, slots=2)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def test_tasks_of_a_killed_node_finish_on_the_other(cluster: Cluster, tmp_path: Path) -> None:
    node1, node2 = cluster.node_hosts
    started = tmp_path / "started"
    started.mkdir()
    words = [f"w{i}" for i in range(6)]
    name = cluster.submit(pipeline_pack([f"raw://{w}" for w in words],
                                        [["map", "split"], ["reduce", "group_all"]],
                                        env={"TW_SLEEP": "1.5", "TW_STARTED": str(started)}))
    wait_until(lambda: any(p.name.endswith(node2) for p in started.iterdir()), 20,
               "a task to start on the second node")
    cluster.nodes[node2].kill9()
    killed_at = time.monotonic()
    status, results = cluster.wait(name, timeout=60)
    events = cluster.events(name)
    text = "\n".join(f"{h}: {m}" for _ts, h, m in events)
    assert status == "ready", text + cluster.logs()
    # Every input went through exactly once, although some maps ran twice.
    assert cluster.result_data(results) == [(0, "".join(f"{w.upper()}\n" for w in words).encode())]
    assert f"node {node2} stopped responding" in text
    assert url_host(results[0][0]) == node1
    assert time.monotonic() - killed_at < 30
    rerun = [m for _ts, h, m in events if f"failed on {node2}" in m]
    assert rerun, text
    info = cluster.get("nodeinfo")
    assert info[node2]["connected"] is False and info[node1]["connected"] is True


def test_outputs_lost_with_a_node_are_made_again(cluster: Cluster) -> None:
    node1, node2 = cluster.node_hosts
    name = cluster.submit(pipeline_pack([f"raw://m{i}" for i in range(4)],
                                        [["map", "split"], ["reduce", "group_all"]],
                                        env={"TW_REDUCE_DELAY": "2"}))

    def reduce_running() -> bool:
        stages = {row[0]: row for row in cluster.get("jobinfo", name=name)["pipeline"]}
        return stages["map"][4] == 4 and stages["reduce"][3] == 1

    wait_until(reduce_running, 20, "the maps to finish and the reduce to start")
    map_hosts = {url_host(u) for [u] in cluster.get("get_stageresults", name=name, stage="map")}
    assert map_hosts == {node1, node2}  # some map outputs live on the node about to die
    cluster.nodes[node2].kill9()
    status, results = cluster.wait(name, timeout=60)
    text = cluster.event_text(name)
    assert status == "ready", text + cluster.logs()
    assert cluster.result_data(results) == [(0, b"M0\nM1\nM2\nM3\n")]
    assert "Running map:" in text and " again: " in text
    assert {url_host(u) for [u] in cluster.get("get_stageresults", name=name, stage="map")} == {node1}
