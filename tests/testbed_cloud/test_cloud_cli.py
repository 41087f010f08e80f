"""`disco testbed cloud up|status|down` as a user runs it, on a cloud of its own; `down`
leaves nothing (a scan: containers by label, listening sockets, processes, the database)."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path

import openstack
import psutil
import pytest
import yaml

from cloud_fixtures import TestCloud, free_block
from disco.testbed.cloud import database
from disco.testbed.cloud.heat_venv import heat_venv_path
from disco.testbed.podman import containers
from disco.testbed.sockets import listening_ipv4
from testbed_fixtures import _allocation_lock

DISCO = str(Path(sys.executable).with_name("disco"))


def _disco(data_dir: Path, *args: str, env: dict[str, str] | None = None,
           user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DISCO_DATA_DIR": str(data_dir), **(env or {})}
    return subprocess.run([*(user or []), DISCO, "testbed", "cloud", *args], capture_output=True,
                          text=True, env=environment, timeout=300)


def test_cli_up_status_down_leaves_nothing(test_cloud: TestCloud, tmp_path: Path) -> None:
    with _allocation_lock():
        block = free_block("tcli")
        name = f"tcli{block}"
        up = _disco(tmp_path, "up", "--name", name, "--address", f"127.0.{block}.200", "--port", "8004",
                    "--server-range", f"127.0.{block}.0/25", "--image", "debian-12")
    cloud_dir = tmp_path / "testbed" / "cloud" / name
    try:
        assert up.returncode == 0, up.stderr
        entry = yaml.safe_load(up.stdout)["clouds"][name]
        assert entry["auth_type"] == "admin_token"
        assert entry["auth"]["endpoint"] == f"http://127.0.{block}.200:8004/v1/admin"
        assert f"clouds.yaml written to {cloud_dir / 'clouds.yaml'}" in up.stderr
        assert oct((cloud_dir / "clouds.yaml").stat().st_mode & 0o777) == "0o600"
        conn = openstack.connect(auth_type="admin_token", auth=entry["auth"])
        stack = conn.orchestration.create_stack(name="left-up", template=yaml.safe_load("""
heat_template_version: '2018-08-31'
resources:
  server: {type: OS::Nova::Server, properties: {image: debian-12, flavor: m1.tiny}}
"""))
        conn.orchestration.wait_for_status(conn.orchestration.get_stack(stack.id), "CREATE_COMPLETE",
                                           failures=["CREATE_FAILED"], interval=0.5, wait=120)
        status = _disco(tmp_path, "status", "--name", name)
        assert status.returncode == 0, status.stderr
        assert "Heat running" in status.stdout and "left-up" in status.stdout
        assert len(containers(f"disco.cloud={name}")) == 1
    finally:
        down = _disco(tmp_path, "down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert "1 stack(s) deleted" in down.stderr
    # Scan, not records: nothing of the cloud is left.
    assert containers(f"disco.cloud={name}") == []
    network = ipaddress.ip_network(f"127.0.{block}.0/24")
    assert [s for s in listening_ipv4() if ipaddress.ip_address(s[0]) in network] == []
    assert [p.pid for p in psutil.process_iter(["cmdline"])
            if any(str(cloud_dir) in part for part in p.info["cmdline"] or [])] == []
    assert not database.database_exists(heat_venv_path(), database.database_name(name))
    assert not cloud_dir.exists()


def test_cli_errors_are_one_line(test_cloud: TestCloud, tmp_path: Path) -> None:
    state = test_cloud.cloud.state()
    assert state is not None
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        taken = _disco(tmp_path, "up", "--name", "tport", "--port", str(port),
                       "--server-range", "127.0.249.0/24")
    cases = [
        (taken, f"error: port in use: 127.0.0.1:{port} is taken; choose another --port\n"),
        (_disco(tmp_path, "up", "--name", "tbad", "--address", "10.1.2.3"),
         "error: address '10.1.2.3': the cloud serves on a loopback address (127.x.y.z) only\n"),
        (_disco(tmp_path, "up", "--name", "tbad", "--server-range", "10.0.0.0/24"),
         "error: server range 10.0.0.0/24: a loopback network from /16 to /29, without 127.0.0.1\n"),
        (_disco(tmp_path, "up", "--name", "tbad", "--port", "18999",
                "--server-range", state.server_range),
         f"error: server range {state.server_range} overlaps cloud {test_cloud.cloud.name}'s "
         f"({state.server_range})\n"),
        (_disco(tmp_path, "up", "--name", "tbad", "--image", "windows-11", "--port", "18999",
                "--server-range", "127.0.249.0/24"),
         "error: unknown image 'windows-11' (images: debian-12, disco-baked)\n"),
        (_disco(tmp_path, "up", "--name", test_cloud.cloud.name, "--port", "18999",
                "--server-range", "127.0.249.0/24"),
         f"error: a cloud named {test_cloud.cloud.name} runs already (from another state directory); "
         "choose another --name\n"),
        (_disco(tmp_path, "status", "--name", "tnone"), "error: cloud tnone is not up\n"),
        (_disco(tmp_path, "down", "--name", "tnone"), "error: cloud tnone is not up\n"),
        (_disco(tmp_path, "status", "--name", "tnone", env={"PATH": "/nonexistent"}),
         "error: podman is not installed"),
    ]
    for done, message in cases:
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "testbed" / "cloud").exists() or list((tmp_path / "testbed" / "cloud").iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the refusal of a user who is not root")
def test_cli_refuses_a_user_who_is_not_root(tmp_path: Path) -> None:
    done = _disco(tmp_path, "up", "--name", "tuser", user=["setpriv", "--reuid=65534", "--regid=65534",
                                                            "--clear-groups"])
    assert done.returncode == 1
    assert done.stderr == ("error: the cloud in a box needs root (its servers are podman containers "
                           "with host networking); run as root\n")


def test_down_after_heat_was_killed_leaves_nothing(test_cloud: TestCloud, tmp_path: Path) -> None:
    """kill -9 of Heat with a server up: `down` cannot ask Heat to delete the stack, so it
    removes the cloud's containers by label, drops the database, and checks as always."""
    from disco.testbed.cloud.cloud import Cloud
    with _allocation_lock():
        block = free_block("tkilled")
        name = f"tkilled{block}"
        cloud = Cloud(name, state_dir=tmp_path)
        state = cloud.up(address=f"127.0.{block}.200", port=8004, server_range=f"127.0.{block}.0/25",
                         images=["debian-12"])
    try:
        auth = yaml.safe_load(cloud.clouds_yaml())["clouds"][name]["auth"]
        conn = openstack.connect(auth_type="admin_token", auth=auth)
        stack = conn.orchestration.create_stack(name="orphaned", template=yaml.safe_load("""
heat_template_version: '2018-08-31'
resources:
  server: {type: OS::Nova::Server, properties: {image: debian-12, flavor: m1.tiny}}
"""))
        conn.orchestration.wait_for_status(conn.orchestration.get_stack(stack.id), "CREATE_COMPLETE",
                                           failures=["CREATE_FAILED"], interval=0.5, wait=120)
        assert len(containers(f"disco.cloud={name}")) == 1
        psutil.Process(state.pid).kill()
        psutil.Process(state.pid).wait(10)
        assert cloud.status()["heat"] == "stopped"
    finally:
        removed = cloud.down()
    assert removed == {"stacks": 0, "containers": 1}
    assert containers(f"disco.cloud={name}") == []
    assert not database.database_exists(heat_venv_path(), database.database_name(name))
    assert not (tmp_path / name).exists()
