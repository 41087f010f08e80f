"""`disco testbed cloud up --keystone|status|down` as a user runs it: the printed entry is the
demo user's password login to a real Keystone, the password only in the 0600 clouds.yaml and
never on stderr; `down` deletes the demo project's stacks through Keystone and leaves no
process, socket, database or file (Keystone's included)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import openstack
import psutil
import pytest
import yaml

from cloud_fixtures import free_block
from disco.testbed.cloud import database
from disco.testbed.cloud.heat_venv import heat_venv_path
from disco.testbed.podman import require_podman
from disco.testbed.sockets import listening_ipv4
from test_cloud_cli import _disco
from testbed_fixtures import _allocation_lock


def test_cli_up_with_keystone_status_down_leaves_nothing(tmp_path: Path) -> None:
    require_podman()
    with _allocation_lock():
        block = free_block("kcli")
        name = f"kcli{block}"
        up = _disco(tmp_path, "up", "--name", name, "--address", f"127.0.{block}.200", "--keystone",
                    "--keystone-address", f"127.0.{block}.201", "--server-range", f"127.0.{block}.0/25",
                    "--image", "debian-12")
    cloud_dir = tmp_path / "testbed" / "cloud" / name
    try:
        assert up.returncode == 0, up.stderr
        entry = yaml.safe_load(up.stdout)["clouds"][name]
        assert entry["auth_type"] == "password"
        assert entry["auth"]["auth_url"] == f"http://127.0.{block}.201:5000/v3"
        password = entry["auth"]["password"]
        assert password not in up.stderr and "Keystone and Heat up" in up.stderr
        assert yaml.safe_load((cloud_dir / "clouds.yaml").read_text())["clouds"][name] == entry
        for secret_file in ("clouds.yaml", "keystone-logins.yaml", "heat-admin.token", "heat.conf"):
            assert oct((cloud_dir / secret_file).stat().st_mode & 0o777) == "0o600", secret_file
        conn = openstack.connect(load_yaml_config=False, load_envvars=False, **entry)
        conn.orchestration.create_stack(name="left-up", template={
            "heat_template_version": "2021-04-16", "resources": {"n": {"type": "OS::Heat::None"}}})
        status = _disco(tmp_path, "status", "--name", name)
        assert status.returncode == 0, status.stderr
        assert "Heat running" in status.stdout
        assert "Keystone running" in status.stdout and f"http://127.0.{block}.201:5000/v3" in status.stdout
        # A second Keystone on the same address and port is refused before anything is made.
        again = _disco(tmp_path, "up", "--name", f"{name}b", "--address", f"127.0.{block}.202", "--keystone",
                       "--keystone-address", f"127.0.{block}.201", "--server-range", f"127.0.{block}.128/26")
        assert again.returncode == 1 and "choose another --keystone-port" in again.stderr, again.stderr
    finally:
        down = _disco(tmp_path, "down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert "1 stack(s) deleted" in down.stderr  # the demo project's, through Keystone
    network = ipaddress.ip_network(f"127.0.{block}.0/24")
    assert [s for s in listening_ipv4() if ipaddress.ip_address(s[0]) in network] == []
    assert [p.pid for p in psutil.process_iter(["cmdline"])
            if any(str(cloud_dir) in part for part in p.info["cmdline"] or [])] == []
    assert not database.database_exists(heat_venv_path(), database.database_name(name))
    assert not cloud_dir.exists()


@pytest.mark.parametrize("address", ["10.0.0.1", "localhost"])
def test_cli_keystone_address_must_be_loopback(tmp_path: Path, address: str) -> None:
    up = _disco(tmp_path, "up", "--name", "kbad", "--keystone", "--keystone-address", address)
    assert up.returncode == 1
    assert "--keystone-address" in up.stderr and "loopback" in up.stderr, up.stderr
    assert len(up.stderr.strip().splitlines()) == 1, up.stderr
    assert not (tmp_path / "testbed" / "cloud" / "kbad").exists()
