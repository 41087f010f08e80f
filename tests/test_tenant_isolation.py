"""Tenant isolation on the local provider, tried the way it was found broken: code running in
tenant B's cluster tries to read tenant A's secrets, the service manager's database, key,
token and log, and to signal A's processes and the service manager's."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from sm_fixtures import ServiceManager, frameworks_path, cluster_processes, wait_state, wait_until

# Runs in the cluster: tries every target, prints what it got, then stays up.
PROBE = '''
name: probe
description: Tries to read files and signal processes named in its targets; prints the outcome.
properties:
  targets: {type: str, default: "{}", description: "JSON: the read, list and signal targets"}
env:
  PROBE_TARGETS: "{{ props.targets }}"
roles:
  master:
    processes:
      - name: probe
        command:
          - "{{ python }}"
          - "-c"
          - |
            import json, os, time
            targets = json.loads(os.environ["PROBE_TARGETS"])
            outcome = {"read": {}, "list": {}, "signal": {}, "uid": os.getuid()}
            for path in targets["read"]:
                try:
                    with open(path, "rb") as handle:
                        handle.read(16)
                    outcome["read"][path] = "READ"
                except OSError as exc:
                    outcome["read"][path] = type(exc).__name__
            for path in targets["list"]:
                try:
                    outcome["list"][path] = sorted(os.listdir(path))
                except OSError as exc:
                    outcome["list"][path] = type(exc).__name__
            for pid, sig in targets["signal"]:
                try:
                    os.kill(pid, sig)
                    outcome["signal"][str(pid)] = "SENT"
                except OSError as exc:
                    outcome["signal"][str(pid)] = type(exc).__name__
            print("PROBE " + json.dumps(outcome), flush=True)
            time.sleep(600)
readiness:
  kind: none
'''

# Its readiness is a command: it passes only when run as the cluster's user, in the cluster's
# view of the files (from its node's work/ directory the data directory is four levels up).
CHECKED = '''
name: checked
description: Ready when its readiness command runs as the cluster, in the cluster's view.
roles:
  master:
    processes:
      - name: sleeper
        command: ["{{ python }}", "-c", "import time; time.sleep(600)"]
readiness:
  kind: command
  command: ["{{ python }}", "-c", "import os, sys; print('uid', os.getuid(), os.listdir('../../../..'));
            sys.exit(0 if os.getuid() != 0 and os.listdir('../../../..') == ['clusters'] else 3)"]
  timeout_s: 20
'''

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="per-cluster users need root; without it the "
                               "local provider serves one tenant (test_without_isolation_...)")


@pytest.fixture()
def fresh_sm(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServiceManager]:
    paths = frameworks_path(tmp_path, {"probe": PROBE, "checked": CHECKED})
    env = {"DISCO_FRAMEWORKS_PATH": paths, **getattr(request, "param", {})}
    manager = ServiceManager(tmp_path / "data", extra_env=env).start()
    try:
        yield manager
    finally:
        manager.cleanup()


def _probe_outcome(api: httpx.Client, cluster_id: str) -> dict:
    def printed() -> dict | None:
        text = api.get(f"/api/v1/clusters/{cluster_id}/logs/master/probe-probe").text
        line = next((l for l in text.splitlines() if l.startswith("PROBE ")), None)
        return json.loads(line[len("PROBE "):]) if line else None
    return wait_until(printed, timeout=30, what="the probe's outcome")


@root_only
def test_code_in_one_tenants_cluster_reaches_nothing_of_another_or_of_the_manager(
        fresh_sm: ServiceManager) -> None:
    alice, bob = fresh_sm.client("tenant-a"), fresh_sm.client("tenant-b")
    made = alice.post("/api/v1/clusters", json={"frameworks": [{"name": "webecho", "properties": {
        "secret_word": "swordfish-a"}}], "workers": 0}).json()
    a_cluster = wait_state(alice, made["id"], {"ready", "failed"}, 30)
    assert a_cluster["state"] == "ready", a_cluster["status_reason"]
    a_pid = cluster_processes(a_cluster["id"])[0].pid
    data = fresh_sm.data_dir
    a_node = data / "clusters" / a_cluster["id"] / "master"
    assert fresh_sm.proc is not None
    targets = {
        "read": [str(data / "disco.sqlite"), str(data / "secret.key"), str(data / "token"),
                 str(data / "sm.log"), str(a_node / "webecho-web.log"), str(a_node / "webecho-web.pid"),
                 f"/proc/{a_pid}/environ", f"/proc/{fresh_sm.proc.pid}/environ",
                 f"/proc/{a_pid}/root{a_node}/work"],
        "list": [str(data), str(data / "clusters"), str(a_node / "work"), f"/proc/{a_pid}/cwd"],
        # A's process gets a real SIGTERM; the service manager only the permission probe (0).
        "signal": [[a_pid, int(signal.SIGTERM)], [fresh_sm.proc.pid, 0]],
    }
    made = bob.post("/api/v1/clusters", json={"frameworks": [{"name": "probe", "properties": {
        "targets": json.dumps(targets)}}], "workers": 0})
    assert made.status_code == 201, made.text
    b_cluster = wait_state(bob, made.json()["id"], {"ready", "failed"}, 30)
    assert b_cluster["state"] == "ready", b_cluster["status_reason"]
    outcome = _probe_outcome(bob, b_cluster["id"])

    # Every file it tried exists, as the service manager sees the machine.
    assert all(Path(p).exists() for p in targets["read"] if p.startswith(str(data)))
    assert outcome["uid"] not in (0, os.getuid())
    assert all(result != "READ" for result in outcome["read"].values()), outcome["read"]
    # The data directory, as the probe sees it, holds nothing but the way to its own node.
    assert outcome["list"][str(data)] == ["clusters"]
    assert outcome["list"][str(data / "clusters")] == [b_cluster["id"]]
    assert outcome["list"][str(a_node / "work")] == "FileNotFoundError"
    assert outcome["list"][f"/proc/{a_pid}/cwd"] == "PermissionError"
    assert outcome["signal"] == {str(a_pid): "PermissionError", str(fresh_sm.proc.pid): "PermissionError"}
    assert psutil.pid_exists(a_pid) and alice.get(f"/api/v1/clusters/{a_cluster['id']}").json()["state"] == "ready"
    # Each cluster has a user of its own.
    assert {p.uids().real for p in cluster_processes(a_cluster["id"])} != {outcome["uid"]}


@root_only
def test_warm_started_processes_run_as_the_cluster_in_a_private_view(fresh_sm: ServiceManager) -> None:
    """Dask's processes are forked from a zygote that runs as root: each drops to the
    cluster's user and sees only its node's directory of the service manager's files."""
    api = fresh_sm.client()
    cluster = wait_state(api, api.post("/api/v1/clusters", json={"frameworks": ["dask"], "workers": 2})
                         .json()["id"], {"ready", "failed"}, 60)
    assert cluster["state"] == "ready", cluster["status_reason"]
    procs = cluster_processes(cluster["id"])
    assert len(procs) == 3
    assert len({p.uids().real for p in procs}) == 1 and procs[0].uids().real != 0
    for proc in procs:
        seen = Path(f"/proc/{proc.pid}/root") / str(fresh_sm.data_dir).lstrip("/")
        assert os.listdir(seen) == ["clusters"]
        assert os.listdir(seen / "clusters" / cluster["id"]) == [Path(proc.cwd()).parent.name]


