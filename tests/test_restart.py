"""The service manager dies (kill -9) and comes back: it adopts, finishes and cleans up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sm_fixtures import ServiceManager, cluster_processes, listening_on, wait_state, wait_until
from disco.providers.local import ROOT_ENV, TAG_ENV


@pytest.fixture()
def fresh_sm(tmp_path: Path) -> Iterator[ServiceManager]:
    manager = ServiceManager(tmp_path / "data").start()
    try:
        yield manager
    finally:
        manager.cleanup()


def restart(sm: ServiceManager) -> httpx.Client:
    sm.start()
    return sm.client()


@pytest.mark.slow
def test_kill9_during_provisioning_converges_without_duplicates(fresh_sm: ServiceManager) -> None:
    api = fresh_sm.client()
    cid = api.post("/api/v1/clusters", json={"frameworks": ["spark"], "workers": 2}).json()["id"]
    # Kill as soon as the Spark master runs but before the cluster is ready.
    wait_until(lambda: api.get(f"/api/v1/clusters/{cid}").json()["state"] == "installing"
               and cluster_processes(cid), timeout=60, interval=0.05, what="installing")
    master_file = fresh_sm.data_dir / "clusters" / cid / "master" / "spark-master.pid"
    wait_until(master_file.exists, timeout=10, what="master pid file")
    master_pid = json.loads(master_file.read_text())["pid"]
    fresh_sm.kill9()

    api = restart(fresh_sm)
    cluster = wait_state(api, cid, {"ready", "failed"}, 120)
    assert cluster["state"] == "ready", cluster["status_reason"]
    procs = cluster_processes(cid)
    nodes = sorted(p.environ()["DISCO_NODE"] for p in procs)
    assert nodes == ["master", "worker-1", "worker-2"]  # one daemon per node, none started twice
    assert master_pid in {p.pid for p in procs}  # what ran before the crash was adopted, not restarted
    master = cluster["outputs"]["master_host"]
    ui_token = api.get(f"/api/v1/clusters/{cid}/credentials").json()["frameworks"]["spark"]["env"]["DISCO_UI_TOKEN"]
    status = httpx.get(f"http://{master}:8080/json/", headers={"Authorization": f"Bearer {ui_token}"},
                       trust_env=False).json()
    assert status["aliveworkers"] == 2

    hosts = [n["host"] for n in cluster["nodes"]]
    api.delete(f"/api/v1/clusters/{cid}")
    wait_state(api, cid, {"deleted"}, 60)
    assert cluster_processes(cid) == [] and listening_on(hosts) == []


def test_delete_accepted_before_a_crash_is_finished_after_restart(fresh_sm: ServiceManager) -> None:
    api = fresh_sm.client()
    cid = api.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 2}).json()["id"]
    wait_state(api, cid, {"ready"}, 30)
    fresh_sm.kill9()
    store = fresh_sm.store()
    store.update_cluster(cid, target="deleted")  # as if DELETE had been stored just before the crash
    store.close()
    assert len(cluster_processes(cid)) == 3  # the cluster outlives its manager

    api = restart(fresh_sm)
    wait_state(api, cid, {"deleted"}, 30)
    assert cluster_processes(cid) == []
    assert not (fresh_sm.data_dir / "clusters" / cid).exists()


def test_ready_cluster_is_adopted_after_restart(fresh_sm: ServiceManager) -> None:
    api = fresh_sm.client()
    cid = api.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 1}).json()["id"]
    wait_state(api, cid, {"ready"}, 30)
    pids = {p.pid for p in cluster_processes(cid)}
    fresh_sm.kill9()
    api = restart(fresh_sm)
    # Give the reconciler a few rounds; nothing may be restarted or duplicated.
    wait_until(lambda: api.get(f"/api/v1/clusters/{cid}").json()["state"] == "ready", timeout=10)
    wait_until(lambda: len(api.get(f"/api/v1/clusters/{cid}/events").json()) > 0, timeout=5)
    assert {p.pid for p in cluster_processes(cid)} == pids
    assert api.patch(f"/api/v1/clusters/{cid}", json={"workers": 2}).status_code == 200
    cluster = wait_until(lambda: (c := api.get(f"/api/v1/clusters/{cid}").json())["state"] == "ready"
                         and len(c["nodes"]) == 3 and c, timeout=30, what="scaled after restart")
    # One process a node, and no more: a process the new node's start-up left on its way out
    # (seen once, right at "ready") may take a moment to go; a duplicate would stay.
    wait_until(lambda: len(cluster_processes(cid)) == 3, timeout=10, what="one process a node")
    time.sleep(1)
    assert len(cluster_processes(cid)) == 3


def test_orphans_of_unknown_clusters_are_removed_at_start(fresh_sm: ServiceManager) -> None:
    fresh_sm.stop()
    orphan_id = str(uuid.uuid4())
    node_dir = fresh_sm.data_dir / "clusters" / orphan_id / "master"
    node_dir.mkdir(parents=True)
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                              env={**os.environ, TAG_ENV: orphan_id,
                                   ROOT_ENV: str(fresh_sm.data_dir / "clusters")}, start_new_session=True)
    try:
        restart(fresh_sm)
        wait_until(lambda: orphan.poll() is not None, timeout=20, what="orphan process stopped")
        assert not (fresh_sm.data_dir / "clusters" / orphan_id).exists()
    finally:
        if orphan.poll() is None:
            orphan.kill()
        orphan.wait(5)
