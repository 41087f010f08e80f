"""A master killed with SIGKILL and started again on its data folder and port loses no job.

Real processes: a master and two nodes on loopback (runtime_fixtures.Cluster), a job of a few
seconds (maps that sleep, then a reduce that sleeps), Disco's own client waiting in
`Disco.wait()` in a thread the whole time. The master is killed right after the submission,
in the middle of the map stage and in the middle of the reduce, kept down for a while, and
started again: the wait returns the same results as a run nobody disturbed, and a finished
job is still listed (with its results) after another restart.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_fixtures import Cluster, pipeline_pack, wait_until

from disco.core import Disco
from disco.settings import DiscoSettings

LINES = [f"line {i} of input {n}" for n in range(8) for i in range(3)]
INPUTS = ["raw://" + "\n".join(LINES[n * 3:(n + 1) * 3]) for n in range(8)]
EXPECTED = b"".join(line.upper().encode() + b"\n" for line in sorted(LINES))
# 8 maps on 4 slots of ~0.8 s each, then a reduce of ~2.5 s: about 4-5 s undisturbed.
ENV = {"TW_SLEEP": "0.8", "TW_REDUCE_DELAY": "2.5"}
PIPELINE = [["map", "split"], ["reduce", "group_all"]]
DOWN_SECONDS = 2.0  # how long the master stays dead: the client's wait must ride it out


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(Path(tempfile.mkdtemp(prefix="mr-restart-")))
    try:
        yield c.start()
    finally:
        c.stop()


class Waiter:
    """Disco.wait() of a job, in a thread, as a user's script blocks in it."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        settings = DiscoSettings(DISCO_MASTER=cluster.url, DISCO_PORT=cluster.port,
                                 DISCO_CLUSTER_TOKEN=cluster.token,
                                 DISCO_SETTINGS_FILE=os.devnull, DISCO_EVENTS="")
        self.disco = Disco(cluster.url, settings=settings)
        self.cluster = cluster
        self.name = name
        self.results: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.results = self.disco.wait(self.name, poll_interval=0.5, timeout=120,
                                           down_timeout=60)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def join(self, timeout: float = 120) -> Any:
        self.thread.join(timeout)
        if self.thread.is_alive() or self.error is not None:
            # What the master and nodes did, for whoever reads the failure.
            print(f"==== events of {self.name}\n{_events(self.cluster, self.name)}\n"
                  f"{self.cluster.logs()}")
            for host, proc in self.cluster.nodes.items():
                print(host, [(p.pid, p.status(), p.cmdline()[-3:]) for p in proc.descendants()])
            print(self.cluster.get("jobinfo", name=self.name)["pipeline"])
            print("nodeinfo", self.cluster.get("nodeinfo"))
            for host in self.cluster.nodes:
                try:
                    print(host, self.cluster.http.get(f"http://{host}:{self.cluster.port}/",
                                                      timeout=5).text[:4000])
                except Exception as exc:  # noqa: BLE001
                    print(host, exc)
        assert not self.thread.is_alive(), "Disco.wait() did not return"
        if self.error is not None:
            raise self.error
        return self.results


def _pipeline(cluster: Cluster, name: str) -> dict[str, list[int]]:
    """stage -> [pending, waiting, running, done, failed]"""
    return {row[0]: row[1:] for row in cluster.get("jobinfo", name=name)["pipeline"]}


def _restart(cluster: Cluster, tag: str) -> None:
    assert cluster.master is not None
    cluster.master.kill9()
    time.sleep(DOWN_SECONDS)
    cluster.start_master(log_name=f"master-{tag}.log")


def _check_results(cluster: Cluster, results: list[list[str]]) -> None:
    data = cluster.result_data(results)
    assert [lab for lab, _ in data] == [0]
    assert data[0][1] == EXPECTED


def _run(cluster: Cluster, kill_when: Callable[[str], bool] | None, tag: str
         ) -> tuple[str, list[list[str]]]:
    name = cluster.submit(pipeline_pack(INPUTS, PIPELINE, env=ENV, prefix=f"Restart{tag}"))
    waiter = Waiter(cluster, name)
    if kill_when is not None:
        wait_until(lambda: kill_when(name), 60, f"the moment to kill the master ({tag})",
                   interval=0.05)
        assert waiter.thread.is_alive(), "the job ended before the master was killed"
        _restart(cluster, tag)
    results = waiter.join()
    _check_results(cluster, results)
    return name, results


def _events(cluster: Cluster, name: str) -> str:
    return cluster.event_text(name)


def test_undisturbed_run(cluster: Cluster) -> None:
    _run(cluster, None, "none")


def test_kill_right_after_submit(cluster: Cluster) -> None:
    name, _ = _run(cluster, lambda _name: True, "submit")
    assert "Resumed after a master restart" in _events(cluster, name)


def test_kill_mid_map(cluster: Cluster) -> None:
    def mid_map(name: str) -> bool:
        _pending, _waiting, _running, done, _failed = _pipeline(cluster, name)["map"]
        return 2 <= done < len(INPUTS)

    name, _ = _run(cluster, mid_map, "map")
    text = _events(cluster, name)
    kept = int(text.split("Resumed after a master restart: ")[1].split()[0])
    assert 2 <= kept < len(INPUTS), text  # the maps done before the kill were not run again


