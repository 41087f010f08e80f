"""The store on both databases it supports: embedded SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from sm_fixtures import ServiceManager, wait_state
from disco.cluster.models import Cluster
from disco.cluster.store import Store
from disco.errors import NotFound

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _postgres_reason() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to reach the server means: no PostgreSQL here
        return f"PostgreSQL at 127.0.0.1:5432 not reachable: {type(exc).__name__}"


PG_SKIP = _postgres_reason()


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    if PG_SKIP:
        pytest.skip(PG_SKIP)
    name = f"disco_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'disco.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    instance = Store(url)
    try:
        yield instance
    finally:
        instance.close()


def new_cluster(tenant: str = "t1") -> Cluster:
    return Cluster(id=str(uuid.uuid4()), tenant=tenant, name="c", provider="local", spec={"workers": 1},
                   state="pending", target="running", workers=1, outputs={})


def test_migrations_are_idempotent(store: Store) -> None:
    Store(store.url).close()  # a second start upgrades nothing and fails nothing
    with store.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0002"


def test_tokens_are_stored_hashed(store: Store) -> None:
    token = store.create_token("alice")
    assert store.tenant_for_token(token) == "alice"
    assert store.tenant_for_token(token + "x") is None
    with store.engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("select token_hash from tokens"))]
    assert token not in stored and len(stored[0]) == 64


def test_clusters_nodes_events(store: Store) -> None:
    made = store.add_cluster(new_cluster(), [("master", "master", 0), ("worker-1", "worker", 1)])
    assert made.slot == 1 and [n.name for n in made.nodes] == ["master", "worker-1"]
    store.update_node(made.id, "worker-1", host="127.1.1.2")
    store.add_nodes(made.id, [("worker-2", "worker", 2)])
    store.remove_node(made.id, "master")
    got = store.get_cluster(made.id, tenant="t1")
    assert [(n.name, n.host) for n in got.nodes] == [("worker-1", "127.1.1.2"), ("worker-2", "")]
    with pytest.raises(NotFound):
        store.get_cluster(made.id, tenant="someone-else")
    first = store.add_event(made.id, "provisioning", "nodes made", duration_s=0.5)
    store.add_event(made.id, "ready", "ready")
    assert [e.step for e in store.events(made.id)] == ["provisioning", "ready"]
    assert [e.step for e in store.events(made.id, after_id=first.id)] == ["ready"]
    store.update_cluster(made.id, state="deleted", slot=None)
    assert store.list_clusters("t1") == [] and len(store.list_clusters("t1", include_deleted=True)) == 1


def test_slots_are_unique_under_concurrent_creates(store: Store) -> None:
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: store.add_cluster(new_cluster(), [("master", "master", 0)]), range(16)))
    assert sorted(c.slot for c in made) == list(range(1, 17))
    store.update_cluster(made[3].id, state="deleted", slot=None)
    assert store.add_cluster(new_cluster(), []).slot == made[3].slot  # freed slots are reused


def test_service_manager_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    sm = ServiceManager(tmp_path / "data", database_url=postgres_url).start()
    try:
        with sm.client() as api:
            cid = api.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 1}).json()["id"]
            cluster = wait_state(api, cid, {"ready", "failed"}, 30)
            assert cluster["state"] == "ready", cluster["status_reason"]
            assert httpx.get(cluster["outputs"]["frameworks"]["webecho"]["url"], trust_env=False).status_code == 200
            assert api.delete(f"/api/v1/clusters/{cid}").status_code == 202
            wait_state(api, cid, {"deleted"}, 30)
        assert not (tmp_path / "data" / "disco.sqlite").exists()  # everything went to PostgreSQL
    finally:
        sm.cleanup()
