"""A service manager whose clusters go to the session's cloud in a box: the clouds.yaml entry
sent as each spec's `cloud`, helpers to drive clusters through the REST API, and what Heat and
podman (not DISCO) say is left of a cluster."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from cloud_fixtures import STACK_LABEL, TestCloud
from disco.providers.openstack.heat_client import HeatStacks, connect
from disco.testbed.cloud.catalogue import BOX_PROVIDER_OPTIONS
from disco.testbed.cloud.cloud import CLOUD_LABEL
from disco.testbed.podman import containers
from sm_fixtures import ServiceManager, listening_on


BOOT_TIMEOUT_S = 420


@dataclass
class CloudSite:
    sm: ServiceManager
    cloud: TestCloud
    entry: dict[str, Any]
    token: str

    @property
    def heat(self) -> HeatStacks:
        return HeatStacks(connect(self.entry))

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.sm.url, headers={"X-Auth-Token": self.token}, timeout=60,
                            trust_env=False)

    def request(self, workers: int, frameworks: list[Any], **options: str) -> dict[str, Any]:
        # A node boots here in seconds: a boot that never signals fails its cluster (Heat's
        # wait condition times out) within the tests' own waits, not after the default 30 minutes.
        return {"provider": "openstack", "workers": workers, "frameworks": frameworks, "cloud": self.entry,
                "provider_options": {**BOX_PROVIDER_OPTIONS, "timeout": str(BOOT_TIMEOUT_S), **options}}

    def create(self, body: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        with self.api() as api:
            made = api.post("/api/v1/clusters", json=body)
            assert made.status_code == 201, made.text
            return self.wait(made.json()["id"], {"ready", "failed"}, timeout)

    def wait(self, cluster_id: str, states: set[str], timeout: float = 600) -> dict[str, Any]:
        return self._until(cluster_id, lambda c: c["state"] in states, timeout, f"a state in {sorted(states)}")

    def scale(self, cluster_id: str, workers: int, timeout: float = 600) -> dict[str, Any]:
        """Asks for `workers` workers; the cluster once it has them all (or has failed)."""
        with self.api() as api:
            changed = api.patch(f"/api/v1/clusters/{cluster_id}", json={"workers": workers})
            assert changed.status_code == 200, changed.text
        return self._until(cluster_id, lambda c: c["state"] == "failed" or (
            c["state"] == "ready" and len(c["nodes"]) == workers + 1
            and all(n["state"] == "allocated" for n in c["nodes"])), timeout, f"{workers} workers")

    def _until(self, cluster_id: str, done: Callable[[dict[str, Any]], bool], timeout: float,
               what: str) -> dict[str, Any]:
        """The cluster once `done`; on a timeout, an error that says where it stood (its
        nodes, its last events, its stack as Heat shows it), not only that it took too long."""
        deadline = time.monotonic() + timeout
        with self.api() as api:
            while True:
                cluster = api.get(f"/api/v1/clusters/{cluster_id}").json()
                if done(cluster):
                    return cluster
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        nodes = {n["name"]: n["state"] for n in cluster.get("nodes", [])}
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: cluster {cluster.get('state')} "
                             f"({cluster.get('status_reason')}), nodes {nodes}; last events: "
                             f"{self.events(cluster_id)[-8:]}; Heat: {self.heat_view(cluster_id)}")

    def heat_view(self, cluster_id: str) -> str:
        """The cluster's stack and its resources' states, as Heat shows them."""
        try:
            heat = self.heat
            stack_id = heat.find(f"disco-{cluster_id}")
            if stack_id is None:
                return "no stack"
            state = heat.state(stack_id)
            resources = [f"{r['resource_name']} {r['resource_status']} {r.get('resource_status_reason') or ''}".strip()
                         for r in heat.resources(stack_id)]
            return f"{state.status if state else 'gone'} ({state.reason if state else ''}); {resources}"
        except Exception as exc:  # a diagnosis must not hide the failure it explains
            return f"unreadable: {type(exc).__name__}: {exc}"

    def action(self, cluster_id: str, action: str) -> None:
        with self.api() as api:
            done = api.post(f"/api/v1/clusters/{cluster_id}/actions/{action}")
            assert done.status_code == 200, done.text

    def delete(self, cluster_id: str, timeout: float = 300) -> dict[str, Any]:
        with self.api() as api:
            assert api.delete(f"/api/v1/clusters/{cluster_id}").status_code == 202
        return self.wait(cluster_id, {"deleted"}, timeout)

    def events(self, cluster_id: str) -> list[str]:
        with self.api() as api:
            return [f"{e['step']}: {e['message']}" for e in api.get(f"/api/v1/clusters/{cluster_id}/events").json()]

    def stack(self, cluster_id: str) -> Any:
        """The cluster's stack as Heat shows it (None: Heat knows none)."""
        stack_id = self.heat.find(f"disco-{cluster_id}")
        return None if stack_id is None else self.heat.state(stack_id)

    def servers(self, stack_id: str) -> list[dict[str, Any]]:
        return containers(f"{STACK_LABEL}={stack_id}")

    def leftovers(self, cluster: dict[str, Any]) -> dict[str, Any]:
        """What Heat, podman and the sockets of this machine still hold of a cluster."""
        found: dict[str, Any] = {}
        if self.stack(cluster["id"]) is not None:
            found["stack"] = f"disco-{cluster['id']}"
        stack_id = (cluster.get("outputs") or {}).get("stack_id")
        if stack_id and self.servers(stack_id):
            found["containers"] = [c.get("Names") for c in self.servers(stack_id)]
        hosts = [n["host"] for n in cluster["nodes"] if n.get("host")]
        if hosts and listening_on(hosts):
            found["listening"] = listening_on(hosts)
        return found


def open_cloud_site(cloud: TestCloud, data_dir: Path, extra_env: dict[str, str] | None = None) -> CloudSite:
    entry = yaml.safe_load(cloud.cloud.clouds_yaml())["clouds"][cloud.cloud.name]
    sm = ServiceManager(data_dir, extra_env=extra_env).start()
    return CloudSite(sm, cloud, entry, sm.token("cloud-user"))


def close_cloud_site(site: CloudSite) -> None:
    if site.sm.proc is not None and site.sm.proc.poll() is not None:
        site.sm.start()  # a test killed it: the next one on the same data deletes what it made
    site.sm.cleanup()
    # Nothing of any cluster is left in the cloud: no stack of DISCO's, no server container.
    left = [s.name for s in site.heat.conn.orchestration.stacks() if s.name.startswith("disco-")]
    assert left == [], f"stacks left: {left}"
    assert containers(f"{CLOUD_LABEL}={site.cloud.cloud.name}") == []


@contextmanager
def cloud_site(cloud: TestCloud, data_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[CloudSite]:
    """A module's site: opened, then closed with the check that nothing is left, even on failure."""
    opened = open_cloud_site(cloud, data_dir, extra_env)
    try:
        yield opened
    finally:
        close_cloud_site(opened)