def test_kill_mid_reduce(cluster: Cluster) -> None:
    def mid_reduce(name: str) -> bool:
        p = _pipeline(cluster, name)
        return p["map"][3] == len(INPUTS) and p["reduce"][2] == 1

    name, _ = _run(cluster, mid_reduce, "reduce")
    text = _events(cluster, name)
    assert f"Resumed after a master restart: {len(INPUTS)} finished tasks kept" in text, text


def test_finished_job_listed_after_restart(cluster: Cluster) -> None:
    name, results = _run(cluster, None, "listed")
    info_before = cluster.get("jobinfo", name=name)
    _restart(cluster, "listed")
    listed = {n: s for _ts, s, n in cluster.get("joblist")}
    assert listed[name] == "ready"
    [[_name, [status, again]]] = cluster.post("get_results", [0, [name]])
    assert (status, again) == ("ready", results)
    info = cluster.get("jobinfo", name=name)
    for key in ("timestamp", "active", "pipeline", "results", "inputs", "worker", "owner"):
        assert info[key] == info_before[key], key
    assert any("READY" in msg for _ts, _h, msg in cluster.get("jobevents", name=name))
    _check_results(cluster, again)
    # The jobs of the earlier tests are all there too, finished.
    assert sum(1 for s in listed.values() if s == "ready") >= 2


def test_purged_job_stays_purged(cluster: Cluster) -> None:
    name, _ = _run(cluster, None, "purge")
    assert cluster.post("purge_job", name) == ""
    _restart(cluster, "purge")
    assert name not in {n for _ts, _s, n in cluster.get("joblist")}


def test_outputs_lost_with_a_node_are_made_again(tmp_path: Path) -> None:
    """Killed mid-reduce, the master comes back with one node only: the other node, and the
    map outputs it held, are gone. The maps that ran there run again on the one left."""
    c = Cluster(tmp_path / "c")
    try:
        c.start()
        name = c.submit(pipeline_pack(INPUTS, PIPELINE, env=ENV, prefix="RestartLost"))
        waiter = Waiter(c, name)

        def mid_reduce() -> bool:
            p = _pipeline(c, name)
            return p["map"][3] == len(INPUTS) and p["reduce"][2] == 1

        wait_until(mid_reduce, 60, "the reduce to run", interval=0.05)
        assert c.master is not None
        lost = c.node_hosts[1]
        c.nodes[lost].kill9()
        shutil.rmtree(c.data(lost), ignore_errors=True)
        c.master.kill9()
        time.sleep(DOWN_SECONDS)
        c.start_master(log_name="master-lost.log")
        results = waiter.join()
        data = c.result_data(results)
        assert data == [(0, EXPECTED)]
        text = _events(c, name)
        assert "Running map:" in text, text  # lost maps were made again, not just retried
    finally:
        c.stop()


def test_killed_job_stays_dead(cluster: Cluster) -> None:
    name = cluster.submit(pipeline_pack(INPUTS, PIPELINE, env=ENV, prefix="RestartKilled"))
    assert cluster.post("kill_job", name) == ""
    _restart(cluster, "killed")
    assert {n: s for _ts, s, n in cluster.get("joblist")}[name] == "dead"
    [[_name, [status, _results]]] = cluster.post("get_results", [0, [name]])
    assert status == "dead"


def test_two_restarts_in_one_job(cluster: Cluster) -> None:
    """Killed mid-map, then again mid-reduce: the second start replays what both lives
    recorded, in their order."""
    name = cluster.submit(pipeline_pack(INPUTS, PIPELINE, env=ENV, prefix="RestartTwice"))
    waiter = Waiter(cluster, name)
    wait_until(lambda: 2 <= _pipeline(cluster, name)["map"][3] < len(INPUTS), 60,
               "maps to finish", interval=0.05)
    _restart(cluster, "twice-1")
    wait_until(lambda: _pipeline(cluster, name)["reduce"][2] == 1, 60, "the reduce to run",
               interval=0.05)
    _restart(cluster, "twice-2")
    _check_results(cluster, waiter.join())
    text = _events(cluster, name)
    assert f"Resumed after a master restart: {len(INPUTS)} finished tasks kept" in text, text


def test_results_lost_with_a_node_are_made_again(tmp_path: Path) -> None:
    """A map-only job (its maps' outputs are its results), killed mid-map; the master comes
    back without one node and its data. The maps that had finished there run again, and the
    job ends only once its results are all on a node that is there."""
    c = Cluster(tmp_path / "c")
    lost = c.node_hosts[1]
    try:
        c.start()
        name = c.submit(pipeline_pack(INPUTS, [["map", "split"]], env=ENV, prefix="RestartLostRes"))
        waiter = Waiter(c, name)

        def some_done_on_lost() -> bool:
            done = c.get("get_stageresults", name=name, stage="map")
            return len(done) < len(INPUTS) and any(lost in u for urls in done for u in urls)

        wait_until(some_done_on_lost, 60, f"a map to finish on {lost}", interval=0.05)
        assert c.master is not None
        c.nodes[lost].kill9()
        shutil.rmtree(c.data(lost), ignore_errors=True)
        c.master.kill9()
        time.sleep(DOWN_SECONDS)
        c.start_master(log_name="master-lost-results.log")
        results = waiter.join()
        assert not any(lost in u for urls in results for u in urls), results
        data = b"".join(content for _lab, content in c.result_data(results))
        assert sorted(data.splitlines(keepends=True)) == sorted(EXPECTED.splitlines(keepends=True))
        assert f"output on {lost} is lost" in _events(c, name)
    finally:
        c.stop()
