"""The task farm's overview (GET /api/v1/farm/overview) and its dashboard page (/ui/farm) on a
real service manager, with a real project run by real `disco farm client` processes (one of
them lying): the numbers are those of what happened (read back from the farm's tables), the
clients' slots carry the CPU and memory their heartbeats measured, a stopped client goes
offline, and another tenant sees none of it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard_client import Dashboard
from farm_clients import ClientProc, enrollment_key, rows, wait_done
from farm_steps import Owner, submit
from sm_fixtures import ServiceManager

ONLINE_S = 4.0


@pytest.fixture(scope="module")
def farm_sm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceManager]:
    manager = ServiceManager(tmp_path_factory.mktemp("sm-farm-ui"), extra_env={
        "DISCO_FARM_MIN_LEASE_S": "2", "DISCO_FARM_ONLINE_S": str(ONLINE_S)}).start()
    try:
        yield manager
    finally:
        manager.cleanup()


def overview(api: httpx.Client) -> dict[str, Any]:
    answer = api.get("/api/v1/farm/overview")
    assert answer.status_code == 200, answer.text
    return answer.json()


def by_name(numbers: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in numbers["clients"]}


def test_the_overview_and_the_page_show_what_happened(farm_sm: ServiceManager, tmp_path: Path) -> None:
    a, b = Owner(farm_sm, "tenant-a"), Owner(farm_sm, "tenant-b")
    project = submit(a, tmp_path, "spin-a", 24, quorum=2, unit_seconds=0.2, lease_s=10)
    other = submit(b, tmp_path, "hidden-b", 3)  # tenant b's: no client of b, it stays open
    key = enrollment_key(a, tmp_path / "key")
    env = {"FARM_TEST_SPIN": "0.15"}
    clients = [ClientProc(farm_sm.url, key, tmp_path / name, slots=2, env={**env, **extra},
                          extra=("--seconds-per-slot", "0.4"))
               for name, extra in (("honest-1", {}), ("honest-2", {}), ("liar", {"FARM_TEST_LIAR": "1"}))]
    seen_flying, seen_cpu = 0, 0.0
    try:
        with a.owner() as api:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # while it runs: clients online, slots measured
                now = overview(api)
                mine = now["projects"][0]
                seen_flying = max(seen_flying, mine["units_in_flight"])
                for client in now["clients"]:
                    for slot in client["containers"]:
                        seen_cpu = max(seen_cpu, slot["cpu_percent"] or 0.0)
                if mine["state"] == "done":
                    break
                time.sleep(0.3)
            done = wait_done(a, project, 60, clients)  # type: ignore[arg-type]
            assert done["state"] == "done"
            after = overview(api)
        print(f"\nin flight at most {seen_flying} units, a slot at most {seen_cpu} % CPU")
        assert seen_flying >= 1 and seen_cpu > 5.0, (seen_flying, seen_cpu)
        with a.owner() as api:  # a client that has gone idle says so with its next heartbeat
            deadline = time.monotonic() + 15
            while any(s["busy"] for c in after["clients"] for s in c["containers"]) and time.monotonic() < deadline:
                time.sleep(0.3)
                after = overview(api)
        assert not any(s["busy"] for c in after["clients"] for s in c["containers"]), after["clients"]

        # The project: every unit done, none failed or in flight; the per-minute series adds up.
        assert [p["project_id"] for p in after["projects"]] == [project]
        mine = after["projects"][0]
        assert (mine["units_total"], mine["units_done"], mine["units_failed"], mine["units_in_flight"],
                mine["units_waiting"], mine["instances_in_flight"]) == (24, 24, 0, 0, 0, 0), mine
        assert len(mine["per_minute"]) == after["minutes"] and sum(mine["per_minute"]) == 24
        assert mine["units_per_minute"] > 0

        # The clients: all three online, two slots each, measured; the farm's tables agree.
        assert after["clients_online"] == 3
        clients_now = by_name(after)
        assert set(clients_now) == {"honest-1", "honest-2", "liar"}
        states = rows(a, "select c.name, i.state, count(*) from farm_instances i "  # type: ignore[arg-type]
                         "join farm_clients c on c.id = i.client_id where i.project_id = :p "
                         "group by c.name, i.state", p=project)
        table: dict[str, dict[str, int]] = {}
        for name, state, count in states:
            table.setdefault(name, {})[state] = count
        for name, client in clients_now.items():
            assert client["online"] and client["slots"] == 2 and client["stats_at"] is not None
            assert [s["slot"] for s in client["containers"]] == [0, 1]
            assert all(s["kind"] == "process" and s["memory_mb"] > 1 for s in client["containers"]), client
            assert client["invalid"] == table[name].get("invalid", 0)
            assert client["units_done"] == table[name].get("success", 0)
            assert client["errors"] == 0 and client["in_flight"] == 0
        assert clients_now["liar"]["invalid"] >= 1 and clients_now["liar"]["units_done"] == 0
        assert clients_now["honest-1"]["invalid"] == clients_now["honest-2"]["invalid"] == 0
        assert clients_now["honest-1"]["units_done"] + clients_now["honest-2"]["units_done"] == 48

        # The page: the same numbers, live stream included.
        ui = Dashboard(farm_sm.url)
        try:
            ui.sign_in(farm_sm.token("tenant-a"))
            page = ui.get("/ui/farm")
            assert page.status_code == 200 and 'data-live-farm="/ui/live/farm"' in page.text
            html = page.text
            assert f'data-project-id="{project}"' in html and "spin-a" in html
            assert '<span data-field="units_done">24</span> of <span data-field="units_total">24</span>' in html
            for client in after["clients"]:
                assert f'data-client-id="{client["client_id"]}"' in html
                assert f'data-slots-of="{client["client_id"]}"' in html
            liar_row = html.split(f'data-client-id="{clients_now["liar"]["client_id"]}"')[1].split("</tr>")[0]
            assert f'<td data-field="invalid">{clients_now["liar"]["invalid"]}</td>' in liar_row
            assert "MiB" in html and "hidden-b" not in html and other not in html
            events = ui.events("/ui/live/farm", lambda name, _data: name == "farm", timeout=20)
            streamed = events[-1][1]
            assert streamed["projects"][0]["units_done"] == 24
            assert {c["name"] for c in streamed["clients"]} == set(clients_now)
        finally:
            ui.close()

        # A stopped client goes offline once it has not been heard from for the window.
        clients[2].stop()
        time.sleep(ONLINE_S + 1.5)
        with a.owner() as api:
            later = overview(api)
        assert later["clients_online"] == 2 and by_name(later)["liar"]["online"] is False
    finally:
        for client in clients:
            client.stop()

    # Tenant b: only its own project, none of a's clients, on the API and on the page.
    with b.owner() as api_b:
        theirs = overview(api_b)
    assert [p["project_id"] for p in theirs["projects"]] == [other] and theirs["clients"] == []
    assert theirs["projects"][0]["units_done"] == 0 and theirs["projects"][0]["units_waiting"] == 3
    ui_b = Dashboard(farm_sm.url)
    try:
        ui_b.sign_in(farm_sm.token("tenant-b"))
        page_b = ui_b.get("/ui/farm").text
        assert "hidden-b" in page_b and project not in page_b and "honest-1" not in page_b and "liar" not in page_b
    finally:
        ui_b.close()


def test_the_overview_and_the_page_need_a_sign_in(farm_sm: ServiceManager) -> None:
    anonymous = httpx.get(f"{farm_sm.url}/api/v1/farm/overview", trust_env=False)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_token"
    bad = httpx.get(f"{farm_sm.url}/api/v1/farm/overview", headers={"X-Auth-Token": "nope"}, trust_env=False)
    assert bad.status_code == 401 and "error" in bad.json()
    page = httpx.get(f"{farm_sm.url}/ui/farm", trust_env=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/signin?next=%2Fui%2Ffarm")
    stream = httpx.get(f"{farm_sm.url}/ui/live/farm", trust_env=False)
    assert stream.status_code == 401
    schema = httpx.get(f"{farm_sm.url}/openapi.json", trust_env=False).json()
    operation = schema["paths"]["/api/v1/farm/overview"]["get"]
    assert operation["operationId"] == "getFarmOverview"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FarmOverview"}
    assert {"401", "429"} <= set(operation["responses"])
    heartbeat = schema["components"]["schemas"]["HeartbeatRequest"]["properties"]
    assert "slots" in heartbeat
