"""The `taskfarm` framework on SSH hosts, as on the local provider: the service manager deploys
the farm server on the master host and a farm client on each worker host (one of them a bare
Debian, installed from nothing); a user submits a project with the `disco` commands
docs/taskfarm.md shows and gets the results both workers' clients computed; a scale-up's worker
enrolls; the farm's secrets are on the hosts only in their private files; a delete leaves
nothing on any host."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from disco.frameworks.render import derive_secret
from sm_fixtures import wait_until
from ssh_site import Site, close_site, open_site
from farm_cluster_checks import clients_that_did_it, run_disco, squares_done

# Create, a 40-unit project, a scale-up and a delete: about 5 minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def site(testbed_images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    opened = open_site(tmp_path_factory.mktemp("ssh-taskfarm"), bare=1, baked=3)
    try:
        yield opened
    finally:
        close_site(opened)


def test_a_project_runs_on_a_taskfarm_cluster_of_ssh_hosts(site: Site, tmp_path: Path) -> None:
    bare, baked1, baked2, baked3 = [h.name for h in site.testbed.hosts()]  # the bare host first
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DISCO_FARM_")},
           "DISCO_URL": site.sm.url, "DISCO_TOKEN": site.user_token, "HOME": str(tmp_path / "home")}
    made = run_disco(env, "cluster", "create", "--provider", "ssh", "--provider-option",
                     f"hosts={baked1},{bare},{baked2},{baked3}", "--framework", "taskfarm", "--workers", "2",
                     "--name", "farm-ssh", "--property", "taskfarm.seconds_per_slot=1", "--wait",
                     "--output", "json", cwd=tmp_path, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    cluster = json.loads(made.stdout)
    try:
        assert cluster["state"] == "ready", (cluster["status_reason"], site.events(cluster["id"]))
        nodes = {n["name"]: n["host"] for n in cluster["nodes"]}
        assert nodes == {"master": site.host(baked1).address, "worker-1": site.host(bare).address,
                         "worker-2": site.host(baked2).address}
        server_url = cluster["outputs"]["frameworks"]["taskfarm"]["server_url"]
        assert server_url == f"http://{nodes['master']}:8891"
        _project_on_both_workers(site, env, cluster, server_url, tmp_path)
        # A worker added later, on the last host, enrolls its client too: ready again once the
        # farm lists it.
        scaled = run_disco(env, "cluster", "scale", "farm-ssh", "3", "--wait", "--output", "json", cwd=tmp_path,
                           timeout=600)
        assert scaled.returncode == 0, scaled.stderr[-3000:]
        cluster = json.loads(scaled.stdout)
        assert cluster["state"] == "ready", cluster["status_reason"]
        assert {n["name"]: n["host"] for n in cluster["nodes"]}["worker-3"] == site.host(baked3).address
        listed = run_disco({**env, **_farm_env(env, tmp_path)}, "farm", "clients", "--output", "json", cwd=tmp_path)
        assert sorted(c["name"] for c in json.loads(listed.stdout)["clients"]) == ["worker-1", "worker-2", "worker-3"]
        _secrets_only_in_private_files(site, cluster, env["DISCO_TOKEN"])
    finally:  # a failure here must not keep the hosts from the next test
        deleted = run_disco(env, "cluster", "delete", "farm-ssh", cwd=tmp_path)
        assert deleted.returncode == 0, deleted.stderr
        with site.api() as api:
            wait_until(lambda: api.get(f"/api/v1/clusters/{cluster['id']}").json()["state"] == "deleted",
                       timeout=180, what="the cluster deleted")
    assert site.leftovers(cluster["id"]) == {}
    assert all(h["state"] == "free" for h in site.pool().values()), site.pool()


def _farm_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """`disco cluster env`: the farm's URL and owner token, which the farm verbs then use."""
    shown = run_disco(env, "cluster", "env", "farm-ssh", "--output", "json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["env"]


def _project_on_both_workers(site: Site, env: dict[str, str], cluster: dict, server_url: str,
                             tmp_path: Path) -> None:
    farm_env = _farm_env(env, tmp_path)
    assert farm_env["DISCO_FARM_URL"] == server_url
    user = {**env, **farm_env}
    # The farm on the hosts lets nobody in without the owner token.
    assert httpx.get(f"{server_url}/api/v1/farm/projects", trust_env=False).status_code == 401

    squares_done(user, tmp_path)

    # Both workers' clients computed units, each enrolled under its node's name with the host's
    # cores as its slots, and each sent its slots' CPU and memory (psutil, on the bare host too).
    clients = clients_that_did_it(user, tmp_path, ["worker-1", "worker-2"])
    hosts = {h.address: h for h in site.testbed.hosts()}
    for client in clients:
        host = hosts[next(n["host"] for n in cluster["nodes"] if n["name"] == client["name"])]
        assert client["slots"] == int(site.testbed.exec(host, ["nproc"]).stdout), client

    def measured() -> list[dict] | None:
        overview = httpx.get(f"{server_url}/api/v1/farm/overview", trust_env=False,
                             headers={"X-Auth-Token": farm_env["DISCO_FARM_TOKEN"]})
        assert overview.status_code == 200, overview.text
        found = overview.json()["clients"]
        return found if all(c["stats_at"] is not None for c in found) else None

    assert sorted(c["name"] for c in wait_until(measured, timeout=60, interval=1, what="both clients' stats")) == [
        "worker-1", "worker-2"]


def _secrets_only_in_private_files(site: Site, cluster: dict, sm_token: str) -> None:
    """The farm's owner token and enrollment key: in no process's command line or environment on
    any host, and on its disk only in the farm's own private files (the master's two, each
    worker's key) and the node supervisor's copy of the launch, mode 0600."""
    with site.api() as api:
        web_token = api.get(f"/api/v1/clusters/{cluster['id']}/credentials").json()["web_token"]
    owner_token = derive_secret(web_token, "taskfarm-owner")
    enrollment_key = derive_secret(web_token, "taskfarm-enrollment")
    assert owner_token not in (web_token, sm_token)
    secrets = f"{owner_token}\n{enrollment_key}\n"
    for host in site.testbed.hosts():
        # Every process's command line and environment, read by a command that names no secret
        # itself (the patterns go to grep on its stdin below, for the same reason).
        seen = site.testbed.exec(host, ["sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; "
                                        "tr '\\0' ' ' < $p/environ; echo; done 2>/dev/null; true"]).stdout
        assert "disco.cli.farm" in seen, host.name  # the scan saw the farm's own processes
        assert owner_token not in seen and enrollment_key not in seen, host.name
        found = site.testbed.exec(host, ["sh", "-c", "grep -rlF -f - /opt/disco /tmp /root 2>/dev/null; true"],
                                  input=secrets).stdout.split()
        node = next(n["name"] for n in cluster["nodes"] if n["host"] == host.address)
        # The process's files under work/, and the node supervisor's own copy of the launch (it
        # restarts the process from it; docs/node.md), root's.
        process = "server" if node == "master" else "client"
        expected = {"work/farm-secrets/enrollment.key": "600", f"launches/taskfarm-{process}.json": "600 root",
                    **({"work/farm-secrets/owner.token": "600"} if node == "master" else {})}
        node_dir = f"/opt/disco/clusters/{cluster['id']}/{node}/"
        assert all(p.startswith(node_dir) for p in found), (host.name, found)
        modes = {p.removeprefix(node_dir): site.testbed.exec(host, ["stat", "-c", "%a %U", p]).stdout.split()
                 for p in found}
        assert {p: m[0] if p.startswith("work/") else " ".join(m) for p, m in modes.items()} == expected, (
            host.name, modes)
