"""A tenant-scoped look-up compares the tenant in the database query: another tenant's id
costs exactly the work of an id that does not exist (one query, no row loaded), so the
404's timing cannot tell an attacker that the id exists."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from disco.cluster.models import Cluster
from disco.cluster.store import Store
from disco.errors import NotFound


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    instance = Store(f"sqlite:///{tmp_path / 'disco.sqlite'}")
    try:
        yield instance
    finally:
        instance.close()


def statements_of(store: Store, look_up: Any) -> list[str]:
    """The SQL statements the database ran for `look_up()`, which must answer NotFound."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        with pytest.raises(NotFound) as info:
            look_up()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert info.value.status == 404
    return [s for s in seen if s.lstrip().upper().startswith("SELECT")]


def test_other_tenants_id_costs_what_a_random_id_costs(store: Store) -> None:
    owned = store.add_cluster(
        Cluster(id=str(uuid.uuid4()), tenant="alice", name="c", provider="local", spec={"workers": 2},
                state="ready", target="running", workers=2, outputs={}),
        [("master", "master", 0), ("worker-1", "worker", 1), ("worker-2", "worker", 2)])
    assert store.get_cluster(owned.id, tenant="alice").id == owned.id

    other_tenant = statements_of(store, lambda: store.get_cluster(owned.id, tenant="mallory"))
    random_id = statements_of(store, lambda: store.get_cluster(str(uuid.uuid4()), tenant="mallory"))

    # One query each, the same query, with the tenant in its WHERE clause; the cluster's
    # nodes are never loaded for someone else.
    assert other_tenant == random_id
    assert len(other_tenant) == 1
    where = other_tenant[0].split("WHERE", 1)[1]
    assert "clusters.tenant" in where and "clusters.id" in where
