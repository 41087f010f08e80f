"""Exchanges run together (taskfarm/exchange.py, on SQLite and PostgreSQL): several clients'
requests in one group commit share their statements, and each is answered as if it had run
alone, in order. The batches here are made by hand, so that what shares a transaction is known."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from farm_fixtures import db_url  # noqa: F401  (a fixture)
from disco.taskfarm import transitions
from disco.taskfarm.exchange import Exchange
from disco.taskfarm.feeder import Want
from disco.taskfarm.models import Attempt, Client, Unit
from disco.taskfarm.schemas import ProjectSpec
from disco.taskfarm.service import Farm, FarmConfig
from disco.taskfarm.store import FarmStore, retrying

URL = "http://127.0.0.1:1/api/v1/farm/units/{unit_id}/input"


@pytest.fixture
def farm(db_url: str, tmp_path: Path) -> Iterator[Farm]:  # noqa: F811
    store = FarmStore(db_url)
    try:
        yield Farm(store, FarmConfig(output_dir=tmp_path / "out", min_lease_s=1.0))
    finally:
        store.close()


def project(farm: Farm, lines: int, quorum: int) -> str:
    spec = ProjectSpec.model_validate({
        "code": {"kind": "container", "image": "busybox", "command": ["cat"]}, "quorum": quorum, "lease_s": 1,
        "input": {"kind": "inline", "text": "".join(f"line {n}\n" for n in range(lines))},
        "split": {"by": "lines", "size": 1}})
    return farm.create_project("t", spec)[0]


def clients(farm: Farm, count: int) -> list[Client]:
    _, key = farm.create_key("t", "test")
    return [farm.client(farm.enroll(key, f"c{n}", 1, "linux", 1, 0)[1]) for n in range(count)]


def together(farm: Farm, *exchanges: Exchange) -> list[Any]:
    with farm.store.session(write=True) as session:
        return farm.exchanger.run(session, list(exchanges))


def ask(farm: Farm, client: Client, items: list[dict[str, Any]] | None = None) -> Exchange:
    return Exchange(farm.exchanger, client, items or [], Want(client, 1, 1, URL), both=items is not None)


def report(farm: Farm, client: Client, lease: dict[str, Any], output: bytes = b"same") -> Exchange:
    item = {"instance_id": lease["instance_id"], "attempt": lease["attempt"], "status": "ok",
            "output": base64.b64encode(output).decode()}
    return Exchange(farm.exchanger, client, [item], None)


def assimilations(farm: Farm) -> int:
    with farm.store.session() as s:
        return s.scalar(select(func.count()).select_from(Attempt).where(Attempt.kind == "assimilate")) or 0


def test_one_clients_two_asks_in_one_batch_never_get_two_copies_of_a_unit(farm: Farm) -> None:
    project(farm, 1, quorum=2)
    (client,) = clients(farm, 1)
    first, second = together(farm, ask(farm, client), ask(farm, client))
    assert len(first) + len(second) == 1  # the unit's other copy is for another client


def test_two_clients_asking_in_one_batch_share_the_work_out(farm: Farm) -> None:
    project(farm, 3, quorum=2)
    a, b, c = clients(farm, 3)
    leases = together(farm, ask(farm, a), ask(farm, b), ask(farm, c))
    assert [len(mine) for mine in leases] == [1, 1, 1]
    units = [lease["unit_id"] for mine in leases for lease in mine]
    # Oldest first: a and b got the two copies of the first unit, c one of the second.
    assert units[0] == units[1] != units[2]


def test_two_results_for_one_unit_in_one_batch_settle_it_once(farm: Farm) -> None:
    project(farm, 1, quorum=2)
    a, b, c = clients(farm, 3)
    (lease_a,), (lease_b,) = together(farm, ask(farm, a), ask(farm, b))
    answers = together(farm, report(farm, a, lease_a), report(farm, b, lease_b), ask(farm, c))
    assert answers[0] == [{"instance_id": lease_a["instance_id"], "status": "accepted"}]
    assert answers[1] == [{"instance_id": lease_b["instance_id"], "status": "accepted"}]
    assert answers[2] == []  # nothing left to lease
    assert assimilations(farm) == 1
    with farm.store.session() as s:
        assert s.scalar(select(Unit.state)) == "assimilated"


def test_a_result_after_its_unit_settled_earlier_in_the_batch_is_not_needed(farm: Farm) -> None:
    project(farm, 1, quorum=1)
    a, b = clients(farm, 2)
    ((late,),) = together(farm, ask(farm, a))
    retrying(farm.store, lambda s: transitions.expire_leases(s, time.time() + 60))  # a's lease ran out
    ((reissued,),) = together(farm, ask(farm, b))
    assert reissued["unit_id"] == late["unit_id"] and reissued["instance_id"] != late["instance_id"]
    answers = together(farm, report(farm, a, late, b"a's"), report(farm, b, reissued, b"b's"))
    # In order, as if alone: a's late result made the unit valid, so b's came too late.
    assert [answer["status"] for answer in answers[0] + answers[1]] == ["late_accepted", "not_needed"]
    assert assimilations(farm) == 1
    farm.tick()  # writes the queued output file
    assert [path.read_bytes() for path in (farm.config.output_dir).rglob("*.out")] == [b"a's"]


def test_a_replayed_result_in_the_same_batch_is_a_duplicate(farm: Farm) -> None:
    project(farm, 2, quorum=1)
    (a,) = clients(farm, 1)
    ((lease,),) = together(farm, ask(farm, a))
    answers = together(farm, report(farm, a, lease), report(farm, a, lease), ask(farm, a, []))
    assert answers[0] == [{"instance_id": lease["instance_id"], "status": "accepted"}]
    assert answers[1] == [{"instance_id": lease["instance_id"], "status": "duplicate", "first": "accepted"}]
    answers_to_ask, next_leases = answers[2]
    assert answers_to_ask == [] and len(next_leases) == 1 and next_leases[0]["unit_id"] != lease["unit_id"]
