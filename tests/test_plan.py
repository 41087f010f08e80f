"""`POST /api/v1/clusters?dry_run=true` and `disco cluster plan` against a real service manager:
the plan of a create, for the local and the SSH provider, with where every configuration value
comes from, the same errors as a create, no secret, and nothing made (no cluster row, no host
taken, no node directory, no process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from disco.providers.marks import marked_processes
from sm_fixtures import ServiceManager
from sshd_fixture import Sshd

CLUSTERS = "/api/v1/clusters"
PLAN = f"{CLUSTERS}?dry_run=true"
HADOOP_SPARK = {"workers": 2, "frameworks": [
    {"name": "hadoop", "properties": {"nodemanager_vcores": 3},
     "overrides": {"hdfs-site.xml": {"dfs.blocksize": "268435456"}}},
    {"name": "spark", "properties": {"executor_memory": "2g"}}]}


@pytest.fixture(scope="module")
def owner(sm: ServiceManager) -> Iterator[tuple[str, httpx.Client]]:
    """The sole tenant's token (the local provider serves any tenant only as root) and a client."""
    token = sm.token("default")
    with httpx.Client(base_url=sm.url, headers={"X-Auth-Token": token}, timeout=60, trust_env=False) as client:
        yield token, client


def what_exists(sm: ServiceManager) -> dict[str, Any]:
    """Everything a create would leave a trace in: rows, node directories, processes."""
    store = sm.store()
    try:
        rows = sorted(c.id for c in store.list_clusters(include_deleted=True))
    finally:
        store.close()
    root = sm.data_dir / "clusters"
    assert sm.proc is not None
    return {"clusters": rows,
            "dirs": sorted(str(p.relative_to(sm.data_dir)) for p in root.rglob("*")) if root.exists() else [],
            "marked": sorted(p.pid for _, p in marked_processes(str(root))),
            "children": sorted(p.pid for p in psutil.Process(sm.proc.pid).children(recursive=True))}


def keys_of(plan: dict[str, Any], node: str, path: str) -> dict[str, dict[str, Any]]:
    entry = next(n for n in plan["nodes"] if n["name"] == node)
    for files in entry["files"].values():
        if path in files:
            return files[path]["keys"]
    raise AssertionError(f"{node} has no {path}")


