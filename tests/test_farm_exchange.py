"""POST …/work carrying results (BOINC's scheduler RPC, docs/taskfarm.md step 4): the results
recorded exactly as POST …/results records them, then new leases, in one transaction. Against a
real `disco farm server` on SQLite and PostgreSQL: every unit done once with the right output by
clients that only ever exchange; replays answered `duplicate` with nothing done twice; someone
else's instance refused; quorum 2 never hands one client two copies of a unit; bad bodies get
the app's 422 on the fast path too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from farm_fixtures import FarmServer, db_url  # noqa: F401  (a fixture)
from farm_protocol import ProtoClient, ok, unit_input
from test_farm_protocol import (assert_each_unit_assimilated_once, clients_at_once_at_quorum_2, enrollment_key,
                                results_of, rows, submit, upper, wait_done)


@pytest.fixture()
def farm(db_url: str, tmp_path: Path) -> Iterator[FarmServer]:  # noqa: F811
    server = FarmServer(tmp_path / "farm", db_url).start()
    try:
        yield server
    finally:
        server.stop()


def exchange_until_done(client: ProtoClient, seconds: float) -> int:
    """The client's loop: report what it did with its next ask, until the farm has nothing."""
    leases = client.work(seconds=seconds)
    done = 0
    while leases:
        items = [ok(lease, upper(unit_input(lease))) for lease in leases]
        answers, leases = client.exchange(items, seconds=seconds)
        assert [a["instance_id"] for a in answers] == [i["instance_id"] for i in items]
        assert {a["status"] for a in answers} <= {"accepted", "not_needed"}, answers
        done += len(items)
    return done


def test_clients_that_only_exchange_do_every_unit_once(farm: FarmServer) -> None:
    project = submit(farm)
    client = ProtoClient(farm.url, enrollment_key(farm), "c")
    try:
        assert exchange_until_done(client, seconds=3) == 20
        # The last exchange reported and found nothing: no leases, the retry hint, as a plain ask.
        answer = client.http.post("/work", json={"seconds": 3, "results": []})
        assert answer.status_code == 200 and answer.headers["retry-after"] == "10"
        assert answer.json() == {"leases": [], "retry_after_s": 10.0}
    finally:
        client.close()
    wait_done(farm, project)
    assert results_of(farm, project) == ("\n".join(f"line {i}" for i in range(40)) + "\n").upper().encode()
    assert_each_unit_assimilated_once(farm, project, 20)
    # Documented: the request's `results` are POST …/results' items, the answer's its answers.
    schema = httpx.get(f"{farm.url}/openapi.json", trust_env=False).json()["components"]["schemas"]
    asked = schema["WorkRequest"]["properties"]["results"]["anyOf"][0]
    assert asked["items"] == {"$ref": "#/components/schemas/ResultItem"} and asked["maxItems"] == 1000
    answered = schema["WorkAnswer"]["properties"]["results"]["anyOf"][0]
    assert answered["items"] == {"$ref": "#/components/schemas/ResultAnswer"}


def test_replays_and_strangers_through_exchange(farm: FarmServer) -> None:
    project = submit(farm)
    key = enrollment_key(farm)
    client, other = ProtoClient(farm.url, key, "c"), ProtoClient(farm.url, key, "other")
    try:
        leases = client.work(seconds=4)
        batch = [ok(lease, upper(unit_input(lease))) for lease in leases]
        first, more = client.exchange(batch, seconds=4)
        assert {a["status"] for a in first} == {"accepted"} and len(more) == len(leases)
        # The same batch again (an answer the client never saw): duplicates, and the new leases
        # are others (the ones of the lost answer simply expire).
        again, more2 = client.exchange(batch, seconds=4)
        assert again == [{"instance_id": a["instance_id"], "status": "duplicate", "first": "accepted"} for a in first]
        assert not {lease["instance_id"] for lease in more} & {lease["instance_id"] for lease in more2}
        # Someone else's instance, or a wrong attempt: refused, and the ask is still answered.
        refused, theirs = other.exchange([ok(more[0], b"X"), {**ok(more[1], b"X"), "attempt": 2}], seconds=1)
        assert [a["status"] for a in refused] == ["refused", "refused"] and len(theirs) >= 1
        # The plain report still works beside it, and agrees.
        assert client.report(batch[:1]) == again[:1]
    finally:
        client.close()
        other.close()
    reports = rows(farm, "select instance_id from farm_attempts where kind = 'report' and project_id = :p", p=project)
    assert sorted(r for (r,) in reports) == sorted(item["instance_id"] for item in batch)


def test_concurrent_exchanges_at_quorum_2_never_give_a_client_a_unit_twice(farm: FarmServer) -> None:
    clients_at_once_at_quorum_2(farm, 6, lambda client: exchange_until_done(client, seconds=3))


@pytest.mark.parametrize("results", [[{"instance_id": 1}], "nope", [{"instance_id": 1, "attempt": 1,
                                                                     "status": "maybe"}]])
def test_bad_results_in_a_work_request_get_the_apps_422(farm: FarmServer, results: Any) -> None:
    client = ProtoClient(farm.url, enrollment_key(farm), "c")
    try:
        for _ in range(2):  # the first through FastAPI, the second through the fast path
            answer = client.http.post("/work", json={"seconds": 1, "results": results})
            assert answer.status_code == 422, answer.text
            error = answer.json()["error"]
            assert error["code"] == "invalid_request" and error["details"][0]["loc"][:2] == ["body", "results"]
    finally:
        client.close()


def test_the_real_client_reports_with_its_next_ask(farm: FarmServer, tmp_path: Path) -> None:
    """`disco farm client` sends its results with its next POST /work: with one slot and units of
    its ask's size, every result goes that way: no POST /results is made at all."""
    from farm_clients import ClientProc, audit, submit as submit_python
    from farm_clients import enrollment_key as key_file

    key = key_file(farm, tmp_path / "key")
    project, lines = submit_python(farm, tmp_path, 12, unit_seconds=10)
    client = ClientProc(farm.url, key, tmp_path / "client", slots=1, extra=("--max-units", "12"))
    try:
        assert client.proc.wait(120) == 0, client.log
    finally:
        client.stop()
    found = audit(farm, project, lines)
    assert found["units"] == 12 and found["lost"] == 0 and found["twice"] == 0, found
    assert "summary: 12 units done, 0 failed, 0 stopped, 12 reported, 0 unreported" in client.log, client.log[-800:]
    log = farm.log_path.read_text()
    assert log.count('"POST /api/v1/farm/results ') == 0, log[-2000:]
    assert log.count('"POST /api/v1/farm/work ') >= 12


def test_new_work_is_leased_at_once_though_the_queue_holds_only_units_the_client_had(farm: FarmServer) -> None:
    """The server's queue of unsent instances (feeder.Candidates) is read again when nothing in it
    fits the client, not only once a second: a project submitted just now is leased at once."""
    key = enrollment_key(farm)
    submit(farm, quorum=2, input={"kind": "inline", "text": "a\n"}, split={"by": "lines", "size": 1})
    client = ProtoClient(farm.url, key, "c")
    try:
        assert len(client.work(seconds=1)) == 1  # one copy of the unit; the other stays queued
        assert client.work(seconds=1) == []  # the other copy is of a unit it had: never to it
        second = submit(farm, input={"kind": "inline", "text": "b\n"}, split={"by": "lines", "size": 1})
        leases = client.work(seconds=1)
        assert [lease["project_id"] for lease in leases] == [second]
        assert unit_input(leases[0]) == b"b\n"
    finally:
        client.close()
