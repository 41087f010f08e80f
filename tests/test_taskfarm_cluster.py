"""The `taskfarm` framework: the service manager deploys a farm server on the master and a farm
client on each worker, and a user submits a Python-function project to it with the `disco`
commands docs/taskfarm.md shows, and gets the results the workers' clients computed; the farm's
secrets stay in their private files; a scale-up's worker enrolls; a delete leaves nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import httpx
import pytest

from disco.frameworks.render import derive_secret
from disco.providers.local import share_of_this_machine
from farm_cluster_checks import clients_that_did_it, run_disco, squares_done
from sm_fixtures import ServiceManager, cluster_processes, listening_on, wait_state

pytestmark = pytest.mark.slow

def test_a_project_runs_on_a_deployed_taskfarm_cluster(sm: ServiceManager, api: httpx.Client,
                                                       tmp_path: Path) -> None:
    # The user's shell: the service manager's URL and token, a home of its own for `cluster env`.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DISCO_FARM_")},
           "DISCO_URL": sm.url, "DISCO_TOKEN": sm.token(), "HOME": str(tmp_path / "home")}
    made = run_disco(env, "cluster", "create", "--framework", "taskfarm", "--workers", "2", "--name", "farm1",
                     "--property", "taskfarm.seconds_per_slot=1", "--wait", "--output", "json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    cluster = json.loads(made.stdout)
    assert cluster["state"] == "ready", cluster["status_reason"]
    master = next(n for n in cluster["nodes"] if n["role"] == "master")
    server_url = cluster["outputs"]["frameworks"]["taskfarm"]["server_url"]
    assert server_url == f"http://{master['host']}:8891"

    # `disco cluster env`: the farm's URL and owner token, which the farm verbs then use.
    shown = run_disco(env, "cluster", "env", "farm1", "--output", "json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    farm_env = json.loads(shown.stdout)["env"]
    assert farm_env["DISCO_FARM_URL"] == server_url
    owner_token = farm_env["DISCO_FARM_TOKEN"]
    user = {**env, **farm_env}

    # Nobody gets in without the owner token, nor enrolls without the cluster's key.
    assert httpx.get(f"{server_url}/api/v1/farm/projects", trust_env=False).status_code == 401
    assert httpx.get(f"{server_url}/api/v1/farm/projects", headers={"X-Auth-Token": sm.token()},
                     trust_env=False).status_code == 401
    enroll = httpx.post(f"{server_url}/api/v1/farm/clients", json={"name": "intruder"},
                        headers={"X-Farm-Key": "fk_guess"}, trust_env=False)
    assert enroll.status_code == 401 and enroll.json()["error"]["code"] == "invalid_key"

    submitted_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    squares_done(user, tmp_path, timeout=120)
    # While the project was open the cluster counted as in use (the framework's `activity`).
    store = sm.store()
    try:
        last_active = store.get_cluster(cluster["id"]).last_active_at
    finally:
        store.close()
    assert last_active.replace(tzinfo=None) > submitted_at

    # The units were computed by the two workers' clients, each enrolled under its node's name,
    # with the node's cores as its slots (the local provider's share of this machine).
    workers = sorted(n["name"] for n in cluster["nodes"] if n["role"] == "worker")
    clients = clients_that_did_it(user, tmp_path, workers)
    assert all(c["slots"] == share_of_this_machine(3).cpus for c in clients)

    # The farm's secrets: in clear only in their own private files, never on a command line or in
    # a log; the farm's owner token is not the service manager's, nor the cluster's token.
    credentials = api.get(f"/api/v1/clusters/{cluster['id']}/credentials").json()
    enrollment_key = derive_secret(credentials["web_token"], "taskfarm-enrollment")
    assert owner_token not in (credentials["web_token"], env["DISCO_TOKEN"])
    for proc in cluster_processes(cluster["id"]):
        command_line = " ".join(proc.cmdline())
        assert owner_token not in command_line and enrollment_key not in command_line
    holders = []
    for path in sm.data_dir.rglob("*"):
        if path.is_file() and path.suffix not in (".sqlite", ".sqlite-wal", ".sqlite-shm"):
            data = path.read_bytes()
            if owner_token.encode() in data or enrollment_key.encode() in data:
                holders.append(path)
                assert path.stat().st_mode & 0o077 == 0, path
    assert sorted(p.relative_to(sm.data_dir / "clusters" / cluster["id"]).as_posix() for p in holders) == sorted(
        ["master/work/farm-secrets/owner.token", "master/work/farm-secrets/enrollment.key",
         *(f"{w}/work/farm-secrets/enrollment.key" for w in workers)])

    # A worker added later enrolls its client too: ready again once the farm lists it.
    scaled = run_disco(env, "cluster", "scale", "farm1", "3", "--wait", "--output", "json", cwd=tmp_path)
    assert scaled.returncode == 0, scaled.stderr[-3000:]
    cluster = json.loads(scaled.stdout)
    assert cluster["state"] == "ready", cluster["status_reason"]
    listed = run_disco(user, "farm", "clients", "--output", "json", cwd=tmp_path)
    assert sorted(c["name"] for c in json.loads(listed.stdout)["clients"]) == [*workers, "worker-3"]

    hosts = [n["host"] for n in cluster["nodes"]]
    assert len(hosts) == 4
    deleted = run_disco(env, "cluster", "delete", "farm1", cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    wait_state(api, cluster["id"], {"deleted"}, 60)
    assert cluster_processes(cluster["id"]) == [] and listening_on(hosts) == []
