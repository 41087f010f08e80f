"""An OpenStack cluster outlives its service manager: DISCO keeps nothing of a stack but the
sealed cloud entry, so a new service manager on the same data finds the stack again by its name
(`disco-<cluster id>`). After a graceful stop the ready cluster is still ready, runs a job and is
deleted without a trace; after a kill -9 half-way through the create the next service manager
carries the same stack on (no second one) and deletes it, and nothing of the killed process's
own children is left running (the stack's servers stay: they are the cloud's)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psutil
import pytest

from cloud_site import CloudSite, cloud_site
from sm_fixtures import wait_until
from test_openstack_clusters import dask_client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(test_cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudSite]:  # type: ignore[no-untyped-def]
    with cloud_site(test_cloud, tmp_path_factory.mktemp("openstack-restart")) as opened:
        yield opened


def stacks_named(site: CloudSite, cluster_id: str) -> list[str]:
    """Every stack Heat holds under the cluster's name: a second create would show here."""
    return [s.id for s in site.heat.conn.orchestration.stacks() if s.name == f"disco-{cluster_id}"]


def still_running(procs: list[psutil.Process]) -> list[str]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return alive


def test_a_ready_cluster_is_found_again_and_deleted_after_a_restart(site: CloudSite) -> None:
    cluster = site.create(site.request(1, ["dask"]))
    assert cluster["state"] == "ready", (cluster["status_reason"], site.events(cluster["id"]))
    stack_id = cluster["outputs"]["stack_id"]

    site.sm.stop()  # graceful: the drivers stop, the stack and its servers stay
    assert site.stack(cluster["id"]).status == "CREATE_COMPLETE"
    site.sm.start()  # same data directory, database and secret key; the token is still valid

    # A few reconciler rounds (0.5 s each: health checks read the stack from Heat again), then
    # the same cluster, its stack's outputs shown as before.
    time.sleep(3)
    again = site.wait(cluster["id"], {"ready", "failed"})
    assert again["state"] == "ready", (again["status_reason"], site.events(cluster["id"]))
    for key in ("stack_id", "stack_status", "external_ip", "ssh_public_key"):
        assert again["outputs"][key] == cluster["outputs"][key], key
    assert stacks_named(site, cluster["id"]) == [stack_id]
    with dask_client(site, again) as client:
        assert client.submit(sum, range(100)).result() == 4950

    # The new service manager deletes what the old one made: the stack found by its name.
    assert site.delete(cluster["id"])["state"] == "deleted"
    assert site.leftovers(again) == {}


def test_kill9_mid_create_the_next_service_manager_carries_the_stack_on(site: CloudSite) -> None:
    with site.api() as api:
        made = api.post("/api/v1/clusters", json=site.request(1, ["dask"]))
    assert made.status_code == 201, made.text
    cid = made.json()["id"]
    # Kill once Heat holds the stack, before the cluster is ready.
    stack = wait_until(lambda: site.stack(cid), timeout=300, interval=0.2, what="the stack in Heat")
    killed_in = site.wait(cid, {"provisioning", "installing", "ready", "failed"})["state"]
    assert killed_in != "ready"
    assert site.sm.proc is not None
    children = psutil.Process(site.sm.proc.pid).children(recursive=True)
    site.sm.kill9()

    # The killed process's own children go with it (a zygote exits at the end of its input);
    # the stack's servers are the cloud's and stay.
    wait_until(lambda: not still_running(children), timeout=30,
               what=f"the killed service manager's children to exit: {still_running(children)}")
    assert site.servers(stack.id), "the stack's servers are gone with the service manager"

    site.sm.start()
    cluster = site.wait(cid, {"ready", "failed"}, timeout=900)
    events = site.events(cid)
    print(f"killed in {killed_in} (stack {stack.status}); after the restart: {cluster['state']} "
          f"{cluster['status_reason']}")
    if cluster["state"] == "ready":  # carried on: the same stack, found by its name
        assert cluster["outputs"]["stack_id"] == stack.id
        assert cluster["outputs"]["stack_status"] == "CREATE_COMPLETE"
        with dask_client(site, cluster) as client:
            assert client.submit(sum, [1, 2, 3]).result() == 6
    else:  # or failed, saying why (Heat's reason or a node's), never a crash of ours
        reason = cluster["status_reason"]
        assert reason and "internal error" not in reason, (reason, events)
    assert stacks_named(site, cid) in ([stack.id], [])  # never a second stack

    assert site.delete(cid)["state"] == "deleted"
    assert site.leftovers(cluster) == {}
