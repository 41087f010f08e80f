"""`disco hosts …` and `disco token create --admin` as an admin types them, against a real service
manager and real sshd servers; `--url/--token` on every command that talks to the service
manager, winning over the environment; the key never in the CLI's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from disco.cli.main import app
from disco.cluster.secrets import ssh_keypair
from sm_fixtures import ServiceManager, free_port
from sshd_fixture import Sshd, inventory_entry


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Sshd]]:
    started: list[Sshd] = []
    try:
        for i in range(2):
            started.append(Sshd(tmp_path_factory.mktemp(f"sshd{i}")).start())
        yield started
    finally:
        for server in started:
            server.cleanup()


@pytest.fixture(scope="module")
def admin_token(sm: ServiceManager) -> str:
    done = subprocess.run([sys.executable, "-m", "disco.cli.main", "token", "create", "--admin"],
                          env={**sm.env}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "admin token for tenant admin" in done.stderr
    return done.stdout.strip().splitlines()[-1]


def disco(sm: ServiceManager, token: str | None, *args: str, env: dict[str, str] | None = None,
          ) -> subprocess.CompletedProcess[str]:
    """The `disco` command with the service manager named in the environment (DISCO_URL,
    DISCO_TOKEN), as a user's shell would have it."""
    environment = {**os.environ, "DISCO_URL": sm.url, "HOME": str(sm.data_dir / "home"), **(env or {})}
    environment.pop("DISCO_DATA_DIR", None)
    if token:
        environment["DISCO_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "disco.cli.main", *args], env=environment,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture()
def empty_pool(sm: ServiceManager, admin_token: str) -> Iterator[None]:
    yield
    for host in json.loads(disco(sm, admin_token, "hosts", "list", "-o", "json").stdout):
        disco(sm, admin_token, "hosts", "remove", str(host["id"]))


def never_shows_keys(servers: list[Sshd], *outputs: subprocess.CompletedProcess[str]) -> None:
    for server in servers:
        secret = server.client_key.splitlines()[2]
        for done in outputs:
            assert secret not in done.stdout + done.stderr


def test_add_list_check_remove(sm: ServiceManager, admin_token: str, servers: list[Sshd], empty_pool: None) -> None:
    server = servers[0]
    added = disco(sm, admin_token, "hosts", "add", server.address, "--port", str(server.port), "--user", "root",
                  "--key", str(server.client_key_path), "--name", "one", "--label", "lab")
    assert added.returncode == 0, added.stdout + added.stderr
    assert "added host one" in added.stdout and "state free" in added.stdout
    assert "trust on first use" in added.stdout and server.host_key in added.stdout
    listed = disco(sm, admin_token, "hosts", "list", "-o", "json")
    hosts = json.loads(listed.stdout)
    assert [(h["name"], h["state"], h["labels"], h["host_key"]) for h in hosts] == [
        ("one", "free", ["lab"], server.host_key)]
    table = disco(sm, admin_token, "hosts", "list")
    assert "one" in table.stdout and "free" in table.stdout
    checked = disco(sm, admin_token, "hosts", "check", "one")
    assert checked.returncode == 0 and "checked host one" in checked.stdout and "root" in checked.stdout
    assert "trust on first use" not in checked.stdout
    removed = disco(sm, admin_token, "hosts", "remove", "one")
    assert removed.returncode == 0 and "removed host one" in removed.stdout
    gone = disco(sm, admin_token, "hosts", "remove", "one")
    assert gone.returncode == 2 and "no host named 'one'" in gone.stderr
    never_shows_keys(servers, added, listed, table, checked, removed)
    assert server.client_key.splitlines()[2] not in sm.log_path.read_text()


def test_inventory_and_known_hosts(sm: ServiceManager, admin_token: str, servers: list[Sshd], tmp_path: Path,
                                   empty_pool: None) -> None:
    first, second = servers
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": [
        inventory_entry(first, "tb-1", host_key=first.host_key, labels=["testbed", "baked"], prefix="/opt/disco"),
        inventory_entry(second, "tb-2"),
    ]}))
    added = disco(sm, admin_token, "hosts", "add", "--from", str(inventory), "-o", "json")
    assert added.returncode == 0, added.stdout + added.stderr
    hosts = {h["name"]: h for h in json.loads(added.stdout)}
    assert set(hosts) == {"tb-1", "tb-2"} and all(h["state"] == "free" for h in hosts.values())
    assert hosts["tb-1"]["host_key_source"] == "given" and hosts["tb-1"]["labels"] == ["baked", "testbed"]
    assert hosts["tb-2"]["host_key_source"] == "first_use" and hosts["tb-2"]["host_key"] == second.host_key
    # The same inventory again: each host is there already, said per host, exit code 2.
    again = disco(sm, admin_token, "hosts", "add", "--from", str(inventory))
    assert again.returncode == 2 and again.stderr.count("is in the pool already") == 2
    everything = disco(sm, admin_token, "hosts", "check")
    assert everything.returncode == 0 and everything.stdout.count("checked host") == 2
    assert disco(sm, admin_token, "hosts", "remove", "tb-2").returncode == 0

    known = tmp_path / "known_hosts"
    known.write_text(f"[{second.address}]:{second.port} {second.host_key}\n")
    pinned = disco(sm, admin_token, "hosts", "add", second.address, "--port", str(second.port), "--user", "root",
                   "--key", str(second.client_key_path), "--known-hosts", str(known), "-o", "json")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert json.loads(pinned.stdout)["host_key_source"] == "given"
    never_shows_keys(servers, added, again, everything, pinned)


