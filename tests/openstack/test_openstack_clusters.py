"""Clusters through the OpenStack provider on the cloud in a box, end to end: a real Heat makes
the stack, its servers (containers) boot DISCO's node bootstrap with cloud-init, each node
signals Heat (booted with its host key, then ready), the stack completes only when the
frameworks run, a real job runs; scaling is a stack update, suspend/resume are Heat's, and
delete leaves no stack, no container and no listening socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from distributed import Client
from distributed.security import Security

from cloud_site import CloudSite, cloud_site
from test_spark_cluster import run_spark_job

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(test_cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudSite]:  # type: ignore[no-untyped-def]
    with cloud_site(test_cloud, tmp_path_factory.mktemp("openstack-sm")) as opened:
        yield opened


def dask_client(site: CloudSite, cluster: dict) -> Client:
    with site.api() as api:
        files = api.get(f"/api/v1/clusters/{cluster['id']}/credentials").json()["frameworks"]["dask"]["files"]
    security = Security(tls_ca_file=files["cluster.pem"], tls_client_cert=files["cluster.pem"],
                        tls_client_key=files["cluster.key"], require_encryption=True)
    return Client(cluster["outputs"]["frameworks"]["dask"]["scheduler_address"], security=security, timeout=30)


def ssh_peers(site: CloudSite) -> set[str]:
    """The addresses the service manager itself holds SSH connections to."""
    assert site.sm.proc is not None
    return {c.raddr.ip for c in psutil.Process(site.sm.proc.pid).net_connections(kind="tcp")
            if c.raddr and c.raddr.port == 22 and c.status == psutil.CONN_ESTABLISHED}


def worker_hosts(client: Client) -> set[str]:
    """Where the workers' tasks run: each worker's own server (its hostname)."""
    workers = list(client.scheduler_info(n_workers=-1)["workers"])
    return {client.submit(socket.gethostname, workers=[w], pure=False).result() for w in workers}


def test_dask_stack_job_scale_suspend_resume_delete(site: CloudSite) -> None:
    cluster = site.create(site.request(2, ["dask"]))
    assert cluster["state"] == "ready", (cluster["status_reason"], site.events(cluster["id"]))
    outputs = cluster["outputs"]
    # The seed's outputs, from the stack.
    assert outputs["stack_status"] == "CREATE_COMPLETE"
    assert outputs["external_ip"] == cluster["nodes"][0]["host"]  # loopback: the floating IP is the port's
    assert outputs["ssh_public_key"].split()[:2] == cluster["ssh_public_key"].split()[:2]
    assert outputs["ssh_key_name"].startswith("disco-")
    stack = site.stack(cluster["id"])
    assert stack.status == "CREATE_COMPLETE" and stack.id == outputs["stack_id"]
    # The stack completed only after the frameworks were ready (the ready signals), and the
    # host keys came from Heat.
    events = site.events(cluster["id"])
    assert any("host keys from Heat pinned" in e for e in events), events
    ready_at = next(i for i, e in enumerate(events) if e.startswith("ready: stack"))
    assert ready_at > next(i for i, e in enumerate(events) if e.startswith("dask: dask") and "ready" in e)
    assert len(site.servers(stack.id)) == 3
    # The master has a floating IP: the service manager reaches it there, and the workers (their
    # private addresses) only through it, over SSH to the master.
    assert ssh_peers(site) == {outputs["external_ip"]}

    with dask_client(site, cluster) as client:
        hosts = worker_hosts(client)
        assert len(hosts) == 2 and all("worker" in h for h in hosts), (
            hosts, list(client.scheduler_info(n_workers=-1)["workers"]), cluster["nodes"])
        assert client.submit(sum, range(1000)).result() == 499500

    grown = site.scale(cluster["id"], 3)
    assert grown["state"] == "ready", grown["status_reason"]
    stack = site.stack(cluster["id"])
    assert stack.status == "UPDATE_COMPLETE" and len(site.servers(stack.id)) == 4
    assert site.heat.parameters(stack.id)["worker_count"] == "3"
    with dask_client(site, grown) as client:
        assert len(worker_hosts(client)) == 3

    shrunk = site.scale(cluster["id"], 1)
    assert shrunk["state"] == "ready", shrunk["status_reason"]
    assert sorted(n["name"] for n in shrunk["nodes"]) == ["master", "worker-1"]
    assert len(site.servers(stack.id)) == 2 and site.heat.parameters(stack.id)["worker_count"] == "1"
    with dask_client(site, shrunk) as client:
        assert len(worker_hosts(client)) == 1

    site.action(cluster["id"], "suspend")
    site.wait(cluster["id"], {"suspended"})
    assert site.stack(cluster["id"]).status == "SUSPEND_COMPLETE"
    assert {c["State"] for c in site.servers(stack.id)} == {"paused"}
    site.action(cluster["id"], "resume")
    resumed = site.wait(cluster["id"], {"ready", "failed"})
    assert resumed["state"] == "ready", resumed["status_reason"]
    assert site.stack(cluster["id"]).status == "RESUME_COMPLETE"
    with dask_client(site, resumed) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6

    assert site.delete(cluster["id"])["state"] == "deleted"
    assert site.leftovers(resumed) == {}


def test_spark_on_a_network_of_its_own(site: CloudSite, tmp_path: Path) -> None:
    # No existing network: the stack makes one, with a subnet and a router to `public`.
    body = site.request(2, [{"name": "spark", "properties": {"worker_memory": "768m"}}])
    del body["provider_options"]["network"]
    body["provider_options"]["cidr"] = "10.42.0.0/24"
    cluster = site.create(body)
    assert cluster["state"] == "ready", (cluster["status_reason"], site.events(cluster["id"]))
    with site.api() as api:
        access = api.get(f"/api/v1/clusters/{cluster['id']}/credentials").json()["frameworks"]["spark"]
    job = run_spark_job(cluster["outputs"]["frameworks"]["spark"]["master_url"], access["files"]["spark-defaults.conf"],
                        tmp_path)
    assert "RESULT [('a', 100), ('b', 200), ('c', 300)]" in job.stdout, job.stderr[-3000:]
    resources = {r["resource_name"] for r in site.heat.resources(cluster["outputs"]["stack_id"], 0)}
    assert {"network", "subnet", "router", "router_interface"} <= resources
    assert site.delete(cluster["id"])["state"] == "deleted"
    assert site.leftovers(cluster) == {}
