"""The reconciler under stress: failures with clear reasons, timeouts, supervision, expiry."""

from __future__ import annotations

import os
import signal

import httpx

from sm_fixtures import ServiceManager, cluster_processes, wait_state, wait_until


def create(api: httpx.Client, **spec: object) -> dict:
    response = api.post("/api/v1/clusters", json=spec)
    assert response.status_code == 201, response.text
    return response.json()


def test_process_that_dies_at_start_fails_the_cluster_with_its_log(sm: ServiceManager, api: httpx.Client) -> None:
    cluster = wait_state(api, create(api, frameworks=["crashy"], workers=0)["id"], {"ready", "failed"}, 30)
    assert cluster["state"] == "failed"
    assert "crashy-boom on master" in cluster["status_reason"]
    assert "exited with code 3" in cluster["status_reason"]
    assert "port is on fire" in cluster["status_reason"]  # the process's own words reach the user
    assert cluster["events"][-1]["level"] == "error"
    assert cluster_processes(cluster["id"]) == []


def test_readiness_timeout_fails_and_stops_processes(sm: ServiceManager, api: httpx.Client) -> None:
    cluster = wait_state(api, create(api, frameworks=["neverready"], workers=0)["id"], {"ready", "failed"}, 30)
    assert cluster["state"] == "failed"
    assert "neverready not ready after 2 s" in cluster["status_reason"]
    assert cluster_processes(cluster["id"]) == []
    # Logs stay readable after the failure, until the cluster is deleted.
    logs = api.get(f"/api/v1/clusters/{cluster['id']}/logs").json()
    assert {"master/neverready-sleeper"} <= {f"{entry['node']}/{entry['process']}" for entry in logs}
    assert api.delete(f"/api/v1/clusters/{cluster['id']}").status_code == 202
    wait_state(api, cluster["id"], {"deleted"}, 30)
    assert not (sm.data_dir / "clusters" / cluster["id"]).exists()


def test_dead_process_of_a_ready_cluster_is_restarted(sm: ServiceManager, api: httpx.Client) -> None:
    cluster = wait_state(api, create(api, frameworks=["webecho"], workers=1)["id"], {"ready", "failed"}, 30)
    assert cluster["state"] == "ready", cluster["status_reason"]
    worker_host = cluster["nodes"][1]["host"]
    victim = next(p for p in cluster_processes(cluster["id"]) if p.environ().get("DISCO_NODE") == "worker-1")
    os.kill(victim.pid, signal.SIGKILL)

    def restarted() -> bool:
        procs = [p for p in cluster_processes(cluster["id"]) if p.environ().get("DISCO_NODE") == "worker-1"]
        return bool(procs) and procs[0].pid != victim.pid
    wait_until(restarted, timeout=20, what="worker restarted")
    cluster = wait_state(api, cluster["id"], {"ready"}, 20)
    assert any(e["step"] == "health" and "restarting" in e["message"] for e in cluster["events"])
    wait_until(lambda: _get(f"http://{worker_host}:8001/"), timeout=10, what="worker serving again")
    api.delete(f"/api/v1/clusters/{cluster['id']}")
    wait_state(api, cluster["id"], {"deleted"}, 30)


