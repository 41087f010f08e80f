"""Ray and JupyterLab on SSH hosts, as on the local provider: Ray tasks on every host through
the Ray Client with the cluster's token; a notebook kernel on the master host computing on the
cluster's Dask; the Jupyter password nowhere in clear on the hosts; nothing left after delete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ssh_site import Site, close_site, open_site
from test_jupyter_cluster import ON_THE_CLUSTER, run_in_a_kernel
from test_ray_cluster import TASKS_ON_EVERY_NODE, alive_nodes, client_env, run_client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(testbed_images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    opened = open_site(tmp_path_factory.mktemp("ssh-ray-jupyter"), bare=0, baked=3)
    try:
        yield opened
    finally:
        close_site(opened)


def test_ray_on_hosts(site: Site, tmp_path: Path) -> None:
    cluster = site.create({"workers": 2, "frameworks": ["ray"]})
    try:
        assert cluster["state"] == "ready", cluster["status_reason"]
        hosts = [n["host"] for n in cluster["nodes"]]
        dashboard = cluster["outputs"]["frameworks"]["ray"]["web_uis"]["dashboard"].rstrip("/")
        with site.api() as api:
            env = client_env(api, cluster["id"], tmp_path / "home")
        assert alive_nodes(dashboard, env["DISCO_UI_TOKEN"]) == 3
        done = run_client(env, TASKS_ON_EVERY_NODE, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:] + _client_server_logs(site)
        results = json.loads(done.stdout.strip().splitlines()[-1])
        assert {r[1] for r in results} == set(hosts) and {r[2] for r in results} == {"master", "worker-1", "worker-2"}
        refused = run_client({k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN_PATH"},
                             "import ray; ray.init(logging_level='ERROR'); print('CONNECTED')", timeout=120)
        assert refused.returncode != 0 and "CONNECTED" not in refused.stdout
    finally:  # a failure here must not keep the hosts from the next test
        assert site.delete(cluster["id"])["state"] == "deleted"
    assert site.leftovers(cluster["id"]) == {}
    for host in site.testbed.hosts():  # Ray's short temp-dir links went with their nodes
        assert site.testbed.exec(host, ["sh", "-c", "ls -d /tmp/disco-ray-* 2>/dev/null; true"]).stdout == ""


def _client_server_logs(site: Site) -> str:
    """The end of the Ray client servers' own logs on every host: why a client's server failed."""
    shown = []
    for host in site.testbed.hosts():
        tail = site.testbed.exec(host, ["sh", "-c", "tail -n 30 /tmp/disco-ray-*/session_latest/logs/"
                                        "ray_client_server*.err 2>/dev/null; true"], check=False)
        shown.append(f"\n--- {host.name}\n{tail.stdout[-3000:]}")
    return "".join(shown)


def test_jupyter_with_dask_on_hosts(site: Site) -> None:
    cluster = site.create({"workers": 1, "frameworks": ["dask", "jupyter"]})
    try:
        assert cluster["state"] == "ready", cluster["status_reason"]
        master = cluster["nodes"][0]["host"]
        with site.api() as api:
            password = api.get(f"/api/v1/clusters/{cluster['id']}/credentials").json()[
                "frameworks"]["jupyter"]["env"]["JUPYTER_TOKEN"]
        base = f"http://{master}:8890"
        assert httpx.get(f"{base}/api/status", trust_env=False).status_code == 403
        output = run_in_a_kernel(base, password, ON_THE_CLUSTER)
        assert "RESULT 4950 1 worker-1" in output, output
        # The clear password is on no host's disk (the bootstrap carries no secret; the server's
        # configuration holds its hash).
        for host in site.testbed.hosts():
            found = site.testbed.exec(host, ["grep", "-rlF", password, "/opt/disco"], check=False)
            assert found.stdout == "", (host.name, found.stdout)
    finally:  # a failure here must not keep the hosts from the next test
        assert site.delete(cluster["id"])["state"] == "deleted"
    assert site.leftovers(cluster["id"]) == {}
