"""GET /api/v1/farm/overview on `disco farm server`, on SQLite and on PostgreSQL, driven step by
step through the clients' protocol (tests/farm_protocol.py) so that every number is known in
advance: units in flight while leased, a lying client's results counted invalid, every unit
done in the minute now running, and the slots a heartbeat sent kept as sent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from farm_fixtures import FarmServer, db_url  # noqa: F401  (a fixture)
from farm_protocol import ProtoClient, failed, ok, unit_input

UNITS = 6
SLOTS = [{"slot": 0, "kind": "process", "busy": True, "instance_id": None, "cpu_percent": 97.5, "memory_mb": 41.2},
         {"slot": 1, "kind": "container", "busy": False, "instance_id": None, "cpu_percent": None, "memory_mb": None}]


@pytest.fixture()
def farm(db_url: str, tmp_path: Path) -> Iterator[FarmServer]:  # noqa: F811
    server = FarmServer(tmp_path / "farm", db_url, extra_args=("--min-lease", "5")).start()
    try:
        yield server
    finally:
        server.stop()


def overview(owner: httpx.Client) -> dict[str, Any]:
    answer = owner.get("/api/v1/farm/overview")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_overview_counts_what_the_clients_did(farm: FarmServer) -> None:
    with farm.owner() as owner:
        empty = overview(owner)
        assert (empty["projects"], empty["clients"], empty["clients_online"]) == ([], [], 0)
        made = owner.post("/api/v1/farm/projects", json={
            "name": "counted", "code": {"kind": "container", "image": "busybox", "command": ["cat"]},
            "input": {"kind": "inline", "text": "".join(f"u{i}\n" for i in range(UNITS))},
            "split": {"by": "lines", "size": 1}, "quorum": 2})
        assert made.status_code == 201, made.text
        project = made.json()["project_id"]
        key = owner.post("/api/v1/farm/keys", json={}).json()["key"]
        honest, liar, third = (ProtoClient(farm.url, key, name, slots=2) for name in ("honest", "liar", "third"))
        try:
            leased = {c.client_id: c.work(seconds=100, slots=UNITS) for c in (honest, liar)}
            assert all(len(got) == UNITS for got in leased.values())
            during = overview(owner)
            mine = during["projects"][0]
            assert (mine["units_total"], mine["units_in_flight"], mine["instances_in_flight"], mine["units_done"],
                    mine["units_waiting"]) == (UNITS, UNITS, 2 * UNITS, 0, UNITS)
            clients = {c["name"]: c for c in during["clients"]}
            assert clients["honest"]["in_flight"] == clients["liar"]["in_flight"] == UNITS
            assert clients["third"]["in_flight"] == 0 and during["clients_online"] == 3  # enrolled just now

            # The slots a heartbeat carries are kept as sent; one without slots leaves them.
            ids = [lease["instance_id"] for lease in leased[honest.client_id]]
            slots = [dict(SLOTS[0], instance_id=ids[0]), SLOTS[1]]
            beat = honest.http.post("/heartbeat", json={"instances": ids[:1], "slots": slots})
            assert beat.status_code == 200, beat.text
            honest.heartbeat(ids[:1])
            kept = {c["name"]: c for c in overview(owner)["clients"]}["honest"]
            assert kept["containers"] == slots and kept["stats_at"] is not None
            assert {c["name"]: c for c in overview(owner)["clients"]}["liar"]["containers"] == []
            bad = honest.http.post("/heartbeat", json={"instances": [], "slots": [dict(SLOTS[0], cpu_percent=-1)]})
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"

            honest.report([ok(lease, unit_input(lease).upper()) for lease in leased[honest.client_id]])
            liar.report([ok(lease, b"lie") for lease in leased[liar.client_id]])
            tiebreak = third.work(seconds=100, slots=UNITS)  # a third instance of each disputed unit
            assert len(tiebreak) == UNITS
            third.report([ok(lease, unit_input(lease).upper()) for lease in tiebreak])
            deadline = time.monotonic() + 30
            while overview(owner)["projects"][0]["state"] != "done" and time.monotonic() < deadline:
                time.sleep(0.2)  # the server's loop assimilates once a second
            after = overview(owner)
        finally:
            for client in (honest, liar, third):
                client.close()
    mine = after["projects"][0]
    assert mine["project_id"] == project and mine["state"] == "done"
    assert (mine["units_done"], mine["units_in_flight"], mine["units_failed"], mine["units_waiting"]) == (UNITS, 0, 0, 0)
    assert mine["per_minute"][-1] + mine["per_minute"][-2] == UNITS and sum(mine["per_minute"]) == UNITS
    assert mine["units_per_minute"] > 0
    clients = {c["name"]: c for c in after["clients"]}
    assert {n: (c["units_done"], c["invalid"], c["in_flight"]) for n, c in clients.items()} == {
        "honest": (UNITS, 0, 0), "liar": (0, UNITS, 0), "third": (UNITS, 0, 0)}


def test_the_overview_needs_the_owners_token(farm: FarmServer) -> None:
    answer = httpx.get(f"{farm.url}/api/v1/farm/overview", trust_env=False)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "missing_token"


def test_failed_units_and_errors_are_counted(farm: FarmServer) -> None:
    with farm.owner() as owner:
        made = owner.post("/api/v1/farm/projects", json={
            "name": "failing", "code": {"kind": "container", "image": "busybox", "command": ["cat"]},
            "input": {"kind": "inline", "text": "a\nb\nc\n"}, "split": {"by": "lines", "size": 1}, "max_errors": 1})
        assert made.status_code == 201, made.text
        key = owner.post("/api/v1/farm/keys", json={}).json()["key"]
        client = ProtoClient(farm.url, key, "unlucky")
        try:
            leases = sorted(client.work(seconds=100, slots=3), key=lambda lease: lease["unit_id"])
            assert len(leases) == 3
            # One unit fails (max_errors 1), two succeed.
            client.report([failed(leases[0], "boom")] + [ok(lease, unit_input(lease)) for lease in leases[1:]])
            deadline = time.monotonic() + 30
            while overview(owner)["projects"][0]["state"] != "done" and time.monotonic() < deadline:
                time.sleep(0.2)
            after = overview(owner)
        finally:
            client.close()
    mine = after["projects"][0]
    assert (mine["state"], mine["units_done"], mine["units_failed"], mine["units_waiting"]) == ("done", 2, 1, 0)
    assert sum(mine["per_minute"]) == 2
    unlucky = after["clients"][0]
    assert (unlucky["units_done"], unlucky["errors"], unlucky["invalid"], unlucky["in_flight"]) == (2, 1, 0, 0)
