"""A testbed comes up, survives faults on purpose, and goes down leaving nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from disco.testbed import Image, Testbed, TestbedError
from disco.testbed.podman import containers
from disco.testbed.sockets import listeners_on
from disco.testbed.testbed import _ssh_banner


def _nothing_left(testbed: Testbed, addresses: set[str]) -> None:
    assert containers(f"disco.testbed={testbed.name}") == []
    assert listeners_on(addresses) == []
    assert not testbed.state_path.exists() and not testbed.files_dir.exists()


def test_down_removes_containers_sockets_and_state(testbed_factory: Callable[..., Testbed]) -> None:
    testbed = testbed_factory(2, "baked")
    hosts = testbed.hosts()
    addresses = {h.address for h in hosts}
    assert {c["Id"] for c in containers(f"disco.testbed={testbed.name}")} == {h.container for h in hosts}
    assert {a for a, port in listeners_on(addresses) if port == 22} == addresses
    removed = testbed.down()
    assert removed == sorted(h.container for h in hosts)
    _nothing_left(testbed, addresses)
    assert testbed.down() == []  # again: nothing to do, no error


def test_kill_stop_and_start_a_host(testbed_factory: Callable[..., Testbed]) -> None:
    testbed = testbed_factory(2, "baked")
    victim, survivor = testbed.hosts()
    testbed.exec(victim, ["sh", "-c", "echo kept > /root/before-the-crash"])
    testbed.kill(victim)
    assert not _ssh_banner(victim.address, 22) and _ssh_banner(survivor.address, 22)
    testbed.start(victim)  # checks that the host key is the same
    assert testbed.exec(victim, ["cat", "/root/before-the-crash"]).stdout == "kept\n"
    testbed.stop(survivor)
    assert not _ssh_banner(survivor.address, 22)
    addresses = {victim.address, survivor.address}
    testbed.down()  # a stopped host goes too
    _nothing_left(testbed, addresses)


def test_an_address_in_use_is_refused(testbed_images: dict[str, Image], tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.202.0.1", 2222))
        squatter.listen()
        testbed = Testbed("t202-taken", "127.202.0", state_dir=tmp_path)
        with pytest.raises(TestbedError, match="address taken: something already listens on 127.202.0.1:2222"):
            testbed.up(1, image="bare")
    assert containers("disco.testbed=t202-taken") == [] and testbed.hosts() == []


@pytest.mark.parametrize("base", ["10.0.0", "127.0", "127.0.300", "127.a.b"])
def test_a_bad_address_base_is_refused(base: str, tmp_path: Path) -> None:
    with pytest.raises(TestbedError, match="loopback"):
        Testbed("t202-bad", base, state_dir=tmp_path)


def _disco(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DISCO_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "disco.cli.main", "testbed", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_up_prints_an_inventory_and_down_cleans_up(testbed_images: dict[str, Image], tmp_path: Path) -> None:
    base = "127.203.0"
    up = _disco("up", "--hosts", "2", "--image", "bare", "--name", "t203-cli", "--address-base", base,
                data_dir=tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        assert "is up" in up.stderr
        inventory = yaml.safe_load(up.stdout)
        assert [h["name"] for h in inventory["hosts"]] == ["t203-cli-1", "t203-cli-2"]
        assert [h["address"] for h in inventory["hosts"]] == [f"{base}.1", f"{base}.2"]
        assert all(h["labels"] == ["testbed", "bare"] and h["host_key"].startswith("ssh-ed25519 ")
                   for h in inventory["hosts"])
        listed = _disco("list", data_dir=tmp_path)
        assert "t203-cli-2" in listed.stdout and f"{base}.2:22" in listed.stdout
        again = _disco("inventory", data_dir=tmp_path)
        assert yaml.safe_load(again.stdout) == inventory
        taken = _disco("up", "--hosts", "1", "--name", "t203-other", "--address-base", base, data_dir=tmp_path)
        assert taken.returncode == 1 and "address taken" in taken.stderr
    finally:
        down = _disco("down", "t203-cli", data_dir=tmp_path)
    assert down.returncode == 0, down.stderr
    assert containers("disco.testbed=t203-cli") == [] and listeners_on({f"{base}.1", f"{base}.2"}) == []
    assert not (tmp_path / "testbed" / "t203-cli.json").exists()
    none = _disco("down", data_dir=tmp_path)
    assert none.returncode == 1 and "no testbed is up" in none.stderr
    bad = _disco("up", "--hosts", "1", "--image", "fancy", data_dir=tmp_path)
    assert bad.returncode == 1 and "unknown image 'fancy'" in bad.stderr
