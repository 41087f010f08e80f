"""Faults on SSH hosts, each with its reason in the cluster's events, nothing left behind, and a
retry that works once the fault is gone: an unreachable host, a key the host refuses, a host
key that changed, a host that dies during its install, a download whose checksum does not
match — and `kill -9` of the service manager in the middle of a bootstrap."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest

from blob_server import BlobServer, blobby_frameworks_path
from sm_fixtures import wait_state, wait_until
from ssh_site import Site, close_site, open_site
from test_ssh_clusters import dask_client

pytestmark = pytest.mark.slow

GOOD_BLOB = b"the real thing\n" * 1000


@pytest.fixture(scope="module")
def blobs() -> Iterator[BlobServer]:
    server = BlobServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def site(testbed_images, blobs: BlobServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("ssh-faults")
    path = blobby_frameworks_path(folder, blobs, GOOD_BLOB)
    opened = open_site(folder, bare=2, baked=2, sm_env={"DISCO_FRAMEWORKS_PATH": path})
    try:
        yield opened
    finally:
        close_site(opened)


def hosts(site: Site) -> tuple[str, str, str, str]:
    bare1, bare2, baked1, baked2 = (h.name for h in site.testbed.hosts())
    return bare1, bare2, baked1, baked2


def messages(site: Site, cluster_id: str) -> str:
    return "\n".join(e["message"] for e in site.events(cluster_id))


def finish(site: Site, cluster: dict) -> None:
    """Delete, then nothing of the cluster on any host, and every host free again."""
    assert site.delete(cluster["id"])["state"] == "deleted"
    assert site.leftovers(cluster["id"]) == {}
    assert {h["state"] for h in site.pool().values()} == {"free"}, site.pool()


def test_unreachable_host(site: Site) -> None:
    _, _, baked1, baked2 = hosts(site)
    site.testbed.stop(site.host(baked2), grace_s=1)
    try:
        cluster = site.create({"workers": 1, "frameworks": ["webecho"],
                               "provider_options": {"hosts": f"{baked1},{baked2}"}})
    finally:
        site.testbed.start(site.host(baked2))
    assert cluster["state"] == "failed"
    address = site.host(baked2).address
    assert f"cannot reach {address}:22" in cluster["status_reason"]
    assert "trying again" in messages(site, cluster["id"])  # a host that is down may come back
    assert site.resume(cluster["id"])["state"] == "ready"
    finish(site, cluster)


def test_a_key_the_host_refuses(site: Site) -> None:
    _, _, baked1, baked2 = hosts(site)
    host = site.host(baked2)
    site.testbed.exec(host, ["sh", "-c", "ssh-keygen -q -t ed25519 -N '' -f /tmp/other && "
                                         "cp /tmp/other.pub /root/.ssh/authorized_keys"])
    cluster = site.create({"workers": 1, "frameworks": ["webecho"], "provider_options": {"hosts": f"{baked1},{baked2}"}})
    assert cluster["state"] == "failed"
    assert "refused the key" in cluster["status_reason"]
    assert "trying again" not in messages(site, cluster["id"])  # a wrong key stays wrong
    site.testbed.exec(host, ["cp", "/etc/disco-testbed/authorized_keys", "/root/.ssh/authorized_keys"])
    assert site.resume(cluster["id"])["state"] == "ready"
    finish(site, cluster)


def test_a_changed_host_key_is_refused_and_the_host_quarantined(site: Site) -> None:
    _, _, baked1, baked2 = hosts(site)
    host = site.host(baked2)
    cluster = site.create({"workers": 1, "frameworks": ["webecho"], "provider_options": {"hosts": f"{baked1},{baked2}"}})
    assert cluster["state"] == "ready", cluster["status_reason"]
    # The machine is reinstalled (or someone sits in between): it presents another host key.
    site.testbed.exec(host, ["sh", "-c", "cp /etc/ssh/ssh_host_ed25519_key /root/saved_key && "
                                         "rm /etc/ssh/ssh_host_ed25519_key* && "
                                         "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key"])
    # A connection made before the change is still with the machine we know; the service
    # manager's next start has none.
    site.sm.stop()
    site.sm.start()
    try:
        gone = site.delete(cluster["id"])
        assert gone["state"] == "deleted"
        text = messages(site, cluster["id"])
        assert "host key differs" in text and "quarantined" in text
        pool = site.pool()
        assert pool[baked2]["state"] == "unreachable" and pool[baked1]["state"] == "free"
        # Not accepted by a check either, while the key is not the recorded one.
        checked = site.disco("hosts", "check", baked2, admin=True)
        assert checked.returncode != 0 and "host key changed" in checked.stdout + checked.stderr
        assert site.pool()[baked2]["state"] == "unreachable"
    finally:
        site.testbed.exec(host, ["sh", "-c", "mv /root/saved_key /etc/ssh/ssh_host_ed25519_key"])
    # With the right machine back, a check cleans what the cluster left there and frees it.
    assert host.name in site.leftovers(cluster["id"])
    checked = site.disco("hosts", "check", baked2, admin=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert site.pool()[baked2]["state"] == "free"
    assert site.leftovers(cluster["id"]) == {}


def test_a_host_that_dies_during_its_install(site: Site) -> None:
    bare1, _, baked1, _ = hosts(site)
    host = site.host(bare1)
    with site.api() as api:
        made = api.post("/api/v1/clusters", json={"provider": "ssh", "workers": 1, "frameworks": ["dask"],
                                                  "provider_options": {"hosts": f"{baked1},{bare1}"}})
        assert made.status_code == 201, made.text
        cluster_id = made.json()["id"]
        # The baked master is done in seconds; the bare worker installs Python packages for longer.
        wait_until(lambda: "master (" in messages(site, cluster_id) and "bootstrapped" in messages(site, cluster_id),
                   timeout=120, what="the master bootstrapped")
    time.sleep(2)
    site.testbed.kill(host)
    site.testbed.start(host)
    with site.api() as api:
        cluster = wait_state(api, cluster_id, {"ready", "failed"}, 600)
    if cluster["state"] == "failed":  # the host came back after the provider's last try
        assert bare1 in cluster["status_reason"]
        cluster = site.resume(cluster_id)
    assert cluster["state"] == "ready", cluster["status_reason"]
    text = messages(site, cluster_id)
    assert f"worker-1 ({bare1})" in text and ("connection lost" in text or "cannot reach" in text
                                              or "bootstrap failed" in text)
    with dask_client(site, cluster) as client:
        assert client.submit(sum, range(10)).result() == 45
    finish(site, cluster)


def test_a_download_whose_checksum_does_not_match(site: Site, blobs: BlobServer) -> None:
    _, _, baked1, _ = hosts(site)
    cluster = site.create({"workers": 0, "frameworks": ["blobby"], "provider_options": {"hosts": baked1}})
    assert cluster["state"] == "failed"
    assert f"{blobs.url}: SHA-256 is {hashlib.sha256(blobs.content).hexdigest()}" in cluster["status_reason"]
    assert "trying again" not in messages(site, cluster["id"])
    # Nothing unchecked was kept on the host.
    found = site.testbed.exec(site.host(baked1), ["sh", "-c", "ls /opt/disco/lib 2>/dev/null; true"]).stdout
    assert "blob" not in found
    blobs.content = GOOD_BLOB  # the mirror is mended
    assert site.resume(cluster["id"])["state"] == "ready"
    kept = site.testbed.exec(site.host(baked1), ["cat", "/opt/disco/lib/blob.txt"]).stdout
    assert kept.encode() == GOOD_BLOB
    finish(site, cluster)


def test_service_manager_killed_mid_bootstrap(site: Site) -> None:
    _, bare2, baked1, _ = hosts(site)
    with site.api() as api:
        made = api.post("/api/v1/clusters", json={"provider": "ssh", "workers": 1, "frameworks": ["dask"],
                                                  "provider_options": {"hosts": f"{bare2},{baked1}"}})
        assert made.status_code == 201, made.text
        cluster_id = made.json()["id"]
        wait_until(lambda: api.get(f"/api/v1/clusters/{cluster_id}").json()["state"] == "installing",
                   timeout=60, what="installing")
    time.sleep(3)  # the bare master is in the middle of its first install
    site.sm.kill9()
    site.sm.start()
    with site.api() as api:
        cluster = wait_state(api, cluster_id, {"ready", "failed"}, 600)
    assert cluster["state"] == "ready", cluster["status_reason"]
    # One supervisor per node, whatever the two service managers each started.
    for name in (bare2, baked1):
        supervisors = site.testbed.exec(site.host(name), ["sh", "-c", "grep -l '[_]supervisor' /proc/[0-9]*/cmdline "
                                                                      "2>/dev/null | wc -l"]).stdout.strip()
        assert supervisors == "1", (name, supervisors)
    with dask_client(site, cluster) as client:
        before = client.run_on_scheduler(lambda: __import__("os").getpid())
    # Killed again once ready: the next one adopts what runs (the same scheduler) and stays ready.
    site.sm.kill9()
    site.sm.start()
    time.sleep(3)
    with site.api() as api:
        cluster = wait_state(api, cluster_id, {"ready", "failed"}, 120)
    assert cluster["state"] == "ready", cluster["status_reason"]
    with dask_client(site, cluster) as client:
        assert client.run_on_scheduler(lambda: __import__("os").getpid()) == before
        assert client.submit(sum, range(5)).result() == 10
    finish(site, cluster)