@root_only
def test_a_manager_started_from_inside_its_data_directory_keeps_it_covered(tmp_path: Path) -> None:
    """Started there (as the start-up benchmark does), the service manager has its data
    directory on its import path; the clusters' view must still not show it."""
    data = tmp_path / "data"
    data.mkdir()
    manager = ServiceManager(data, cwd=data).start()
    try:
        api = manager.client()
        cluster = wait_state(api, api.post("/api/v1/clusters", json={"frameworks": ["dask"], "workers": 1})
                             .json()["id"], {"ready", "failed"}, 60)
        assert cluster["state"] == "ready", cluster["status_reason"]
        for proc in cluster_processes(cluster["id"]):
            assert os.listdir(Path(f"/proc/{proc.pid}/root") / str(data).lstrip("/")) == ["clusters"]
    finally:
        manager.cleanup()


@root_only
def test_a_frameworks_check_command_runs_as_the_cluster_in_its_view(fresh_sm: ServiceManager) -> None:
    api = fresh_sm.client()
    cluster = wait_state(api, api.post("/api/v1/clusters", json={"frameworks": ["checked"], "workers": 0})
                         .json()["id"], {"ready", "failed"}, 30)
    assert cluster["state"] == "ready", cluster["status_reason"]
    # The command's own files are gone once it has answered.
    node_dir = fresh_sm.data_dir / "clusters" / cluster["id"] / "master"
    assert sorted(p.name for p in node_dir.iterdir() if p.name.startswith(".run-")) == []
    assert [entry["process"] for entry in api.get(f"/api/v1/clusters/{cluster['id']}/logs").json()] \
        == ["deployment", "checked-sleeper"]


@pytest.mark.parametrize("fresh_sm", [{"DISCO_LOCAL_ISOLATION": "none"}], indirect=True)
def test_without_isolation_the_local_provider_serves_one_tenant(fresh_sm: ServiceManager) -> None:
    refused = fresh_sm.client("tenant-b").post("/api/v1/clusters", json={"frameworks": ["webecho"]})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "isolation_unavailable"
    assert fresh_sm.client("tenant-b").get("/api/v1/clusters").json() == []
    owner = fresh_sm.client("default")
    made = owner.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 0})
    assert made.status_code == 201, made.text
    cluster = wait_state(owner, made.json()["id"], {"ready", "failed"}, 30)
    assert cluster["state"] == "ready", cluster["status_reason"]
    # Clusters then run as the service manager's own user.
    assert {p.uids().real for p in cluster_processes(cluster["id"])} == {os.getuid()}
