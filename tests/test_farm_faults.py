"""Faults with real `disco farm server` and `disco farm client` processes, judged by the server's
attempts log and the output files: `kill -9` of clients mid-unit, `kill -9` and restart of the
server under load, connections cut at random, a client returning wrong results at quorum 2. In
every case: 0 units lost, 0 assimilated twice. Leases are 1 s (the server's --min-lease) so
reissues happen quickly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm_clients import ClientProc, audit, enrollment_key, rows, submit, wait_done
from farm_fixtures import FarmServer
from tcp_chaos import ChaosProxy


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[FarmServer]:
    server = FarmServer(tmp_path / "farm", f"sqlite:///{tmp_path / 'farm.sqlite'}",
                        extra_args=("--min-lease", "1")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clients() -> Iterator[list[ClientProc]]:
    started: list[ClientProc] = []
    try:
        yield started
    finally:
        for client in started:
            client.stop()


def leased(farm: FarmServer, project: str) -> int:
    return rows(farm, "select count(*) from farm_instances where project_id = :p and state = 'leased'", p=project)[0][0]


def wait_for(condition, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_clients_killed_mid_unit_lose_nothing(farm: FarmServer, clients: list[ClientProc], tmp_path: Path) -> None:
    key = enrollment_key(farm, tmp_path / "key")
    project, lines = submit(farm, tmp_path, 30, unit_seconds=0.3, lease_s=1)
    for name in ("doomed-1", "doomed-2"):
        clients.append(ClientProc(farm.url, key, tmp_path / name, slots=2, env={"FARM_TEST_SLEEP": "5"}))
    wait_for(lambda: leased(farm, project) >= 4)
    for client in clients:
        client.kill9()  # mid-unit: each was 5 s into nothing yet
    clients.append(ClientProc(farm.url, key, tmp_path / "survivor", slots=4, env={"FARM_TEST_SLEEP": "0.05"}))
    wait_done(farm, project, 60, clients)
    found = audit(farm, project, lines)
    print(f"\nclients killed: {found}")
    assert found["units"] == 30 and found["lost"] == 0 and found["twice"] == 0, found
    assert found.get("log_expire", 0) >= 4  # the killed clients' leases ran out and were reissued


def test_server_killed_and_restarted_under_load(farm: FarmServer, clients: list[ClientProc], tmp_path: Path) -> None:
    key = enrollment_key(farm, tmp_path / "key")
    project, lines = submit(farm, tmp_path, 300, unit_seconds=0.05, lease_s=2)
    for name in ("a", "b"):
        clients.append(ClientProc(farm.url, key, tmp_path / name, slots=3, env={"FARM_TEST_SLEEP": "0.01"}))
    for _ in range(2):
        wait_for(lambda: rows(farm, "select count(*) from farm_attempts where project_id = :p and kind = 'assimilate'",
                              p=project)[0][0] >= 50, 60)
        farm.kill9()
        time.sleep(1.5)
        farm.start()  # same port, same database
    wait_done(farm, project, 90, clients)
    found = audit(farm, project, lines)
    backoffs = sum(c.log.count("retrying in") for c in clients)
    print(f"\nserver killed twice: {found}, client backoffs {backoffs}")
    assert found["units"] == 300 and found["lost"] == 0 and found["twice"] == 0, found
    assert backoffs >= 2 and all(c.proc.poll() is None for c in clients)


def test_connections_cut_at_random(farm: FarmServer, clients: list[ClientProc], tmp_path: Path) -> None:
    key = enrollment_key(farm, tmp_path / "key")
    project, lines = submit(farm, tmp_path, 100, unit_seconds=0.05, lease_s=2)
    proxy = ChaosProxy(farm.port, cut_probability=0.4)
    try:
        # Four clients: a unit whose lease answer was cut on its way to a client is never leased to
        # that client again (one instance of a unit per client), so two clients could both lose it.
        for name in ("w", "x", "y", "z"):
            clients.append(ClientProc(proxy.url, key, tmp_path / name, slots=1,
                                      extra=("--seconds-per-slot", "0.2")))
        wait_done(farm, project, 90, clients)
    finally:
        proxy.close()
    found = audit(farm, project, lines)
    print(f"\nconnections cut: {proxy.cuts} of {proxy.connections}: {found}")
    assert proxy.cuts >= 5
    assert found["units"] == 100 and found["lost"] == 0 and found["twice"] == 0, found


def test_a_lying_client_is_never_canonical_at_quorum_2(farm: FarmServer, clients: list[ClientProc],
                                                       tmp_path: Path) -> None:
    key = enrollment_key(farm, tmp_path / "key")
    project, lines = submit(farm, tmp_path, 40, quorum=2, unit_seconds=0.05, lease_s=2)
    clients.append(ClientProc(farm.url, key, tmp_path / "liar", slots=2, env={"FARM_TEST_LIAR": "1"},
                              extra=("--seconds-per-slot", "0.2")))
    # The honest clients start once the liar holds work: started together, on a loaded machine
    # they could finish every unit before the liar's process had enrolled.
    deadline = time.monotonic() + 60
    while not rows(farm, "select count(*) from farm_instances i join farm_clients c on c.id = i.client_id "
                         "where c.name = 'liar'")[0][0]:
        assert time.monotonic() < deadline and clients[-1].proc.poll() is None, clients[-1].log[-800:]
        time.sleep(0.1)
    for name in ("honest-1", "honest-2"):
        clients.append(ClientProc(farm.url, key, tmp_path / name, slots=2, extra=("--seconds-per-slot", "0.2")))
    wait_done(farm, project, 90, clients)
    found = audit(farm, project, lines)  # every output is the true one: the liar's never won
    liar = rows(farm, "select id from farm_clients where name = 'liar'")[0][0]
    liar_canonical = rows(farm, "select count(*) from farm_units u join farm_instances i on "
                                "i.id = u.canonical_instance_id where u.project_id = :p and i.client_id = :c",
                          p=project, c=liar)[0][0]
    liar_results = rows(farm, "select state, count(*) from farm_instances where project_id = :p and "
                              "client_id = :c group by state", p=project, c=liar)
    print(f"\nlying client: {found}, its instances {dict(liar_results)}, canonical {liar_canonical}")
    assert found["units"] == 40 and found["lost"] == 0 and found["twice"] == 0, found
    assert liar_canonical == 0 and dict(liar_results).get("invalid", 0) >= 1
