"""No process, port or directory outlives its cluster, whatever happens when: the service
manager killed at any moment of a start-up, a delete at once after a create, a leftover
holding a cluster's address. Every check scans /proc and the sockets, never asks the
service manager what it remembers."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sm_fixtures import ServiceManager, frameworks_path, cluster_processes, listening_on, wait_state, wait_until

# Its readiness check asks a port that none of its processes opens: whatever answers there is
# somebody else, and must not make the cluster ready.
IMPOSTOR = """
name: impostor
description: Sleeps; its readiness URL is on a port it never opens.
roles:
  master:
    processes:
      - name: sleeper
        command: ["{{ python }}", "-c", "import time; time.sleep(600)"]
readiness:
  kind: http
  url: "http://{{ master.host }}:8002/"
  timeout_s: 20
  interval_s: 0.05
"""


@pytest.fixture()
def fresh_sm(tmp_path: Path) -> Iterator[ServiceManager]:
    paths = frameworks_path(tmp_path, {"impostor": IMPOSTOR})
    manager = ServiceManager(tmp_path / "data", extra_env={"DISCO_FRAMEWORKS_PATH": paths}).start()
    try:
        yield manager
    finally:
        manager.cleanup()


def _cluster_hosts(slot_base: int, slot: int, workers: int) -> list[str]:
    return [f"127.{slot_base + slot // 256}.{slot % 256}.{i + 1}" for i in range(workers + 1)]


def _net_base(sm: ServiceManager) -> int:
    return int(sm.env["DISCO_LOCAL_NET_BASE"])


def _assert_nothing_left(sm: ServiceManager, cluster_ids: list[str], hosts: list[str]) -> None:
    for cid in cluster_ids:
        assert cluster_processes(cid) == [], f"processes of {cid} outlived it"
        assert not (sm.data_dir / "clusters" / cid).exists(), f"directory of {cid} left"
    assert listening_on(hosts) == []


@pytest.mark.parametrize("framework", ["dask", "mapreduce"])
def test_kill9_at_any_moment_of_a_start_leaves_nothing_after_delete(
        fresh_sm: ServiceManager, framework: str) -> None:
    """The service manager dies at many moments of a 1+2 start-up (forks under way included);
    restarted, it adopts or removes every process, and the delete leaves nothing."""
    seen: list[str] = []
    hosts = _cluster_hosts(_net_base(fresh_sm), 1, 2) + _cluster_hosts(_net_base(fresh_sm), 2, 2)
    for delay in (0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.25, 0.4):
        api = fresh_sm.client()
        cid = api.post("/api/v1/clusters", json={"frameworks": [framework], "workers": 2}).json()["id"]
        seen.append(cid)
        time.sleep(delay)
        fresh_sm.kill9()
        fresh_sm.start()
        api = fresh_sm.client()
        cluster = wait_state(api, cid, {"ready", "failed"}, 90)
        assert cluster["state"] == "ready", (delay, cluster["status_reason"])
        # One process per node and role: nothing was started twice across the crash. (Those
        # processes' own children, such as a Map/Reduce node's spare zygote, are theirs.)
        procs = cluster_processes(cid)
        pids = {p.pid for p in procs}
        started = [p for p in procs if p.ppid() not in pids]
        nodes = sorted(p.environ().get("DISCO_NODE", "") or _node_of(p.cwd()) for p in started)
        assert nodes == ["master", "worker-1", "worker-2"], (delay, nodes)
        assert api.delete(f"/api/v1/clusters/{cid}").status_code == 202
        wait_state(api, cid, {"deleted"}, 60)
        _assert_nothing_left(fresh_sm, [cid], hosts)
    assert len(seen) == 8


def _node_of(cwd: str) -> str:
    return Path(cwd).parent.name  # a process works in <node>/work


@pytest.mark.parametrize("framework", ["dask", "mapreduce", "spark"])
def test_delete_at_once_after_create_leaves_nothing(fresh_sm: ServiceManager, framework: str) -> None:
    """100 create-then-delete-at-once cycles, ten at a time: each cluster reaches `deleted`
    only when none of its processes, ports or files is left."""
    ids: list[str] = []
    lock = threading.Lock()
    token = fresh_sm.token()

    def cycle(_: int) -> None:
        with httpx.Client(base_url=fresh_sm.url, headers={"X-Auth-Token": token}, timeout=30,
                          trust_env=False) as api:
            made = api.post("/api/v1/clusters", json={"frameworks": [framework], "workers": 1})
            assert made.status_code == 201, made.text
            cid = made.json()["id"]
            assert api.delete(f"/api/v1/clusters/{cid}").status_code == 202
            wait_state(api, cid, {"deleted"}, 120)
            # Deleted means gone: checked at the moment the state says so.
            assert cluster_processes(cid) == [], f"{cid} is deleted but has processes"
            assert not (fresh_sm.data_dir / "clusters" / cid).exists()
        with lock:
            ids.append(cid)

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(cycle, range(100)))
    assert len(ids) == 100
    hosts = [h for slot in range(1, 12) for h in _cluster_hosts(_net_base(fresh_sm), slot, 1)]
    _assert_nothing_left(fresh_sm, ids, hosts)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _serve(host: str, port: int) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer((host, port), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_slot_whose_address_is_held_is_not_handed_out(fresh_sm: ServiceManager) -> None:
    """A leftover listening on slot 1's master address: the next cluster gets another slot
    and is ready on its own processes."""
    taken = _cluster_hosts(_net_base(fresh_sm), 1, 0)[0]
    squatter = _serve(taken, 8000)
    try:
        api = fresh_sm.client()
        cluster = api.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 1}).json()
        cluster = wait_state(api, cluster["id"], {"ready", "failed"}, 30)
        assert cluster["state"] == "ready", cluster["status_reason"]
        assert taken not in [n["host"] for n in cluster["nodes"]]
        assert httpx.get(cluster["outputs"]["frameworks"]["webecho"]["url"], trust_env=False).status_code == 200
    finally:
        squatter.shutdown()
        squatter.server_close()


def test_an_answer_from_another_process_never_makes_a_cluster_ready(fresh_sm: ServiceManager) -> None:
    """Something that is not the cluster's binds the address its readiness check asks, after
    the slot was handed out: the cluster fails and says why, instead of reporting ready."""
    api = fresh_sm.client()
    cid = api.post("/api/v1/clusters", json={"frameworks": ["impostor"], "workers": 0}).json()["id"]
    master = wait_until(lambda: api.get(f"/api/v1/clusters/{cid}").json()["nodes"][0]["host"],
                        timeout=20, interval=0.02, what="master address")
    impostor = _serve(master, 8002)
    try:
        cluster = wait_state(api, cid, {"ready", "failed"}, 30)
        assert cluster["state"] == "failed"
        assert f"{master}:8002 is held by a process that is not this cluster's" in cluster["status_reason"]
    finally:
        impostor.shutdown()
        impostor.server_close()
    assert cluster_processes(cid) == []


def test_a_warm_process_that_renames_itself_is_still_found(fresh_sm: ServiceManager) -> None:
    """Dask's scheduler, forked from a zygote, renames itself: the /proc scan still finds it
    (and the process listening on the scheduler port is that one)."""
    api = fresh_sm.client()
    cluster = wait_state(api, api.post("/api/v1/clusters", json={"frameworks": ["dask"], "workers": 0})
                         .json()["id"], {"ready", "failed"}, 60)
    assert cluster["state"] == "ready", cluster["status_reason"]
    found = cluster_processes(cluster["id"])
    titles = [" ".join(p.cmdline()) for p in found]
    assert any(t.startswith("dask scheduler") for t in titles), titles
    listening = [p for p in found if any(c.status == "LISTEN" and c.laddr.port == 8786
                                         for c in p.net_connections())]
    assert len(listening) == 1
