"""Clusters over SSH on real test hosts: Dask, Spark and Map/Reduce across three hosts, one of
them a fresh Debian with nothing installed (a true first install), the others pre-baked; each
runs a real job; Dask scales both ways; delete leaves nothing on any host and gives the hosts
back to the pool."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from distributed import Client
from distributed.security import Security

from sm_fixtures import wait_until
from ssh_site import Site, close_site, open_site
from test_mapreduce_cluster import assert_wordcount
from test_spark_cluster import run_spark_job

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(testbed_images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    opened = open_site(tmp_path_factory.mktemp("ssh-site"), bare=1, baked=3)
    try:
        yield opened
    finally:
        close_site(opened)


def names(site: Site) -> list[str]:
    return [h.name for h in site.testbed.hosts()]  # the bare host first


def credentials(site: Site, cluster_id: str) -> dict:
    with site.api() as api:
        return api.get(f"/api/v1/clusters/{cluster_id}/credentials").json()["frameworks"]


def dask_client(site: Site, cluster: dict) -> Client:
    files = credentials(site, cluster["id"])["dask"]["files"]
    security = Security(tls_ca_file=files["cluster.pem"], tls_client_cert=files["cluster.pem"],
                        tls_client_key=files["cluster.key"], require_encryption=True)
    return Client(cluster["outputs"]["frameworks"]["dask"]["scheduler_address"], security=security, timeout=30)


def scale(site: Site, cluster_id: str, workers: int) -> dict:
    with site.api() as api:
        changed = api.patch(f"/api/v1/clusters/{cluster_id}", json={"workers": workers})
        assert changed.status_code == 200, changed.text
        # Scaling is done when the cluster is ready again with exactly that many workers.
        done = wait_until(lambda: (lambda c: c if c["state"] in ("ready", "failed") and c["workers"] == workers
                                   and len(c["nodes"]) == workers + 1 else None)(
            api.get(f"/api/v1/clusters/{cluster_id}").json()), timeout=300, what=f"{workers} workers")
    assert done["state"] == "ready", done["status_reason"]
    return done


def assert_gone(site: Site, cluster: dict) -> None:
    assert site.leftovers(cluster["id"]) == {}
    assert all(h["state"] == "free" for h in site.pool().values()), site.pool()


def test_dask_first_install_job_scale_and_delete(site: Site) -> None:
    bare, baked1, baked2, spare = names(site)
    cluster = site.create({"workers": 2, "frameworks": ["dask"],
                           "provider_options": {"hosts": f"{bare},{baked1},{baked2},{spare}"}})
    assert cluster["state"] == "ready", cluster["status_reason"]
    hosts = {n["name"]: n["host"] for n in cluster["nodes"]}
    assert sorted(hosts.values()) == sorted(site.host(n).address for n in (bare, baked1, baked2))
    # The bare host was installed from nothing, step by step with timings; baked hosts had it all.
    installs = [e["message"] for e in cluster["events"] if e["step"] == "install"]
    first = next(m for m in installs if f"({bare})" in m and "bootstrapped" in m)
    assert "python_packages" in first and "python_packages 0.0 s (as it was)" not in first
    assert any(f"({baked1})" in m and "python_packages" in m and "(as it was)" in m for m in installs)
    pool = site.pool()
    assert {pool[n]["state"] for n in (bare, baked1, baked2)} == {"in_use"} and pool[spare]["state"] == "free"

    # Each host serves its deployment and process logs, to the cluster's token only.
    web_token = site.api().get(f"/api/v1/clusters/{cluster['id']}/credentials").json()["web_token"]
    for node, url in cluster["outputs"]["node_logs"].items():
        assert httpx.get(f"{url}deploy.log", trust_env=False).status_code == 401
        assert httpx.get(f"{url}deploy.log", auth=("anyone", web_token[:-1]), trust_env=False).status_code == 401
        deploy = httpx.get(f"{url}deploy.log", headers={"Authorization": f"Bearer {web_token}"}, trust_env=False)
        assert deploy.status_code == 200 and "install done" in deploy.text, node
    # A real job: tasks run on the hosts themselves (their own hostnames), results come back.
    with dask_client(site, cluster) as client:
        workers = list(client.scheduler_info(n_workers=-1)["workers"])
        ran_on = {client.submit(socket.gethostname, workers=[w], pure=False).result() for w in workers}
        assert ran_on == {baked1, baked2}  # the master is the first named host: the bare one
        assert client.submit(sum, range(1000)).result() == 499500

    grown = scale(site, cluster["id"], 3)
    assert site.pool()[spare]["state"] == "in_use"
    with dask_client(site, grown) as client:
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 3
    # More than the pool has is refused up front; the cluster runs on as it was.
    with site.api() as api:
        refused = api.patch(f"/api/v1/clusters/{cluster['id']}", json={"workers": 4})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_free_hosts", refused.text
        assert "0 free host(s)" in refused.json()["error"]["message"]
        assert api.get(f"/api/v1/clusters/{cluster['id']}").json()["state"] == "ready"

    shrunk = scale(site, cluster["id"], 1)
    pool = site.pool()
    left_hosts = {n["host"] for n in shrunk["nodes"]}
    freed = [h for h in site.testbed.hosts() if h.address not in left_hosts]
    assert len(freed) == 2 and all(pool[h.name]["state"] == "free" for h in freed)
    for host in freed:  # nothing of the cluster on the hosts it gave back
        assert host.name not in site.leftovers(cluster["id"])
    with dask_client(site, shrunk) as client:
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 1
        assert client.submit(sum, [1, 2, 3]).result() == 6

    assert site.delete(cluster["id"])["state"] == "deleted"
    assert_gone(site, cluster)


def test_spark_job_across_hosts(site: Site, tmp_path: Path) -> None:
    # The bare host (now with Python, still without Java) becomes a worker: Java is installed there.
    bare = names(site)[0]
    cluster = site.create({"workers": 2, "frameworks": [{"name": "spark", "properties": {"worker_memory": "768m"}}],
                           "provider_options": {"hosts": f"{names(site)[1]},{bare},{names(site)[2]}"}})
    assert cluster["state"] == "ready", cluster["status_reason"]
    java = [e["message"] for e in cluster["events"] if e["step"] == "install" and f"({bare})" in e["message"]]
    assert java and "os_packages" in java[0] and "os_packages 0.0 s (as it was)" not in java[0]
    access = credentials(site, cluster["id"])["spark"]
    job = run_spark_job(cluster["outputs"]["frameworks"]["spark"]["master_url"], access["files"]["spark-defaults.conf"],
                        tmp_path)
    assert "RESULT [('a', 100), ('b', 200), ('c', 300)]" in job.stdout, job.stderr[-3000:]
    assert site.delete(cluster["id"])["state"] == "deleted"
    assert_gone(site, cluster)


def test_mapreduce_wordcount_across_hosts(site: Site, tmp_path: Path) -> None:
    cluster = site.create({"workers": 2, "frameworks": [{"name": "mapreduce", "properties": {"slots": 2}}]})
    assert cluster["state"] == "ready", cluster["status_reason"]
    master_url = cluster["outputs"]["frameworks"]["mapreduce"]["master_url"]
    token = credentials(site, cluster["id"])["mapreduce"]["env"]["DISCO_CLUSTER_TOKEN"]
    assert_wordcount(master_url, token, tmp_path, timeout=180)
    assert site.delete(cluster["id"])["state"] == "deleted"
    assert_gone(site, cluster)
