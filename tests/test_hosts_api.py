"""`/api/v1/hosts` against a real service manager and real sshd servers: adding (host key given
or trusted on first use), listing, checking and removing hosts; admins only; clear failures for a
wrong key, an unreachable address and a changed host key; bad input refused with the envelope;
the private key never in an answer or the service manager's log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from disco.cluster.hosts import HostPool
from disco.cluster.secrets import SecretBox, ssh_keypair
from sm_fixtures import ServiceManager
from sshd_fixture import Sshd, free_address

HOSTS = "/api/v1/hosts"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def admin(sm: ServiceManager) -> Iterator[httpx.Client]:
    store = sm.store()
    try:
        token = store.create_token("ops", admin=True)
    finally:
        store.close()
    with httpx.Client(base_url=sm.url, headers={"X-Auth-Token": token}, timeout=120, trust_env=False) as client:
        yield client


@pytest.fixture()
def cleanup_hosts(admin: httpx.Client) -> Iterator[None]:
    yield
    for host in admin.get(HOSTS).json():
        admin.delete(f"{HOSTS}/{host['id']}")


def body(sshd: Sshd, **extra: object) -> dict[str, object]:
    return {"address": sshd.address, "port": sshd.port, "user": "root", "private_key": sshd.client_key, **extra}


def key_body(sshd: Sshd) -> str:
    """A line from the middle of the private key: what must never show anywhere."""
    return sshd.client_key.splitlines()[2]


def error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_add_list_check_remove_with_trust_on_first_use(admin: httpx.Client, sshd: Sshd, sm: ServiceManager,
                                                       cleanup_hosts: None) -> None:
    created = admin.post(HOSTS, json=body(sshd, labels=["b", "a"]))
    assert created.status_code == 201, created.text
    host = created.json()
    assert host["name"] == f"{sshd.address}:{sshd.port}"
    assert host["state"] == "free" and host["labels"] == ["a", "b"] and host["prefix"] == "/opt/disco"
    assert host["host_key"] == sshd.host_key and host["host_key_source"] == "first_use"
    assert host["host_key_just_recorded"] is True
    check = host["last_check"]
    assert check["ok"] is True and check["error"] is None
    assert check["facts"]["root"] is True and check["facts"]["arch"] and check["facts"]["disk_free_mb"] > 0
    assert "private_key" not in host

    assert [h["id"] for h in admin.get(HOSTS).json()] == [host["id"]]
    assert admin.get(f"{HOSTS}/{host['id']}").json()["host_key"] == sshd.host_key
    again = admin.post(f"{HOSTS}/{host['id']}/check").json()
    assert again["last_check"]["ok"] and again["host_key_just_recorded"] is False
    assert again["host_key_source"] == "first_use"

    assert admin.delete(f"{HOSTS}/{host['id']}").status_code == 204
    assert error(admin.get(f"{HOSTS}/{host['id']}"), 404)["code"] == "no_such_host"
    assert error(admin.delete(f"{HOSTS}/{host['id']}"), 404)["code"] == "no_such_host"
    assert key_body(sshd) not in sm.log_path.read_text()


def test_a_given_host_key_is_enforced(admin: httpx.Client, sshd: Sshd, cleanup_hosts: None) -> None:
    good = admin.post(HOSTS, json=body(sshd, name="given", host_key=sshd.host_key + " a-comment")).json()
    assert good["state"] == "free" and good["host_key_source"] == "given" and good["host_key"] == sshd.host_key
    admin.delete(f"{HOSTS}/{good['id']}")

    other = " ".join(ssh_keypair("other")[0].split()[:2])
    bad = admin.post(HOSTS, json=body(sshd, name="wrong-host-key", host_key=other)).json()
    assert bad["state"] == "unreachable" and bad["host_key"] == other
    assert f"host key changed: expected {other}, got {sshd.host_key}" in bad["last_check"]["error"]


def test_a_wrong_key_and_an_unreachable_address_are_said_plainly(admin: httpx.Client, sshd: Sshd,
                                                                 cleanup_hosts: None) -> None:
    stranger = ssh_keypair("not-authorized")[1]
    refused = admin.post(HOSTS, json={**body(sshd, name="wrong-key"), "private_key": stranger}).json()
    assert refused["state"] == "unreachable"
    assert "refused the key" in refused["last_check"]["error"]
    assert refused["host_key"] == sshd.host_key  # the host itself answered: its key is known now

    nowhere = free_address()
    down = admin.post(HOSTS, json={**body(sshd, name="nowhere"), "address": nowhere}).json()
    assert down["state"] == "unreachable" and down["host_key"] is None
    assert f"cannot reach {nowhere}:{sshd.port}" in down["last_check"]["error"]
    assert "ConnectionRefusedError" in down["last_check"]["error"]


def test_a_changed_host_key_makes_the_host_unreachable(admin: httpx.Client, tmp_path: Path,
                                                       cleanup_hosts: None) -> None:
    server = Sshd(tmp_path / "reinstalled").start()
    try:
        host = admin.post(HOSTS, json=body(server, name="reinstalled")).json()
        assert host["state"] == "free"
        old = server.host_key
        new = server.restart_with_new_host_key()
        checked = admin.post(f"{HOSTS}/{host['id']}/check").json()
        assert checked["state"] == "unreachable" and checked["host_key"] == old  # not silently replaced
        assert f"host key changed: expected {old}, got {new}" in checked["last_check"]["error"]
    finally:
        server.cleanup()


def test_only_admins_may_touch_the_pool(sm: ServiceManager, admin: httpx.Client, sshd: Sshd,
                                        cleanup_hosts: None) -> None:
    host = admin.post(HOSTS, json=body(sshd)).json()
    with sm.client("tenant-a") as tenant, httpx.Client(base_url=sm.url, timeout=30, trust_env=False) as anonymous:
        for method, path in (("GET", HOSTS), ("POST", HOSTS), ("GET", f"{HOSTS}/{host['id']}"),
                             ("DELETE", f"{HOSTS}/{host['id']}"), ("POST", f"{HOSTS}/{host['id']}/check")):
            kwargs = {"json": body(sshd, name="sneaky")} if (method, path) == ("POST", HOSTS) else {}
            assert error(tenant.request(method, path, **kwargs), 403)["code"] == "admin_only"
            assert error(anonymous.request(method, path, **kwargs), 401)["code"] == "missing_token"
    assert [h["name"] for h in admin.get(HOSTS).json()] == [host["name"]]
    # An admin token is a tenant's token too.
    assert admin.get("/api/v1/clusters").status_code == 200


def test_a_host_in_use_is_not_removed(sm: ServiceManager, admin: httpx.Client, sshd: Sshd,
                                      cleanup_hosts: None) -> None:
    host = admin.post(HOSTS, json=body(sshd)).json()
    store = sm.store()
    pool = HostPool(store, SecretBox(sm.data_dir))
    try:
        held = pool.acquire("some-cluster", ["master"])
        assert held["master"].private_key == sshd.client_key  # the service manager's box opens it
        refused = error(admin.delete(f"{HOSTS}/{host['id']}"), 409)
        assert refused["code"] == "host_in_use" and refused["details"]["cluster_id"] == "some-cluster"
        shown = admin.get(f"{HOSTS}/{host['id']}").json()
        assert (shown["state"], shown["cluster_id"], shown["node"]) == ("in_use", "some-cluster", "master")
    finally:
        pool.release("some-cluster")
        store.close()
    assert admin.delete(f"{HOSTS}/{host['id']}").status_code == 204


@pytest.mark.parametrize(("change", "where"), [
    ({"address": None}, ["address"]),
    ({"user": None}, ["user"]),
    ({"private_key": None}, ["private_key"]),
    ({"port": 70000}, ["port"]),
    ({"port": "22"}, ["port"]),
    ({"labels": ["no spaces"]}, ["labels", 0]),
    ({"prefix": "relative/path"}, ["prefix"]),
    ({"host_key": "not a key"}, ["host_key"]),
    ({"surprise": 1}, ["surprise"]),
])
def test_bad_input_is_refused_with_the_envelope(admin: httpx.Client, sshd: Sshd, change: dict[str, object],
                                                where: list[object]) -> None:
    sent = {k: v for k, v in {**body(sshd), **change}.items() if v is not None}
    refused = error(admin.post(HOSTS, json=sent), 422)
    assert refused["code"] == "invalid_host"
    assert [issue["loc"] for issue in refused["details"]] == [where]
    assert key_body(sshd) not in str(refused)
    assert admin.get(HOSTS).json() == []


def test_unusable_keys_and_duplicates_are_refused(admin: httpx.Client, sshd: Sshd, sm: ServiceManager,
                                                  cleanup_hosts: None) -> None:
    garbled = sshd.client_key.replace(key_body(sshd), key_body(sshd)[::-1])
    refused = error(admin.post(HOSTS, json={**body(sshd), "private_key": garbled}), 422)
    assert refused["code"] == "invalid_private_key" and key_body(sshd)[::-1] not in str(refused)
    assert error(admin.post(HOSTS, json=body(sshd, host_key="ssh-ed25519 AAAAC3Nz")), 422)["code"] == "invalid_host_key"
    assert error(admin.post(HOSTS, content=b"{not json"), 422)["code"] == "invalid_json"
    assert error(admin.get(f"{HOSTS}/{2 ** 40}"), 422)["code"] == "invalid_request"
    first = admin.post(HOSTS, json=body(sshd, name="one"))
    assert first.status_code == 201
    assert error(admin.post(HOSTS, json=body(sshd, name="one")), 409)["code"] == "host_exists"
    assert "is in the pool already" in error(admin.post(HOSTS, json=body(sshd, name="two")), 409)["message"]
    assert key_body(sshd)[::-1] not in sm.log_path.read_text()
