"""Three test hosts (one bare, two baked) behave like separate machines over SSH."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import httpx
import pytest

from disco.frameworks.catalog import load_catalog
from disco.frameworks.pins import pinned_python_packages
from disco.node import pyenv
from disco.testbed import Image, Testbed, TestHost

from testbed_fixtures import new_testbed


@pytest.fixture(scope="module")
def testbed(testbed_images: dict[str, Image], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    made = new_testbed(tmp_path_factory.mktemp("testbed-state"), 1, image="bare")
    try:
        made.up(2, image="baked")
        yield made
    finally:
        made.down()


def ssh(host: TestHost, command: str, host_key: str | None = None) -> asyncssh.SSHCompletedProcess:
    """Runs a command over SSH, trusting only the recorded host key (or the one given)."""
    async def go() -> asyncssh.SSHCompletedProcess:
        known = asyncssh.import_known_hosts(f"{host.address} {host_key or host.host_key}\n")
        async with asyncssh.connect(host.address, host.port, username=host.user, client_keys=[host.key],
                                    known_hosts=known, connect_timeout=30) as connection:
            return await connection.run(command, check=False)
    return asyncio.run(go())


def test_inventory_lists_each_host_with_its_own_address_and_key(testbed: Testbed) -> None:
    hosts = testbed.hosts()
    assert [h.image for h in hosts] == ["bare", "baked", "baked"]
    assert len({h.address for h in hosts}) == 3 and len({h.host_key for h in hosts}) == 3
    for index, host in enumerate(hosts, start=1):
        entry = host.inventory_entry()
        assert entry["address"] == f"{testbed.address_base}.{index}" and entry["port"] == 22
        assert entry["user"] == "root" and entry["prefix"] == "/opt/disco"
        assert entry["host_key"].startswith("ssh-ed25519 AAAA")
        assert entry["labels"] == ["testbed", host.image]
        assert Path(entry["key"]).stat().st_mode & 0o777 == 0o600


def test_ssh_with_the_recorded_host_key_reaches_each_host_by_name(testbed: Testbed) -> None:
    for host in testbed.hosts():
        done = ssh(host, "hostname; id -u; echo $$ > /dev/null; cat /proc/1/cmdline | tr '\\0' ' '")
        name, uid, init = done.stdout.splitlines()
        assert done.exit_status == 0 and name == host.name and uid == "0"
        assert "podman-init" in init  # its own PID namespace, catatonit as PID 1


def test_another_host_key_is_refused(testbed: Testbed) -> None:
    first, second = testbed.hosts()[:2]
    with pytest.raises((asyncssh.HostKeyNotVerifiable, asyncssh.DisconnectError)):
        ssh(first, "true", host_key=second.host_key)


def test_each_host_has_its_own_filesystem(testbed: Testbed) -> None:
    first, second, third = testbed.hosts()
    marker = f"/root/written-on-{first.name}"
    assert ssh(first, f"echo hello > {marker} && cat {marker}").stdout == "hello\n"
    for other in (second, third):
        assert ssh(other, f"test -e {marker}").exit_status == 1
    assert testbed.exec(first, ["cat", marker]).stdout == "hello\n"


def test_bare_host_is_fresh_and_installs_from_apt_and_pip(testbed: Testbed) -> None:
    bare = testbed.hosts()[0]
    assert ssh(bare, "python3 --version").exit_status == 0
    assert ssh(bare, "command -v java").exit_status == 1
    assert ssh(bare, "python3 -m venv /tmp/v").exit_status != 0  # no python3-venv yet
    assert not ssh(bare, "test -e /opt/disco/venv").exit_status == 0
    # What the node bootstrap does on such a host: apt, then pip, through this machine's mirrors.
    apt = ssh(bare, "apt-get update -q && apt-get install -y -q --no-install-recommends python3-venv")
    assert apt.exit_status == 0, apt.stderr
    pip = ssh(bare, "python3 -m venv /tmp/v && /tmp/v/bin/pip download -q --no-deps -d /tmp/wheels six "
                    "&& ls /tmp/wheels")
    assert pip.exit_status == 0 and pip.stdout.startswith("six-"), pip.stderr


def test_baked_venv_satisfies_the_service_managers_pins(testbed: Testbed) -> None:
    pins = pinned_python_packages(load_catalog())
    checker = Path(pyenv.__file__).with_name("requirements_check.py").read_text()
    for host in testbed.hosts()[1:]:
        assert ssh(host, "java -version").exit_status == 0
        # The node bootstrap's own checks (pyenv.venv_works, pyenv.unsatisfied), run on the host.
        assert ssh(host, "/opt/disco/venv/bin/python -I -m pip --version").exit_status == 0
        testbed.exec(host, ["sh", "-c", "cat > /tmp/requirements_check.py"], input=checker)
        check = ["/opt/disco/venv/bin/python", "-I", "/tmp/requirements_check.py"]
        assert json.loads(testbed.exec(host, check, input=json.dumps(pins)).stdout) == {"unsatisfied": []}
        wrong = json.loads(testbed.exec(host, check, input=json.dumps(["pyspark==0.0.1"])).stdout)
        assert wrong == {"unsatisfied": ["pyspark==0.0.1"]}


def test_a_process_on_a_host_serves_on_its_address(testbed: Testbed) -> None:
    host = testbed.hosts()[1]
    testbed.exec(host, ["sh", "-c", "mkdir -p /srv/www && echo from-the-host > /srv/www/index.html"])
    server = f"python3 -m http.server 8084 --bind {host.address} --directory /srv/www"
    pid = testbed.exec(host, ["sh", "-c", f"nohup {server} >/dev/null 2>&1 & echo $!"]).stdout.strip()
    deadline = time.monotonic() + 60
    while True:
        try:
            reply = httpx.get(f"http://{host.address}:8084/index.html", timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the host's web server did not answer"
            time.sleep(0.2)
    assert reply.text == "from-the-host\n"
    testbed.exec(host, ["kill", pid])
