"""A real Dask cluster through the REST API: create, compute, scale both ways, delete."""

from __future__ import annotations

import os

import httpx
import psutil
import pytest
from distributed import Client
from distributed.security import Security

from sm_fixtures import ServiceManager, cluster_processes, listening_on, wait_state, wait_until

pytestmark = pytest.mark.slow


def dask_security(api: httpx.Client, cluster_id: str) -> Security:
    """The cluster's certificate, as its tenant gets it (the endpoints take nothing else)."""
    files = api.get(f"/api/v1/clusters/{cluster_id}/credentials").json()["frameworks"]["dask"]["files"]
    return Security(tls_ca_file=files["cluster.pem"], tls_client_cert=files["cluster.pem"],
                    tls_client_key=files["cluster.key"], require_encryption=True)


def dask_workers(address: str, security: Security) -> dict:
    with Client(address, security=security, timeout=20) as client:
        return client.scheduler_info(n_workers=-1)["workers"]


def test_dask_lifecycle(sm: ServiceManager, api: httpx.Client) -> None:
    response = api.post("/api/v1/clusters", json={"frameworks": [{"name": "dask"}], "workers": 2})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["state"] in ("pending", "provisioning", "installing")
    assert response.headers["location"] == f"{sm.url}/api/v1/clusters/{created['id']}"

    cluster = wait_state(api, created["id"], {"ready", "failed"}, timeout=90)
    assert cluster["state"] == "ready", cluster["status_reason"]
    steps = [e["step"] for e in cluster["events"]]
    assert steps[0] == "pending" and "provisioning" in steps and steps[-1] == "ready"
    assert all(e["duration_s"] is not None for e in cluster["events"] if e["step"] == "provisioning")

    address = cluster["outputs"]["frameworks"]["dask"]["scheduler_address"]
    hosts = [n["host"] for n in cluster["nodes"]]
    assert len(set(hosts)) == 3 and all(h.startswith("127.") for h in hosts)
    assert address == f"tls://{hosts[0]}:8786"
    security = dask_security(api, cluster["id"])
    # The dashboards answer only the cluster's token: Bearer for programs, Basic for browsers.
    web_uis = cluster["outputs"]["frameworks"]["dask"]["web_uis"]
    dashboard = web_uis["dashboard"]
    ui_token = api.get(f"/api/v1/clusters/{cluster['id']}/credentials").json()[
        "frameworks"]["dask"]["env"]["DISCO_UI_TOKEN"]
    for url in (dashboard, web_uis["worker_dashboard@worker-1"]):
        for auth in (None, ("anyone", "wrong"), ("anyone", ui_token[:-1])):
            refused = httpx.get(url.replace("/status", "/health"), auth=auth, trust_env=False)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Basic realm="disco"'
        assert httpx.get(url.replace("/status", "/health"), headers={"Authorization": f"Bearer {ui_token}"},
                         trust_env=False).text == "ok"
    page = httpx.get(dashboard, auth=("anyone", ui_token), trust_env=False, follow_redirects=True)
    assert page.status_code == 200 and "bokeh" in page.text.lower()  # a real web UI, not a 404

    # A real computation, spread over both workers.
    with Client(address, security=security, timeout=20) as client:
        futures = client.map(lambda x: (x * x, os.environ.get("DISCO_NODE")), range(40))
        results = client.gather(futures)
    assert sum(r[0] for r in results) == sum(x * x for x in range(40))
    assert {r[1] for r in results} == {"worker-1", "worker-2"}

    # Scale up: a third worker joins; scale down: workers retire gracefully.
    assert api.patch(f"/api/v1/clusters/{cluster['id']}", json={"workers": 3}).status_code == 200
    cluster = wait_until(lambda: (c := api.get(f"/api/v1/clusters/{created['id']}").json())["state"] == "ready"
                         and len(c["nodes"]) == 4 and c, timeout=60, what="scale up")
    assert len(dask_workers(address, security)) == 3

    assert api.patch(f"/api/v1/clusters/{cluster['id']}", json={"workers": 1}).status_code == 200
    cluster = wait_until(lambda: (c := api.get(f"/api/v1/clusters/{created['id']}").json())["state"] == "ready"
                         and len(c["nodes"]) == 2 and c, timeout=60, what="scale down")
    assert len(dask_workers(address, security)) == 1
    messages = " ".join(e["message"] for e in cluster["events"])
    assert "retired worker-2 gracefully" in messages and "retired worker-3 gracefully" in messages
    # The dashboard, open to anyone on the machine, changes nothing: no HTTP API to retire with.
    dashboard = cluster["outputs"]["frameworks"]["dask"]["web_uis"]["dashboard"].rsplit("/", 1)[0]
    assert httpx.post(f"{dashboard}/api/v1/retire_workers", json={"workers": []}, auth=("anyone", ui_token),
                      trust_env=False).status_code == 404
    removed_dirs = [sm.data_dir / "clusters" / cluster["id"] / name for name in ("worker-2", "worker-3")]
    assert not any(d.exists() for d in removed_dirs)

    # Delete: nothing of the cluster is left.
    assert api.delete(f"/api/v1/clusters/{cluster['id']}").status_code == 202
    wait_state(api, cluster["id"], {"deleted"}, timeout=60)
    assert cluster_processes(cluster["id"]) == []
    assert listening_on(hosts) == []
    assert sm.proc is not None
    zombies = [c for c in psutil.Process(sm.proc.pid).children() if c.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []  # the service manager reaps what it started
    assert not (sm.data_dir / "clusters" / cluster["id"]).exists()
    assert cluster["id"] not in [c["id"] for c in api.get("/api/v1/clusters").json()]
    log = api.get(f"/api/v1/clusters/{cluster['id']}/deployment.log").text
    assert "deleted" in log and "ready" in log
