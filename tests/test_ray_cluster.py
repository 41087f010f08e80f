"""A real Ray cluster through the REST API: tasks on every node through the Ray Client with
the cluster's token, a client without it refused, scale both ways, delete without residue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from disco.frameworks.render import cache_dir
from sm_fixtures import ServiceManager, cluster_processes, listening_on, wait_state, wait_until

pytestmark = pytest.mark.slow

# One task pinned to every live node; prints what each node answered.
TASKS_ON_EVERY_NODE = """
import json, os, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(logging_level="ERROR")
@ray.remote(num_cpus=0)
def where(x):
    return x * x, ray.util.get_node_ip_address(), os.environ.get("DISCO_NODE")
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
refs = [where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(i)
        for i, n in enumerate(nodes)]
print(json.dumps(ray.get(refs, timeout=60)))
"""


def run_client(env: dict[str, str], code: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """A Ray client in a process of its own (Ray keeps its connection and token per process)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DISCO_"))}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env, "HOME": env["HOME"]},
                          capture_output=True, text=True, timeout=timeout)


def client_env(api: httpx.Client, cluster_id: str, home: Path) -> dict[str, str]:
    """What `disco cluster env` gives a Ray client: the address, the token in a private file."""
    access = api.get(f"/api/v1/clusters/{cluster_id}/credentials").json()["frameworks"]["ray"]
    home.mkdir(exist_ok=True, mode=0o700)
    env = dict(access["env"])
    for name, relative in access["file_env"].items():
        path = home / relative
        path.write_text(access["files"][relative])
        path.chmod(0o600)
        env[name] = str(path)
    return {**env, "HOME": str(home)}


def alive_nodes(dashboard: str, token: str) -> int:
    body = httpx.get(f"{dashboard}/api/v0/nodes?limit=1000", headers={"Authorization": f"Bearer {token}"},
                     trust_env=False, timeout=20).json()
    return sum(1 for n in body["data"]["result"]["result"] if n["state"] == "ALIVE")


def cluster_listeners(cluster_id: str) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every listening socket of the cluster's processes."""
    pids = {p.pid: p.name() for p in cluster_processes(cluster_id)}
    return sorted((c.laddr.ip.removeprefix("::ffff:"), c.laddr.port, pids[c.pid])
                  for c in psutil.net_connections("tcp")
                  if c.status == psutil.CONN_LISTEN and c.pid in pids)


def wait_nodes(api: httpx.Client, cluster_id: str, count: int) -> dict:
    return wait_until(lambda: (c := api.get(f"/api/v1/clusters/{cluster_id}").json())["state"] == "ready"
                      and len(c["nodes"]) == count and c, timeout=90, what=f"{count} nodes ready")


def test_ray_lifecycle(sm: ServiceManager, api: httpx.Client, tmp_path: Path) -> None:
    response = api.post("/api/v1/clusters", json={"frameworks": [{"name": "ray"}], "workers": 2})
    assert response.status_code == 201, response.text
    cluster = wait_state(api, response.json()["id"], {"ready", "failed"}, timeout=120)
    assert cluster["state"] == "ready", cluster["status_reason"]
    cid = cluster["id"]
    hosts = [n["host"] for n in cluster["nodes"]]
    outputs = cluster["outputs"]["frameworks"]["ray"]
    dashboard = outputs["web_uis"]["dashboard"].rstrip("/")
    assert dashboard == f"http://{hosts[0]}:8265"
    env = client_env(api, cid, tmp_path / "home")
    token = env.get("DISCO_UI_TOKEN", "")
    assert env["RAY_ADDRESS"] == outputs["client_address"] and env["RAY_AUTH_MODE"] == "token"

    # The dashboard's API answers the token only.
    assert httpx.get(f"{dashboard}/api/v0/nodes", trust_env=False, timeout=20).status_code in (401, 403)
    assert alive_nodes(dashboard, token) == 3

    # A real task on each of the three nodes, through the Ray Client with the cluster's token.
    done = run_client(env, TASKS_ON_EVERY_NODE)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(r[0] for r in results) == [0, 1, 4]
    assert {r[1] for r in results} == set(hosts) and {r[2] for r in results} == {"master", "worker-1", "worker-2"}

    # Without the token, or with a wrong one, the client is refused.
    for bad in ({k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN_PATH"},
                {**env, "RAY_AUTH_TOKEN_PATH": "", "RAY_AUTH_TOKEN": "x" * 43}):
        refused = run_client(bad, "import ray; ray.init(logging_level='ERROR'); print('CONNECTED', ray.nodes())",
                             timeout=120)
        assert refused.returncode != 0 and "CONNECTED" not in refused.stdout, refused.stdout[-2000:]

    # Nothing listens on an address that is not the cluster's, but for what Ray cannot be told.
    # Ray binds most of its ports to every address: each node has a block of its own.
    blocks = json.loads((Path(cache_dir()) / "port-blocks.json").read_text())
    owned = {port for host in hosts for port in range(blocks[host]["start"], blocks[host]["start"] + 32)}
    for ip, port, name in cluster_listeners(cid):
        assert ip in hosts or port in owned, f"{name} listens on {ip}:{port}"
    # Scale up, then down: workers join and leave the head's count.
    assert api.patch(f"/api/v1/clusters/{cid}", json={"workers": 3}).status_code == 200
    wait_nodes(api, cid, 4)
    assert alive_nodes(dashboard, token) == 4
    assert api.patch(f"/api/v1/clusters/{cid}", json={"workers": 1}).status_code == 200
    cluster = wait_nodes(api, cid, 2)
    wait_until(lambda: alive_nodes(dashboard, token) == 2, timeout=90, what="2 Ray nodes alive")

    # Delete: no process, no port, no /tmp link, no directory.
    # This cluster's links only: another test's Ray cluster may run meanwhile.
    links_before = {p for p in Path("/tmp").glob("disco-ray-*") if p.is_symlink() and cid in os.readlink(p)}
    assert links_before, "the nodes' short temp-dir links exist while they run"
    assert api.delete(f"/api/v1/clusters/{cid}").status_code == 202
    wait_state(api, cid, {"deleted"}, timeout=90)
    assert cluster_processes(cid) == []
    assert listening_on(hosts) == []
    assert not any(p.exists() or p.is_symlink() for p in links_before)
    assert not (sm.data_dir / "clusters" / cid).exists()
