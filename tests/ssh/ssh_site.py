"""A service manager with a host pool of real test hosts (podman containers from the
project's own Debian images), as an admin sets it up: `disco testbed up`'s inventory fed to
`disco hosts add --from`. Shared by the SSH-provider tests; a module, not a conftest."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from disco.testbed import TestHost, Testbed
from sm_fixtures import ServiceManager, listening_on, wait_state
from testbed_fixtures import FACTORY_PREFIX, _allocation_lock, _free_block


@dataclass
class Site:
    testbed: Testbed
    sm: ServiceManager
    admin_token: str
    user_token: str

    def host(self, name: str) -> TestHost:
        return next(h for h in self.testbed.hosts() if h.name == name)

    def api(self, admin: bool = False) -> httpx.Client:
        token = self.admin_token if admin else self.user_token
        return httpx.Client(base_url=self.sm.url, headers={"X-Auth-Token": token}, timeout=60, trust_env=False)

    def disco(self, *args: str, admin: bool = False, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """The `disco` command as a user runs it against this service manager."""
        token = self.admin_token if admin else self.user_token
        env = {k: v for k, v in os.environ.items() if k not in ("DISCO_URL", "DISCO_TOKEN")}
        return subprocess.run([sys.executable, "-m", "disco.cli.main", *args, "--url", self.sm.url, "--token", token],
                              env=env, capture_output=True, text=True, timeout=timeout)

    def pool(self) -> dict[str, dict]:
        with self.api(admin=True) as api:
            response = api.get("/api/v1/hosts")
            assert response.status_code == 200, response.text
            return {h["name"]: h for h in response.json()}

    def create(self, body: dict, states: set[str] = frozenset({"ready", "failed"}), timeout: float = 600) -> dict:
        with self.api() as api:
            made = api.post("/api/v1/clusters", json={"provider": "ssh", **body})
            assert made.status_code == 201, made.text
            return wait_state(api, made.json()["id"], set(states), timeout)

    def resume(self, cluster_id: str, timeout: float = 600) -> dict:
        """What a user does after fixing what failed: try the cluster again."""
        with self.api() as api:
            resumed = api.post(f"/api/v1/clusters/{cluster_id}/actions/resume")
            assert resumed.status_code == 200, resumed.text
            return wait_state(api, cluster_id, {"ready", "failed"}, timeout)

    def events(self, cluster_id: str) -> list[dict]:
        with self.api() as api:
            return api.get(f"/api/v1/clusters/{cluster_id}/events").json()

    def delete(self, cluster_id: str, timeout: float = 180) -> dict:
        with self.api() as api:
            assert api.delete(f"/api/v1/clusters/{cluster_id}").status_code == 202
            return wait_state(api, cluster_id, {"deleted"}, timeout)

    def leftovers(self, cluster_id: str) -> dict[str, list[str]]:
        """What of a cluster is on each host, found on the host itself (a /proc scan for the
        cluster's mark, its directory) and from outside (listening sockets other than sshd)."""
        found: dict[str, list[str]] = {}
        for host in self.testbed.hosts():
            scan = self.testbed.exec(host, ["sh", "-c",
                                            f"grep -l 'DISCO_CLUSTER={cluster_id}' /proc/[0-9]*/environ 2>/dev/null;"
                                            f"ls -d /opt/disco/clusters/{cluster_id} 2>/dev/null; true"]).stdout.split()
            ports = [a for a in listening_on([host.address]) if not a.endswith(":22")]
            if scan or ports:
                found[host.name] = scan + ports
        return found


def open_site(state_dir: Path, bare: int, baked: int, sm_env: dict[str, str] | None = None) -> Site:
    """Test hosts (the bare ones first), a service manager, an admin who adds the hosts."""
    with _allocation_lock():
        k = _free_block()
        testbed = Testbed(f"ssh-{k}", f"{FACTORY_PREFIX}.{k}", state_dir=state_dir / "testbed")
        if bare:
            testbed.up(bare, image="bare")
        if baked:
            testbed.up(baked, image="baked")
    sm = None
    try:
        sm = ServiceManager(state_dir / "sm", extra_env=sm_env).start()
        store = sm.store()
        try:
            site = Site(testbed, sm, store.create_token("admin", admin=True), store.create_token("tenant-ssh"))
        finally:
            store.close()
        inventory = state_dir / "inventory.yaml"
        inventory.write_text(testbed.inventory())
        added = site.disco("hosts", "add", "--from", str(inventory), admin=True)
        assert added.returncode == 0, added.stderr
        return site
    except BaseException:
        if sm is not None:
            sm.stop()
        testbed.down()
        raise


def close_site(site: Site) -> None:
    try:
        site.sm.cleanup()
    finally:
        site.testbed.down()
