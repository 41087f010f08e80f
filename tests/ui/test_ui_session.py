"""Dashboard sessions (src/disco/cluster/ui/session.py) against a real store: they end when
unused too long, when too old, when their token is gone, and the oldest go first when there
are too many; the store never holds the id itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from disco.cluster.models import Token
from disco.cluster.store import Store
from disco.cluster.ui.session import IDLE_S, MAX_AGE_S, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(f"sqlite:///{tmp_path / 'disco.sqlite'}")
    try:
        yield db
    finally:
        db.close()


def test_a_session_ends_when_unused_too_long_or_too_old(store: Store) -> None:
    clock = Clock()
    sessions = SessionStore(clock)
    token = store.create_token("tenant-a")
    sid = sessions.open("tenant-a", False, token)
    assert token not in sid and sessions.get(sid, store) is not None
    clock.now += IDLE_S - 1
    assert sessions.get(sid, store) is not None  # used: its idle time starts again
    clock.now += IDLE_S - 1
    assert sessions.get(sid, store) is not None
    clock.now += IDLE_S + 1
    assert sessions.get(sid, store) is None  # idle too long
    sid = sessions.open("tenant-a", False, token)
    alive = []
    for _ in range(MAX_AGE_S // (IDLE_S // 2) + 1):
        clock.now += IDLE_S // 2
        alive.append(sessions.get(sid, store) is not None)
    assert all(alive[:-1]) and not alive[-1]  # used all along, but older than MAX_AGE_S at last


def test_a_session_ends_with_its_token(store: Store) -> None:
    sessions = SessionStore()
    token = store.create_token("tenant-a", admin=True)
    sid = sessions.open("tenant-a", True, token)
    found = sessions.get(sid, store)
    assert found is not None and found.admin and found.tenant == "tenant-a"
    assert token not in repr(vars(found))  # only its hash is kept
    with store.session() as s:
        s.execute(delete(Token))
    assert sessions.get(sid, store) is None
    assert sessions.get(None, store) is None and sessions.get("made-up", store) is None


def test_the_oldest_sessions_go_first(store: Store) -> None:
    sessions = SessionStore(max_sessions=3)
    token = store.create_token("tenant-a")
    ids = [sessions.open("tenant-a", False, token) for _ in range(4)]
    assert sessions.get(ids[0], store) is None
    assert all(sessions.get(sid, store) is not None for sid in ids[1:])
    sessions.close(ids[1])
    assert sessions.get(ids[1], store) is None
