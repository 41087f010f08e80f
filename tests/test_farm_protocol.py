"""The farm's protocol against a real `disco farm server` process, on SQLite and PostgreSQL,
driven by a protocol-level client written in the tests (farm_protocol.py): every unit done
exactly once with the right output; a lying client's results never canonical at quorum 2;
eight clients at once never sharing an instance nor getting a unit twice; replayed reports answered the same with nothing done twice; expired leases reissued and late
results still used; a poisoned unit dead-lettered with its errors; kill -9 and restart mid-project
losing nothing. The evidence is the server's own tables (the attempts log)."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from farm_fixtures import FarmServer, db_url  # noqa: F401  (a fixture)
from farm_protocol import ProtoClient, failed, ok, run_round, unit_input

LINES = [f"line {i}" for i in range(40)]


def upper(data: bytes) -> bytes:
    return data.upper()


@pytest.fixture()
def farm(db_url: str, tmp_path: Path) -> Iterator[FarmServer]:  # noqa: F811
    server = FarmServer(tmp_path / "farm", db_url, extra_args=("--min-lease", "1")).start()
    try:
        yield server
    finally:
        server.stop()


def submit(farm: FarmServer, **spec: Any) -> str:
    body = {"name": "t", "code": {"kind": "container", "image": "busybox", "command": ["tr", "a-z", "A-Z"]},
            "input": {"kind": "inline", "text": "\n".join(LINES) + "\n"}, "split": {"by": "lines", "size": 2}, **spec}
    with farm.owner() as owner:
        answer = owner.post("/api/v1/farm/projects", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["project_id"])


def enrollment_key(farm: FarmServer) -> str:
    with farm.owner() as owner:
        answer = owner.post("/api/v1/farm/keys", json={"description": "tests"})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["key"])


def rows(farm: FarmServer, sql: str, **params: Any) -> list[Any]:
    url = farm.db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def wait_done(farm: FarmServer, project_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with farm.owner() as owner:
        while time.monotonic() < deadline:
            view = owner.get(f"/api/v1/farm/projects/{project_id}").json()
            if view["state"] != "open":
                return dict(view)
            time.sleep(0.2)
    raise AssertionError(f"project not done: {view}")


def expected_output() -> bytes:
    return ("\n".join(LINES) + "\n").upper().encode()


def results_of(farm: FarmServer, project_id: str) -> bytes:
    with farm.owner() as owner:
        body = owner.get(f"/api/v1/farm/projects/{project_id}/results").json()
    assert body["complete"]
    return b"".join(base64.b64decode(r["output"]) for r in body["results"])


def assert_each_unit_assimilated_once(farm: FarmServer, project_id: str, units: int) -> None:
    log = rows(farm, "select unit_id from farm_attempts where kind = 'assimilate' and project_id = :p", p=project_id)
    assert len(log) == units and len(set(log)) == units, Counter(log).most_common(3)
    files = list((farm.data_dir / "output" / project_id).glob("*.out"))
    assert len(files) == units and not list((farm.data_dir / "output" / project_id).glob(".tmp-*"))


def test_every_unit_is_done_exactly_once_with_the_right_output(farm: FarmServer) -> None:
    project = submit(farm)
    key = enrollment_key(farm)
    clients = [ProtoClient(farm.url, key, f"c{i}") for i in range(3)]
    try:
        while sum(run_round(c, upper, seconds=3) for c in clients):
            pass
    finally:
        for c in clients:
            c.close()
    view = wait_done(farm, project)
    assert view["units"]["assimilated"] == 20 and view["state"] == "done"
    assert results_of(farm, project) == expected_output()
    assert_each_unit_assimilated_once(farm, project, 20)
    # Each unit was leased once: quorum 1 and nothing expired.
    leases = rows(farm, "select unit_id from farm_attempts where kind = 'lease' and project_id = :p", p=project)
    assert sorted(leases) == sorted(set(leases)) and len(leases) == 20


def test_a_lying_client_is_never_canonical_at_quorum_2(farm: FarmServer) -> None:
    project = submit(farm, quorum=2)
    key = enrollment_key(farm)
    honest = [ProtoClient(farm.url, key, f"honest{i}") for i in range(2)]
    liar = ProtoClient(farm.url, key, "liar")
    try:
        for _ in range(100):
            moved = run_round(liar, lambda data: b"lies\n") + sum(run_round(c, upper) for c in honest)
            if not moved:
                break
    finally:
        for c in (*honest, liar):
            c.close()
    wait_done(farm, project)
    assert results_of(farm, project) == expected_output()
    canonical = rows(farm, "select i.client_id from farm_units u join farm_instances i "
                           "on i.id = u.canonical_instance_id where u.project_id = :p", p=project)
    assert len(canonical) == 20 and liar.client_id not in {c for (c,) in canonical}
    # Every one of the liar's results that was judged is marked invalid, and its record shows it.
    judged = rows(farm, "select state from farm_instances where client_id = :c and state in ('success', 'invalid')",
                  c=liar.client_id)
    assert judged and {s for (s,) in judged} == {"invalid"}
    record = rows(farm, "select consecutive_valid, invalid_total from farm_client_records where client_id = :c",
                  c=liar.client_id)
    assert record[0][0] == 0 and record[0][1] == len(judged)


def test_duplicate_and_replayed_reports_get_the_same_answer_and_do_nothing_twice(farm: FarmServer) -> None:
    project = submit(farm)
    client = ProtoClient(farm.url, enrollment_key(farm), "c")
    try:
        leases = client.work(seconds=100)
        assert len(leases) == 20
        batch = [ok(lease, upper(unit_input(lease))) for lease in leases]
        first = client.report(batch[:10])
        assert {a["status"] for a in first} == {"accepted"}
        # The first half again, with the second half: the replay is recognised item by item.
        again = client.report(batch)
        assert again[:10] == [{"instance_id": a["instance_id"], "status": "duplicate", "first": "accepted"}
                              for a in first]
        assert {a["status"] for a in again[10:]} == {"accepted"}
        # A replay that changes its story is still the first answer, and the output stays.
        lie = [{**item, "output": base64.b64encode(b"other").decode()} for item in batch]
        assert {a["status"] for a in client.report(lie)} == {"duplicate"}
        # Someone else's instance, or the wrong attempt: refused.
        other = ProtoClient(farm.url, enrollment_key(farm), "other")
        assert other.report(batch[:1])[0]["status"] == "refused"
        assert client.report([{**batch[0], "attempt": 2}])[0]["status"] == "refused"
        other.close()
    finally:
        client.close()
    wait_done(farm, project)
    assert results_of(farm, project) == expected_output()
    assert_each_unit_assimilated_once(farm, project, 20)
    reports = rows(farm, "select instance_id from farm_attempts where kind = 'report' and project_id = :p", p=project)
    assert len(reports) == 20 and len(set(reports)) == 20


def test_expired_leases_are_reissued_and_late_results_still_count(farm: FarmServer) -> None:
    project = submit(farm, input={"kind": "inline", "text": "a\nb\n"}, split={"by": "lines", "size": 1},
                     lease_s=1, unit_seconds=0.1)
    key = enrollment_key(farm)
    slow, fast = ProtoClient(farm.url, key, "slow"), ProtoClient(farm.url, key, "fast")
    try:
        held = slow.work(seconds=1, slots=2)
        assert len(held) == 2
        # Heartbeats keep a lease alive past its first expiry.
        for _ in range(3):
            time.sleep(0.6)
            assert all("lease_expires" in h for h in slow.heartbeat([lease["instance_id"] for lease in held]))
        assert not fast.work(seconds=1, slots=2)
        time.sleep(2.5)  # no heartbeat: the loop marks both no_reply and makes new instances
        reissued = fast.work(seconds=1, slots=2)
        assert sorted(lease["unit_id"] for lease in reissued) == sorted(lease["unit_id"] for lease in held)
        assert {lease["attempt"] for lease in reissued} == {2}
        assert all(h.get("gone") for h in slow.heartbeat([lease["instance_id"] for lease in held]))
        # The slow client's first result arrives late, while its unit still needs one: it counts.
        assert slow.report([ok(held[0], upper(unit_input(held[0])))])[0]["status"] == "late_accepted"
        # The fast client's copy of that unit is no longer needed; its other one is.
        answers = {a["instance_id"]: a["status"] for a in fast.report(
            [ok(lease, upper(unit_input(lease))) for lease in reissued])}
        by_unit = {lease["unit_id"]: answers[lease["instance_id"]] for lease in reissued}
        assert by_unit == {held[0]["unit_id"]: "not_needed", held[1]["unit_id"]: "accepted"}
        # Late, after its unit is valid: not needed.
        assert slow.report([ok(held[1], upper(unit_input(held[1])))])[0]["status"] == "not_needed"
    finally:
        slow.close()
        fast.close()
    wait_done(farm, project)
    assert results_of(farm, project) == b"A\nB\n"
    expired = rows(farm, "select count(*) from farm_attempts where kind = 'expire' and project_id = :p", p=project)
    assert expired[0][0] == 2
    assert_each_unit_assimilated_once(farm, project, 2)


def test_a_poisoned_unit_ends_in_the_dead_letters_with_its_errors(farm: FarmServer) -> None:
    project = submit(farm, input={"kind": "inline", "text": "good\npoison\n"}, split={"by": "lines", "size": 1},
                     max_errors=3)
    key = enrollment_key(farm)
    clients = [ProtoClient(farm.url, key, f"c{i}") for i in range(4)]

    def compute(lease: dict[str, Any]) -> dict[str, Any]:
        data = unit_input(lease)
        return failed(lease, "ValueError: poison") if b"poison" in data else ok(lease, upper(data))

    try:
        for _ in range(5):
            for c in clients:
                leases = c.work(seconds=10, slots=2)
                if leases:
                    c.report([compute(lease) for lease in leases])
    finally:
        for c in clients:
            c.close()
    view = wait_done(farm, project)
    assert view["units"] == {**view["units"], "assimilated": 1, "failed": 1}
    with farm.owner() as owner:
        dead = owner.get(f"/api/v1/farm/projects/{project}/dead").json()["dead"]
    assert len(dead) == 1 and dead[0]["seq"] == 1 and "3 errors" in dead[0]["reason"]
    assert [e["error"] for e in dead[0]["errors"]] == ["ValueError: poison"] * 3
    assert len({e["client_id"] for e in dead[0]["errors"]}) == 3  # never twice to one client


def test_kill_9_and_restart_mid_project_loses_nothing(farm: FarmServer) -> None:
    project = submit(farm, lease_s=2)
    key = enrollment_key(farm)
    clients = [ProtoClient(farm.url, key, f"c{i}") for i in range(2)]
    try:
        run_round(clients[0], upper, seconds=5)  # reported before the crash
        unreported = clients[1].work(seconds=5)  # leased, not reported, when the server dies
        assert unreported
        farm.kill9()
        with pytest.raises(httpx.TransportError):
            clients[0].work()
        farm.start()
        # The lease taken before the crash is still this client's: its report is accepted.
        answers = clients[1].report([ok(lease, upper(unit_input(lease))) for lease in unreported])
        assert {a["status"] for a in answers} <= {"accepted", "late_accepted"}
        while sum(run_round(c, upper, seconds=5) for c in clients):
            pass
    finally:
        for c in clients:
            c.close()
    wait_done(farm, project)
    assert results_of(farm, project) == expected_output()
    assert_each_unit_assimilated_once(farm, project, 20)


def test_adaptive_replication_trusts_a_clean_record_and_never_a_liar(farm: FarmServer) -> None:
    project = submit(farm, quorum=2, input={"kind": "inline", "text": "".join(f"u{i}\n" for i in range(40))},
                     split={"by": "lines", "size": 1})
    key = enrollment_key(farm)
    a, b, liar = (ProtoClient(farm.url, key, name) for name in ("a", "b", "liar"))
    try:
        # The liar first lies once (caught at quorum 2), then behaves: its record is never clean again.
        for _ in range(200):
            moved = 0
            for client in (a, b, liar):
                compute = (lambda d: b"x\n") if client is liar and not rows(
                    farm, "select 1 from farm_client_records where client_id = :c and invalid_total > 0",
                    c=liar.client_id) else upper
                moved += run_round(client, compute, seconds=1)
            if not moved:
                break
    finally:
        for c in (a, b, liar):
            c.close()
    wait_done(farm, project)
    assert results_of(farm, project) == "".join(f"U{i}\n" for i in range(40)).encode()
    trusted = rows(farm, "select client_id from farm_attempts where kind = 'lease' and detail like 'quorum 1%' "
                         "and project_id = :p", p=project)
    assert trusted, "no unit went to quorum 1"
    assert liar.client_id not in {c for (c,) in trusted}
    # A unit at quorum 1 was decided by one result, of a client with >= 10 consecutive valid before it.
    single = rows(farm, "select count(*) from farm_units where quorum = 1 and project_id = :p", p=project)
    assert single[0][0] == len(trusted)


def test_a_deadline_fails_what_is_left(farm: FarmServer) -> None:
    project = submit(farm, deadline_s=1)
    client = ProtoClient(farm.url, enrollment_key(farm), "c")
    try:
        done = run_round(client, upper, seconds=3)
        time.sleep(2.5)
        assert client.work(seconds=10) == []
    finally:
        client.close()
    view = wait_done(farm, project)
    assert view["units"]["assimilated"] == done and view["units"]["failed"] == 20 - done
    with farm.owner() as owner:
        dead = owner.get(f"/api/v1/farm/projects/{project}/dead").json()["dead"]
    assert {d["reason"] for d in dead} == {"the project's deadline passed"}


def test_large_outputs_are_uploaded_checked_and_capped(farm: FarmServer) -> None:
    project = submit(farm, input={"kind": "inline", "text": "a\nb\nc\n"}, split={"by": "lines", "size": 1},
                     max_output_bytes=100_000)
    client = ProtoClient(farm.url, enrollment_key(farm), "c")
    try:
        leases = client.work(seconds=3, slots=3)
        big, wrong, over = leases
        data = b"z" * 90_000
        digest = hashlib.sha256(data).hexdigest()
        put = client.http.put(f"/instances/{big['instance_id']}/output", content=data,
                              headers={"X-Output-SHA256": digest})
        assert put.status_code == 204, put.text
        bad = client.http.put(f"/instances/{wrong['instance_id']}/output", content=data,
                              headers={"X-Output-SHA256": "0" * 64})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "checksum_mismatch"
        too_big = client.http.put(f"/instances/{over['instance_id']}/output", content=b"z" * 100_001,
                                  headers={"X-Output-SHA256": hashlib.sha256(b"z" * 100_001).hexdigest()})
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "output_too_large"
        answers = client.report([
            {"instance_id": big["instance_id"], "attempt": 1, "status": "ok", "output_sha256": digest},
            {"instance_id": wrong["instance_id"], "attempt": 1, "status": "ok", "output_sha256": digest},
            ok(over, b"z" * 100_001)])
        assert [a["status"] for a in answers] == ["accepted", "refused", "refused"]
        assert "max_output_bytes" in answers[2]["reason"]
        # A refused result leaves the instance leased: a correct report still goes in.
        assert client.report([ok(over, b"C\n")])[0]["status"] == "accepted"
    finally:
        client.close()
    with farm.owner() as owner:
        results = owner.get(f"/api/v1/farm/projects/{project}/results").json()["results"]
    assert [len(base64.b64decode(r["output"])) for r in results if r["seq"] == 0] == [90_000]


def test_clients_at_once_never_share_an_instance_nor_get_a_unit_twice(farm: FarmServer) -> None:
    def loop(client: ProtoClient) -> None:
        while run_round(client, upper, seconds=2):
            pass

    clients_at_once_at_quorum_2(farm, 8, loop)


def clients_at_once_at_quorum_2(farm: FarmServer, count: int, work: Callable[[ProtoClient], None]) -> None:
    """`count` clients in threads each run `work` over a 60-unit project at quorum 2; then every
    unit is done once, with the right results, and no instance nor unit went twice to a client."""
    text_in = "".join(f"w{i}\n" for i in range(60))
    project = submit(farm, quorum=2, input={"kind": "inline", "text": text_in}, split={"by": "lines", "size": 1})
    key = enrollment_key(farm)
    clients = [ProtoClient(farm.url, key, f"t{i}") for i in range(count)]
    failures: list[BaseException] = []

    def loop(client: ProtoClient) -> None:
        try:
            work(client)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=loop, args=(c,)) for c in clients]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for c in clients:
            c.close()
    assert not failures, failures
    wait_done(farm, project)
    assert results_of(farm, project) == text_in.upper().encode()
    assert_each_unit_assimilated_once(farm, project, 60)
    leases = rows(farm, "select instance_id, unit_id, client_id from farm_attempts where kind = 'lease' "
                        "and project_id = :p", p=project)
    assert len({i for i, _, _ in leases}) == len(leases)  # no instance leased twice
    assert len({(u, c) for _, u, c in leases}) == len(leases)  # no unit twice to one client