def test_failures_have_exit_codes_and_reasons(sm: ServiceManager, admin_token: str, servers: list[Sshd],
                                              tmp_path: Path, empty_pool: None) -> None:
    server = servers[0]
    base = [server.address, "--port", str(server.port), "--user", "root"]
    unreadable = tmp_path / "locked-key"
    missing = disco(sm, admin_token, "hosts", "add", *base, "--key", str(tmp_path / "no-such-key"))
    assert missing.returncode == 2 and "cannot read --key" in missing.stderr and "No such file" in missing.stderr
    unreadable.mkdir()
    assert disco(sm, admin_token, "hosts", "add", *base, "--key", str(unreadable)).returncode == 2
    no_user = disco(sm, admin_token, "hosts", "add", server.address, "--key", str(server.client_key_path))
    assert no_user.returncode == 2 and "--user" in no_user.stderr
    bad_port = disco(sm, admin_token, "hosts", "add", server.address, "--port", "70000", "--user", "root",
                     "--key", str(server.client_key_path))
    assert bad_port.returncode == 2 and "65535" in bad_port.stderr
    bad_user = disco(sm, admin_token, "hosts", "add", *base[:-1], "no spaces", "--key", str(server.client_key_path))
    assert bad_user.returncode == 2 and "invalid host: user" in bad_user.stderr
    not_listed = tmp_path / "known_hosts"
    not_listed.write_text("")
    unknown = disco(sm, admin_token, "hosts", "add", *base, "--key", str(server.client_key_path),
                    "--known-hosts", str(not_listed))
    assert unknown.returncode == 2 and "has no key for" in unknown.stderr
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": [{"address": server.address, "key": str(server.client_key_path)}]}))
    incomplete = disco(sm, admin_token, "hosts", "add", "--from", str(inventory), "-o", "json")
    assert incomplete.returncode == 2
    assert "hosts[0]: missing user" in json.loads(incomplete.stdout)["error"]["message"]
    # A host that does not let us in is added, reported unreachable, exit code 1.
    stranger = tmp_path / "stranger"
    stranger.write_text(ssh_keypair("not-authorized")[1])
    refused = disco(sm, admin_token, "hosts", "add", *base, "--key", str(stranger), "--name", "refuses")
    assert refused.returncode == 1 and "refused the key" in refused.stderr
    assert "disco hosts check refuses" in refused.stderr
    check = disco(sm, admin_token, "hosts", "check", "refuses")
    assert check.returncode == 1 and "refused the key" in check.stderr
    assert json.loads(disco(sm, admin_token, "hosts", "list", "-o", "json").stdout)[0]["state"] == "unreachable"
    tenant = disco(sm, sm.token("tenant-a"), "hosts", "list")
    assert tenant.returncode == 2 and "admin_only" in tenant.stderr and "--admin" in tenant.stderr
    never_shows_keys(servers, missing, no_user, bad_port, bad_user, unknown, incomplete, refused, check)


def test_url_and_token_options_win_over_the_environment(sm: ServiceManager, admin_token: str) -> None:
    wrong = {"DISCO_URL": f"http://127.0.0.1:{free_port()}", "DISCO_TOKEN": "not-a-token"}
    for args in (["hosts", "list", "-o", "json"], ["cluster", "list", "-o", "json"],
                 ["cluster", "frameworks", "-o", "json"]):
        assert disco(sm, None, *args, env=wrong).returncode == 1  # the environment's dead address
        done = disco(sm, None, *args, "--url", sm.url, "--token", admin_token, env=wrong)
        assert done.returncode == 0, done.stdout + done.stderr
        assert isinstance(json.loads(done.stdout), list)
    refused = disco(sm, None, "hosts", "list", "--token", "still-not-a-token")
    assert refused.returncode == 2 and "invalid_token" in refused.stderr


def test_every_command_that_calls_the_service_manager_takes_url_and_token() -> None:
    groups = {"cluster", "hosts"}
    command: Any = typer.main.get_command(app)
    checked = 0
    for group_name in groups:
        group = command.commands[group_name]
        for name, sub in group.commands.items():
            options = {opt for param in sub.params for opt in getattr(param, "opts", [])}
            assert {"--url", "--token"} <= options, f"disco {group_name} {name}"
            checked += 1
    assert checked >= 12