def test_a_local_hadoop_and_spark_plan_shows_each_level_of_precedence(sm: ServiceManager,
                                                                      owner: tuple[str, httpx.Client]) -> None:
    token, api = owner
    before = what_exists(sm)
    answer = api.post(PLAN, json=HADOOP_SPARK)
    assert answer.status_code == 200, answer.text
    assert "location" not in answer.headers
    plan = answer.json()
    assert what_exists(sm) == before

    assert plan["dry_run"] is True and plan["provider"] == "local" and plan["template"] is None
    assert plan["frameworks"] == ["java", "hadoop", "spark"]
    assert plan["properties"]["hadoop"]["nodemanager_vcores"] == {"value": 3, "origin": "user"}
    assert plan["properties"]["hadoop"]["min_allocation_mb"] == {"value": 512, "origin": "default"}
    assert plan["properties"]["spark"]["executor_memory"] == {"value": "2g", "origin": "user"}

    for node in ("master", "worker-1"):
        yarn = keys_of(plan, node, "hadoop-conf/yarn-site.xml")
        assert yarn["yarn.scheduler.minimum-allocation-mb"] == {"value": "512", "origin": "default"}
        assert yarn["yarn.nodemanager.resource.memory-mb"]["origin"] == "derived"
        assert yarn["yarn.nodemanager.resource.cpu-vcores"] == {"value": "3", "origin": "user"}
        hdfs = keys_of(plan, node, "hadoop-conf/hdfs-site.xml")
        assert hdfs["dfs.blocksize"] == {"value": "268435456", "origin": "override"}
        assert hdfs["dfs.replication"] == {"value": "2", "origin": "derived"}  # min(3, workers)
    assert keys_of(plan, "master", "spark-conf/spark-defaults.conf")["spark.executor.memory"] == {
        "value": "2g", "origin": "user"}
    # The derived memory is the formula of docs/hadoop-zeppelin.md on the node's size.
    master = plan["nodes"][0]
    memory = master["size"]["memory_mb"]
    reserved = max(1024, memory // 4)
    expected = max(512, ((memory - reserved) // 512) * 512)
    assert keys_of(plan, "master", "hadoop-conf/yarn-site.xml")["yarn.nodemanager.resource.memory-mb"][
        "value"] == str(expected)
    # The file's text is what the processes would read: the override is in it.
    hdfs_text = master["files"]["hadoop"]["hadoop-conf/hdfs-site.xml"]["text"]
    assert "<name>dfs.blocksize</name><value>268435456</value>" in hdfs_text

    assert [n["name"] for n in plan["nodes"]] == ["master", "worker-1", "worker-2"]
    hosts = [n["host"] for n in plan["nodes"]]
    assert len(set(hosts)) == 3 and all(h.startswith("127.") for h in hosts)
    assert [p["name"] for p in master["processes"]] == ["hadoop-namenode", "hadoop-resourcemanager", "spark-master"]
    worker = plan["nodes"][1]
    assert {p["name"]: p.get("wait_for_tcp") for p in worker["processes"]}["spark-worker"] == f"{hosts[0]}:7077"
    assert {(p["framework"], p["port"]) for p in master["ports"]} >= {("hadoop", 8020), ("spark", 7077)}
    assert all(p["reachable_from"] == ["127.0.0.0/8"] for n in plan["nodes"] for p in n["ports"])
    assert [s["step"] for s in plan["steps"]] == ["pending", "provisioning", "installing", "java", "hadoop",
                                                  "spark", "ready"]
    assert plan["outputs"]["frameworks"]["spark"]["master_url"] == f"spark://{hosts[0]}:7077"
    assert {r["framework"] for r in plan["readiness"]} == {"java", "hadoop", "spark"}
    assert plan["problems"] == []

    # Secrets: none exists yet, and the tenant's token is nowhere.
    text = answer.text
    assert token not in text and "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    assert master["files"]["spark"]["spark.properties"]["keys"]["spark.authenticate.secret"]["value"] == "<hidden>"
    assert master["files"]["spark"]["ui.token"]["text"] == "<hidden>"
    assert (sm.data_dir / "secret.key").read_text().strip() not in text  # the service manager's own key


def test_a_plan_is_the_same_every_time_and_hides_every_secret(sm: ServiceManager,
                                                             owner: tuple[str, httpx.Client]) -> None:
    token, api = owner
    body = {"workers": 1, "frameworks": ["dask", "jupyter", "mapreduce", "taskfarm"]}
    before = what_exists(sm)
    first, second = api.post(PLAN, json=body), api.post(PLAN, json=body)
    assert first.status_code == second.status_code == 200, first.text
    assert first.json() == second.json()
    assert what_exists(sm) == before
    plan = first.json()
    master = plan["nodes"][0]
    assert master["files"]["dask"]["tls/cluster.key"]["text"] == "<hidden>"
    config = master["files"]["jupyter"]["jupyter/config/jupyter_server_config.json"]["text"]
    assert '"hashed_password": "<hidden>"' in config
    assert master["files"]["taskfarm"]["farm-secrets/owner.token"]["text"] == "<hidden>"
    assert plan["nodes"][1]["files"]["taskfarm"]["farm-secrets/enrollment.key"]["text"] == "<hidden>"
    assert token not in first.text and "PRIVATE KEY" not in first.text
    assert plan["problems"] == []


@pytest.mark.parametrize("body", [
    {"frameworks": ["no-such-framework"]},
    {"workers": 10_000},
    {"workers": "2"},
    {"frameworks": [{"name": "spark", "properties": {"worker_memory": "lots"}}]},
    {"frameworks": [{"name": "spark", "overrides": {"spark-defaults.conf": {"spark.authenticate": "false"}}}]},
    {"frameworks": ["dask", "dask"]},
    {"provider": "cloud-of-dreams"},
    {"provider": "ssh", "provider_options": {"flavor": "big"}},
    {"surprise": 1},
])
def test_a_refused_plan_is_refused_exactly_as_the_create(sm: ServiceManager, owner: tuple[str, httpx.Client],
                                                        body: dict[str, Any]) -> None:
    _, api = owner
    before = what_exists(sm)
    planned, created = api.post(PLAN, json=body), api.post(CLUSTERS, json=body)
    assert 400 <= planned.status_code < 500, planned.text
    assert (planned.status_code, planned.json()) == (created.status_code, created.json())
    assert what_exists(sm) == before


def test_a_body_that_is_not_json_is_refused_as_for_a_create(owner: tuple[str, httpx.Client]) -> None:
    _, api = owner
    answer = api.post(PLAN, content=b"{nope")
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_json"


# -- SSH --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pool(sm: ServiceManager, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two real sshd hosts (this machine, 127.0.9.x) in the pool, each with a prefix of its own
    under a temporary directory: a plan must leave those prefixes unmade."""
    store = sm.store()
    try:
        admin_token = store.create_token("ops", admin=True)
    finally:
        store.close()
    folder = tmp_path_factory.mktemp("plan-hosts")
    servers = [Sshd(folder / f"sshd-{i}").start() for i in range(2)]
    admin = httpx.Client(base_url=sm.url, headers={"X-Auth-Token": admin_token}, timeout=120, trust_env=False)
    ids = []
    try:
        for i, server in enumerate(servers):
            host = admin.post("/api/v1/hosts", json={
                "name": f"plan-host-{i}", "address": server.address, "port": server.port, "user": "root",
                "private_key": server.client_key, "prefix": str(folder / f"prefix-{i}")})
            assert host.status_code == 201 and host.json()["state"] == "free", host.text
            ids.append(host.json()["id"])
        yield {"admin": admin, "servers": servers, "ids": ids, "folder": folder}
    finally:
        for host_id in ids:
            admin.delete(f"/api/v1/hosts/{host_id}")
        admin.close()
        for server in servers:
            server.cleanup()


def test_an_ssh_plan_names_the_hosts_it_would_take_and_takes_none(sm: ServiceManager,
                                                                   owner: tuple[str, httpx.Client],
                                                                   pool: dict[str, Any]) -> None:
    token, api = owner
    before = what_exists(sm)
    hosts_before = pool["admin"].get("/api/v1/hosts").json()
    answer = api.post(PLAN, json={"provider": "ssh", "workers": 1, "frameworks": ["dask"]})
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert api.post(PLAN, json={"provider": "ssh", "workers": 1, "frameworks": ["dask"]}).json() == plan
    assert what_exists(sm) == before
    assert pool["admin"].get("/api/v1/hosts").json() == hosts_before  # all still free, none reserved
    assert all(h["state"] == "free" and h["cluster_id"] is None for h in hosts_before)
    assert not any((pool["folder"] / f"prefix-{i}").exists() for i in range(2))  # nothing written there

    servers = pool["servers"]
    assert [n["host"] for n in plan["nodes"]] == [servers[0].address, servers[1].address]
    master = plan["nodes"][0]
    assert master["provider"]["pool_host"]["name"] == "plan-host-0"
    assert master["provider"]["pool_host"]["reserved"] is False
    assert any("not reserved" in note for note in master["notes"])
    prefix = str(pool["folder"] / "prefix-0")
    assert master["workdir"] == f"{prefix}/clusters/new-cluster-id/master/work"
    bootstrap = master["provider"]["bootstrap"]
    bundle = bootstrap["bundle"]
    assert bundle["node"] == "master" and bundle["host"] == servers[0].address and bundle["prefix"] == prefix
    assert any(r.startswith("distributed==") for r in bundle["python"]["requirements"])
    assert bundle["log_token_sha256"] == "<sha256 of the cluster's token, made at create>"
    assert bootstrap["script"].startswith("#!/bin/sh") and "disco.node install" in bootstrap["script"]
    assert json.dumps(bundle, sort_keys=True, separators=(",", ":")) in bootstrap["script"]
    # The processes name the node's own paths (its venv under the host's prefix).
    assert master["processes"][0]["command"][0] == f"{prefix}/venv/bin/python"
    assert [s["step"] for s in plan["steps"]][:4] == ["pending", "provisioning", "install", "install"]
    assert "plan-host-0" in plan["steps"][1]["what"] and "plan-host-1" in plan["steps"][1]["what"]
    assert plan["outputs"]["node_logs"]["master"] == f"http://{servers[0].address}:8084/"
    assert {(p["framework"], p["port"]) for p in master["ports"]} == {("dask", 8786), ("dask", 8787),
                                                                      ("disco", 8084)}
    assert plan["template"] is None
    # No secret: not the tenant's token, not the hosts' keys, no credential of the cluster.
    for server in servers:
        assert server.client_key.splitlines()[2] not in answer.text
    assert token not in answer.text and "PRIVATE KEY" not in answer.text

    # A pool too small is the create's 409, for the plan too.
    short = {"provider": "ssh", "workers": 2, "frameworks": ["dask"]}
    planned, created = api.post(PLAN, json=short), api.post(CLUSTERS, json=short)
    assert planned.status_code == 409 and planned.json() == created.json()
    assert planned.json()["error"]["code"] == "no_free_hosts"
    assert what_exists(sm) == before


# -- CLI --------------------------------------------------------------------------------------------

def disco(sm: ServiceManager, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DISCO_URL": sm.url, "DISCO_TOKEN": token, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "disco.cli.main", "cluster", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_cli_plan_takes_create_options_and_prints_the_apis_plan(sm: ServiceManager,
                                                                   owner: tuple[str, httpx.Client]) -> None:
    token, api = owner
    before = what_exists(sm)
    options = ["-f", "hadoop", "-f", "spark", "--workers", "2", "--property", "hadoop.nodemanager_vcores=3",
               "--property", "spark.executor_memory=2g",
               "--override", "hadoop/hdfs-site.xml:dfs.blocksize=268435456"]
    as_json = disco(sm, token, "plan", *options, "--output", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == api.post(PLAN, json=HADOOP_SPARK).json()

    people = disco(sm, token, "plan", *options)
    assert people.returncode == 0, people.stderr
    text = people.stdout
    assert "Nothing was created." in text
    assert "dfs.blocksize = 268435456  override" in text
    assert "yarn.nodemanager.resource.cpu-vcores = 3  user" in text
    assert "yarn.nodemanager.resource.memory-mb" in text and "derived" in text
    assert "Steps of a create" in text and "hadoop-namenode" in text
    assert token not in text
    assert what_exists(sm) == before

    refused = disco(sm, token, "plan", "-f", "no-such-framework", "--output", "json")
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["error"]["code"] == "unknown_framework"
    refused = disco(sm, token, "plan", "--override", "spark/spark-defaults.conf:spark.authenticate=false")
    assert refused.returncode == 2 and "invalid_override" in refused.stderr
    assert what_exists(sm) == before


def test_an_ssh_plan_sizes_hadoop_from_the_hosts_check_and_names_what_a_create_would_fail_on(
        sm: ServiceManager, owner: tuple[str, httpx.Client], pool: dict[str, Any]) -> None:
    _, api = owner
    before = what_exists(sm)
    facts = pool["admin"].get(f"/api/v1/hosts/{pool['ids'][1]}").json()["last_check"]["facts"]
    assert facts["memory_bytes"] > 0 and facts["cpus"] >= 1
    answer = api.post(PLAN, json={"provider": "ssh", "workers": 1, "frameworks": ["hadoop"]})
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    worker = plan["nodes"][1]
    assert worker["size"] == {"memory_mb": facts["memory_bytes"] >> 20, "cpus": facts["cpus"]}
    yarn = keys_of(plan, "worker-1", "hadoop-conf/yarn-site.xml")
    assert yarn["yarn.nodemanager.resource.cpu-vcores"] == {"value": str(max(1, facts["cpus"] - 1)),
                                                           "origin": "derived"}
    assert [d["dest"] for d in worker["provider"]["bootstrap"]["bundle"]["downloads"]] == ["hadoop"]
    assert plan["problems"] == []
    # Zeppelin's download has no checksum pinned: a create would fail before any host fetched
    # anything, and the plan says so.
    answer = api.post(PLAN, json={"provider": "ssh", "workers": 1, "frameworks": ["hadoop", "zeppelin"]})
    assert answer.status_code == 200, answer.text
    assert [p["code"] for p in answer.json()["problems"]] == ["missing_checksum"]
    assert what_exists(sm) == before


def test_a_plan_with_two_masters_runs_each_on_its_port(sm: ServiceManager,
                                                       owner: tuple[str, httpx.Client]) -> None:
    """`masters: 2` of mapreduce: two master processes on the master node (8989 and 8990, the
    second passing DDFS on to the first), every node serving both; nothing made."""
    _token, client = owner
    before = what_exists(sm)
    answer = client.post(PLAN, json={"workers": 1, "masters": 2, "frameworks": ["mapreduce"]})
    assert answer.status_code == 200, answer.text
    nodes = {n["name"]: n for n in answer.json()["nodes"]}
    master = next(n for n in nodes.values() if n["role"] == "master")
    host = master["host"]
    procs = {p["name"]: p["command"] for p in master["processes"]}
    assert sorted(procs) == ["mapreduce-master", "mapreduce-master-2"]

    def arg(command: list[str], option: str) -> str:
        return command[command.index(option) + 1]

    first, second = procs["mapreduce-master"], procs["mapreduce-master-2"]
    assert (arg(first, "--port"), arg(second, "--port")) == ("8989", "8990")
    assert (arg(first, "--instance"), arg(second, "--instance")) == ("0/2", "1/2")
    assert arg(first, "--ddfs-authority") == "" and arg(second, "--ddfs-authority") == f"http://{host}:8989"
    assert arg(first, "--data") != arg(second, "--data")
    assert sorted(p["port"] for p in master["ports"] if p["framework"] == "mapreduce") == [8989, 8990]
    [worker] = [n for n in nodes.values() if n["role"] == "worker"]
    [node] = [p["command"] for p in worker["processes"]]
    assert arg(node, "--master") == f"http://{host}:8989,http://{host}:8990"
    assert what_exists(sm) == before