def _get(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def test_idle_timeout_deletes_an_unused_cluster(sm: ServiceManager, api: httpx.Client) -> None:
    made = create(api, frameworks=["webecho"], workers=0, idle_timeout_s=1)
    cluster = wait_state(api, made["id"], {"deleted"}, 30)
    messages = [e["message"] for e in cluster["events"]]
    assert any("idle for more than 1 s" in m for m in messages)
    assert cluster_processes(made["id"]) == []


def test_max_age_deletes_the_cluster(sm: ServiceManager, api: httpx.Client) -> None:
    made = create(api, frameworks=["webecho"], workers=0, max_age_s=2, idle_timeout_s=0)
    cluster = wait_state(api, made["id"], {"deleted"}, 30)
    assert any("max age of 2 s reached" in e["message"] for e in cluster["events"])


def test_delete_during_startup_interrupts_it(sm: ServiceManager, api: httpx.Client) -> None:
    made = create(api, frameworks=["neverready"], workers=2)
    wait_until(lambda: len(cluster_processes(made["id"])) >= 1, timeout=20, what="processes started")
    assert api.delete(f"/api/v1/clusters/{made['id']}").status_code == 202
    cluster = wait_state(api, made["id"], {"deleted"}, 15)
    assert not any(e["step"] == "failed" for e in cluster["events"])  # deleted, not timed out
    assert cluster_processes(made["id"]) == []
    assert not (sm.data_dir / "clusters" / made["id"]).exists()


def test_suspend_and_resume(sm: ServiceManager, api: httpx.Client) -> None:
    cluster = wait_state(api, create(api, frameworks=["webecho"], workers=1)["id"], {"ready", "failed"}, 30)
    cid = cluster["id"]
    assert api.post(f"/api/v1/clusters/{cid}/actions/suspend").status_code == 200
    wait_state(api, cid, {"suspended"}, 30)
    assert cluster_processes(cid) == []
    assert api.patch(f"/api/v1/clusters/{cid}", json={"workers": 3}).status_code == 409
    assert api.post(f"/api/v1/clusters/{cid}/actions/resume").status_code == 200
    cluster = wait_state(api, cid, {"ready"}, 30)
    assert len(cluster_processes(cid)) == 2
    assert [n["host"] for n in cluster["nodes"]] == [n["host"] for n in api.get(f"/api/v1/clusters/{cid}").json()["nodes"]]
    api.delete(f"/api/v1/clusters/{cid}")
    wait_state(api, cid, {"deleted"}, 30)


def test_cluster_processes_do_not_inherit_manager_settings(sm: ServiceManager, api: httpx.Client) -> None:
    cluster = wait_state(api, create(api, frameworks=["webecho"], workers=0)["id"], {"ready", "failed"}, 30)
    env = cluster_processes(cluster["id"])[0].environ()
    # User code runs in these processes: the data directory, database URL and keys stay private.
    assert "DISCO_DATA_DIR" not in env and "DISCO_FRAMEWORKS_PATH" not in env
    assert env["DISCO_NODE"] == "master" and env["DISCO_CLUSTER_ID"] == cluster["id"]
    api.delete(f"/api/v1/clusters/{cluster['id']}")
    wait_state(api, cluster["id"], {"deleted"}, 30)


def test_secret_property_reaches_its_process_but_not_the_api(sm: ServiceManager, api: httpx.Client) -> None:
    made = create(api, frameworks=[{"name": "webecho", "properties": {"secret_word": "swordfish"}}], workers=0)
    cluster = wait_state(api, made["id"], {"ready", "failed"}, 30)
    assert cluster["state"] == "ready", cluster["status_reason"]
    assert "swordfish" not in api.get(f"/api/v1/clusters/{made['id']}").text
    assert cluster_processes(made["id"])[0].environ()["WEBECHO_SECRET"] == "swordfish"
    api.delete(f"/api/v1/clusters/{made['id']}")
    wait_state(api, made["id"], {"deleted"}, 30)


def test_warm_started_processes_come_from_a_zygote(sm: ServiceManager, api: httpx.Client) -> None:
    cluster = wait_state(api, create(api, frameworks=["dask"], workers=1)["id"], {"ready", "failed"}, 60)
    assert cluster["state"] == "ready", cluster["status_reason"]
    for proc in cluster_processes(cluster["id"]):
        parent = proc.parent()
        # Forked from the pre-imported zygote, not started by the service manager itself.
        assert parent is not None and "disco.providers.zygote" in " ".join(parent.cmdline())
    api.delete(f"/api/v1/clusters/{cluster['id']}")
    wait_state(api, cluster["id"], {"deleted"}, 30)


def test_warm_started_process_that_dies_reports_its_exit_code(sm: ServiceManager, api: httpx.Client) -> None:
    cluster = wait_state(api, create(api, frameworks=["warmcrashy"], workers=0)["id"], {"ready", "failed"}, 30)
    assert cluster["state"] == "failed"
    assert "exited with code 2" in cluster["status_reason"]
    assert "can't open '/nonexistent/input.json'" in cluster["status_reason"]
