"""The host pool's store side on both databases: what `acquire`, `assigned`, `release` and
`clusters` promise the SSH provider (all or none, names and labels, no host given twice even
to racing clusters), removal refused while in use, and keys sealed at rest."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from disco.cluster.hosts import HostPool, HostsUnavailable
from disco.cluster.secrets import SecretBox, ssh_keypair
from disco.cluster.store import Store
from disco.errors import Conflict, InvalidSpec, NotFound
from test_store import postgres_url  # noqa: F401  (the fixture, for the PostgreSQL runs)

KEY = ssh_keypair("pool-test")[1]
HOST_KEY = " ".join(ssh_keypair("host")[0].split()[:2])


@pytest.fixture(params=["sqlite", "postgresql"])
def pool(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HostPool]:
    url = f"sqlite:///{tmp_path / 'disco.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = Store(url)
    try:
        yield HostPool(store, SecretBox(tmp_path))
    finally:
        store.close()


def add_ready(pool: HostPool, name: str, labels: list[str] | None = None, i: int = 0) -> int:
    """A host that passed its check (what `disco hosts add` makes of a healthy host)."""
    row = pool.add(name=name, address=f"127.0.77.{i or len(pool.list()) + 1}", port=22, user="root",
                   private_key=KEY, host_key=HOST_KEY, labels=labels)
    pool.record_check(row.id, True, "", {"facts": {}, "problems": []})
    return row.id


def test_acquire_gives_each_node_its_own_host_and_is_idempotent(pool: HostPool) -> None:
    for name in ("a", "b", "c"):
        add_ready(pool, name)
    first = pool.acquire("c1", ["master", "worker-1"])
    assert set(first) == {"master", "worker-1"}
    assert first["master"].name != first["worker-1"].name
    assert first["master"].private_key == KEY and first["master"].host_key == HOST_KEY
    assert pool.acquire("c1", ["master", "worker-1"]) == first  # the same hosts again
    more = pool.acquire("c1", ["master", "worker-1", "worker-2"])
    assert {h.name for h in more.values()} == {"a", "b", "c"}
    assert pool.assigned("c1") == more
    assert pool.clusters() == {"c1"}
    states = {row.name: (row.state, row.cluster_id, row.node) for row in pool.list()}
    assert all(state == "in_use" and cid == "c1" for state, cid, _ in states.values())


def test_too_few_hosts_takes_none_and_says_how_many(pool: HostPool) -> None:
    add_ready(pool, "a")
    down = pool.add(name="down", address="127.0.77.9", port=22, user="root", private_key=KEY)  # never checked
    assert pool.get(down.id).state == "unreachable"
    with pytest.raises(HostsUnavailable) as caught:
        pool.acquire("c1", ["master", "worker-1"])
    assert "1 free host(s) but 2 are needed" in caught.value.message
    assert "1 unreachable" in caught.value.message
    assert caught.value.details == {"needed": 2, "free": 1}
    assert pool.assigned("c1") == {} and pool.clusters() == set()


def test_names_and_labels_restrict_the_choice(pool: HostPool) -> None:
    add_ready(pool, "plain")
    add_ready(pool, "gpu-1", ["gpu", "fast"])
    add_ready(pool, "gpu-2", ["gpu"])
    assert pool.acquire("c1", ["master"], names=["gpu-2"])["master"].name == "gpu-2"
    assert pool.acquire("c2", ["master"], labels=["gpu", "fast"])["master"].name == "gpu-1"
    with pytest.raises(HostsUnavailable) as caught:
        pool.acquire("c3", ["master"], labels=["gpu"])
    assert "labelled gpu" in caught.value.message and "1 in use" not in caught.value.message
    with pytest.raises(HostsUnavailable) as caught:
        pool.acquire("c3", ["master"], names=["gpu-1", "nowhere"])
    assert "nowhere not in the pool" in caught.value.message
    assert pool.acquire("c3", ["master"], names=["plain"])["master"].name == "plain"


def test_release_gives_hosts_back(pool: HostPool) -> None:
    for name in ("a", "b", "c"):
        add_ready(pool, name)
    pool.acquire("c1", ["master", "worker-1", "worker-2"])
    pool.release("c1", ["worker-2"])
    assert set(pool.assigned("c1")) == {"master", "worker-1"}
    assert [row.name for row in pool.list() if row.state == "free"] == [
        next(row.name for row in pool.list() if row.cluster_id is None)]
    pool.release("c1")
    assert pool.assigned("c1") == {} and pool.clusters() == set()
    assert all(row.state == "free" and row.node is None for row in pool.list())
    pool.release("never-held")  # nothing to do, no error


def test_a_host_in_use_cannot_be_removed(pool: HostPool) -> None:
    host_id = add_ready(pool, "a")
    pool.acquire("c1", ["master"])
    with pytest.raises(Conflict) as caught:
        pool.remove(host_id)
    assert caught.value.code == "host_in_use" and "c1" in caught.value.message
    pool.release("c1")
    pool.remove(host_id)
    with pytest.raises(NotFound):
        pool.remove(host_id)


def test_a_check_of_a_host_in_use_keeps_it_in_use(pool: HostPool) -> None:
    host_id = add_ready(pool, "a")
    pool.acquire("c1", ["master"])
    assert pool.record_check(host_id, False, "a: cannot reach", {}).state == "in_use"
    pool.release("c1")
    assert pool.record_check(host_id, False, "a: cannot reach", {}).state == "unreachable"


def test_duplicates_and_bad_keys_are_refused(pool: HostPool) -> None:
    add_ready(pool, "a", i=1)
    with pytest.raises(Conflict, match="named 'a'"):
        pool.add(name="a", address="127.0.77.50", port=22, user="root", private_key=KEY)
    with pytest.raises(Conflict, match="127.0.77.1:22 is in the pool already, as 'a'"):
        pool.add(name="b", address="127.0.77.1", port=22, user="root", private_key=KEY)
    with pytest.raises(InvalidSpec) as caught:
        pool.add(name="c", address="127.0.77.3", port=22, user="root", private_key="not a key at all")
    assert caught.value.code == "invalid_private_key" and "not a key at all" not in caught.value.message
    with pytest.raises(InvalidSpec, match="host_key"):
        pool.add(name="c", address="127.0.77.3", port=22, user="root", private_key=KEY, host_key="ssh-ed25519 AAAA")


def test_the_private_key_is_sealed_at_rest(pool: HostPool) -> None:
    add_ready(pool, "a")
    with pool.store.engine.connect() as conn:
        stored = conn.execute(text("select private_key_enc from hosts")).scalar()
    body = KEY.splitlines()[1]
    assert body not in stored and "PRIVATE KEY" not in stored
    assert pool.acquire("c1", ["master"])["master"].private_key == KEY
    assert "PRIVATE" not in repr(pool.assigned("c1"))


def test_racing_clusters_never_share_a_host(pool: HostPool) -> None:
    for i in range(4):
        add_ready(pool, f"h{i}")
    clusters = [f"c{i}" for i in range(8)]
    barrier = threading.Barrier(len(clusters))
    won: dict[str, str] = {}
    lost: list[str] = []
    errors: list[BaseException] = []

    def take(cluster_id: str) -> None:
        barrier.wait()
        try:
            won[cluster_id] = pool.acquire(cluster_id, ["master"])["master"].name
        except HostsUnavailable:
            lost.append(cluster_id)
        except BaseException as exc:  # reported below with the others
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(cid,)) for cid in clusters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(won) == 4 and len(lost) == 4
    assert sorted(won.values()) == ["h0", "h1", "h2", "h3"]  # each host to one cluster only
    assert {row.cluster_id for row in pool.list()} == set(won)


def test_one_cluster_racing_itself_gets_one_host_per_node(pool: HostPool) -> None:
    for i in range(4):
        add_ready(pool, f"h{i}")
    barrier = threading.Barrier(4)
    answers: list[dict[str, str]] = []

    def take() -> None:
        barrier.wait()
        answers.append({node: spec.name for node, spec in pool.acquire("c1", ["master", "worker-1"]).items()})

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(answers) == 4 and all(answer == answers[0] for answer in answers)
    assert sum(1 for row in pool.list() if row.state == "in_use") == 2
