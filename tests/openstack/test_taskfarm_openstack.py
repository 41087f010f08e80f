"""The `taskfarm` framework through the OpenStack provider on the cloud in a box: one Heat stack
of a master server (the farm server) and two worker servers (a farm client each); a user
submits a project with the `disco` commands docs/taskfarm.md shows and gets the results both
workers' clients computed; a scale-up (a stack update) adds a worker whose client enrolls; a
delete leaves no stack, no server and no listening socket."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud_site import CloudSite, cloud_site
from farm_cluster_checks import clients_that_did_it, run_disco, squares_done

# Create, a 40-unit project, a scale-up and a delete: about 5 minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def site(test_cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudSite]:  # type: ignore[no-untyped-def]
    with cloud_site(test_cloud, tmp_path_factory.mktemp("openstack-taskfarm-sm")) as opened:
        yield opened


def test_a_project_runs_on_a_taskfarm_stack(site: CloudSite, tmp_path: Path) -> None:
    body = {**site.request(2, [{"name": "taskfarm", "properties": {"seconds_per_slot": 1}}]), "name": "farm-os"}
    cluster = site.create(body)
    try:
        assert cluster["state"] == "ready", (cluster["status_reason"], site.events(cluster["id"]))
        stack = site.stack(cluster["id"])
        assert stack.status == "CREATE_COMPLETE" and len(site.servers(stack.id)) == 3
        master = next(n["host"] for n in cluster["nodes"] if n["role"] == "master")
        server_url = cluster["outputs"]["frameworks"]["taskfarm"]["server_url"]
        assert server_url == f"http://{master}:8891"

        env = {**{k: v for k, v in os.environ.items() if not k.startswith("DISCO_FARM_")},
               "DISCO_URL": site.sm.url, "DISCO_TOKEN": site.token, "HOME": str(tmp_path / "home")}
        shown = run_disco(env, "cluster", "env", "farm-os", "--output", "json", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        farm_env = json.loads(shown.stdout)["env"]
        assert farm_env["DISCO_FARM_URL"] == server_url
        user = {**env, **farm_env}
        assert httpx.get(f"{server_url}/api/v1/farm/projects", trust_env=False).status_code == 401

        squares_done(user, tmp_path)

        # Both worker servers' clients computed units, each enrolled under its node's name.
        clients = clients_that_did_it(user, tmp_path, ["worker-1", "worker-2"])
        assert all(c["slots"] >= 1 for c in clients), clients

        # Scaling is a stack update: the new worker server's client enrolls, and the cluster
        # is ready again once the farm lists it.
        grown = site.scale(cluster["id"], 3)
        assert grown["state"] == "ready", (grown["status_reason"], site.events(cluster["id"]))
        assert len(site.servers(stack.id)) == 4
        listed = run_disco(user, "farm", "clients", "--output", "json", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert sorted(c["name"] for c in json.loads(listed.stdout)["clients"]) == ["worker-1", "worker-2", "worker-3"]
        cluster = grown
    finally:  # whatever failed, the stack goes
        deleted = site.delete(cluster["id"])
    assert deleted["state"] == "deleted"
    assert site.leftovers(cluster) == {}
