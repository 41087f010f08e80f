"""The farm's database: engine from a URL (SQLite WAL by default, PostgreSQL), its own Alembic
migrations, short transactions, and the compare-and-set helper every state change goes through."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event, insert, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from disco.database import make_engine
from disco.errors import DiscoError
from disco.taskfarm.durable_files import write_durably
from disco.taskfarm.groupcommit import GroupCommitter
from disco.taskfarm.models import Attempt, now

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
T = TypeVar("T")
UNAVAILABLE_RETRY_S = 5


def upgrade(engine: Engine) -> None:
    """The farm's schema to its newest revision (version table `farm_alembic_version`)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class FarmStore:
    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        # FULL: a committed report survives a power cut too, not only a kill -9.
        self.engine = make_engine(url, sqlite_synchronous="FULL", pool_size=10, max_overflow=20)
        if migrate:
            upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # What becomes of a commit's output files, just before it: written and made durable at
        # once by default; the farm queues them for its loop (output_files.py).
        self.write_outputs: Callable[[list[tuple[Path, bytes]]], None] = _write_now
        event.listen(self._sessions, "before_commit", lambda session: _before_commit(session, self.write_outputs))
        event.listen(self._sessions, "after_rollback", _drop_outputs)
        self._committer: GroupCommitter | None = None
        self._committer_lock = threading.Lock()

    def close(self) -> None:
        if self._committer is not None:
            self._committer.close()
        self.engine.dispose()

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """One transaction: committed on exit, rolled back on any exception. `write` on SQLite
        takes the write lock at the start (BEGIN IMMEDIATE): a transaction that reads first and
        writes later can then never find its snapshot stale and have to start again."""
        with self._sessions.begin() as session:
            if write and self.engine.dialect.name == "sqlite":
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session

    def write(self, work: Callable[[Session], T]) -> T:
        """`work` in a group-committed transaction (groupcommit.py), answered after its commit."""
        return self.write_future(work).result()

    def write_future(self, work: Callable[[Session], T]) -> Future[T]:
        """write()'s answer as a future, done once its transaction has committed."""
        if self._committer is None:
            with self._committer_lock:
                if self._committer is None:
                    self._committer = GroupCommitter(self)
        return self._committer.submit_future(work)


def cas(session: Session | Connection, model: Any, key: Any, leaving: tuple[str, ...] | str, **values: Any) -> bool:
    """Compare-and-set: `UPDATE model SET values WHERE id = key AND state IN leaving` (`model`: a
    mapped class or its Table). True when this call made the change; False when another request
    (or a replay) got there first, in which case nothing changed."""
    table = getattr(model, "__table__", model)
    state = table.c.state == leaving if isinstance(leaving, str) else table.c.state.in_(leaving)
    result = session.execute(update(table).where(table.c.id == key, state).values(**values))
    return result.rowcount == 1  # type: ignore[attr-defined]


def log(session: Session, kind: str, project_id: str, *, unit_id: int | None = None, instance_id: int | None = None,
        client_id: str | None = None, attempt: int | None = None, detail: str = "") -> None:
    # Kept aside and written by one multi-row INSERT just before the commit (_write_log): an ORM
    # object here would be flushed by the next query of the transaction, one INSERT each.
    session.info.setdefault(LOG_KEY, []).append(dict(
        at=now(), kind=kind, project_id=project_id, unit_id=unit_id, instance_id=instance_id,
        client_id=client_id, attempt=attempt, detail=detail))


DEFERRED_KEY = "farm_deferred"  # (statement, parameters) written in order, by flush_deferred


def defer(session: Session, statement: Any, params: dict[str, Any]) -> None:
    """A write nothing in the transaction reads back before flush_deferred (the commit, or a
    reader that calls it first). Each statement's writes go as one executemany, in the order
    they were deferred (which psycopg sends in one round trip, where one execute each would wait
    for each); different statements must touch different rows, as their order is not kept."""
    session.info.setdefault(DEFERRED_KEY, {}).setdefault(statement, []).append(params)


def flush_deferred(session: Session) -> None:
    pending = session.info.pop(DEFERRED_KEY, None)
    if pending:
        conn = session.connection()
        for statement, params in pending.items():
            conn.execute(statement, params)


LOG_KEY = "farm_attempts"
_INSERT_LOG = insert(Attempt.__table__)


def _write_log(session: Session) -> None:
    rows = session.info.pop(LOG_KEY, None)
    if rows:
        session.connection().execute(_INSERT_LOG, rows)  # Core executemany: no ORM bulk machinery


OUTPUTS_KEY = "farm_outputs"  # (final path, bytes) of outputs assimilated in this transaction


def _write_outputs(session: Session, write: Callable[[list[tuple[Path, bytes]]], None]) -> None:
    """Every staged output handed over before the commit that marks its unit assimilated."""
    staged = session.info.get(OUTPUTS_KEY)
    if not staged:
        return
    write(staged)
    session.info.pop(OUTPUTS_KEY)


def _write_now(staged: list[tuple[Path, bytes]]) -> None:
    for parent in {path.parent for path, _ in staged}:
        parent.mkdir(parents=True, exist_ok=True)
    write_durably(staged)


def _before_commit(session: Session, write_outputs: Callable[[list[tuple[Path, bytes]]], None]) -> None:
    try:
        _write_outputs(session, write_outputs)
    except BaseException:
        _drop_outputs(session)
        raise
    flush_deferred(session)
    _write_log(session)


def _drop_outputs(session: Session) -> None:
    # Nothing staged is on disk before the commit begins (durable_files cleans up after itself).
    session.info.pop(OUTPUTS_KEY, None)
    session.info.pop(DEFERRED_KEY, None)


def retrying(store: FarmStore, work: Callable[[Session], T], attempts: int = 5) -> T:
    """`work` in one transaction, run again when the database chose it as a deadlock's or a
    serialization conflict's victim (PostgreSQL) or stayed busy past its timeout (SQLite): the
    transaction changed nothing, so running it again is safe."""
    for attempt in range(attempts):
        try:
            with store.session() as session:
                return work(session)
        except OperationalError as exc:
            retryable = getattr(exc.orig, "sqlstate", None) in ("40P01", "40001") or "locked" in str(exc.orig)
            if not retryable:
                # The database is down or restarting: the client backs off and comes back.
                raise Unavailable("the farm's database is not answering; try again later") from None
            time.sleep(random.uniform(0, 0.05 * 2 ** attempt))
    raise Unavailable("the farm is busy; try again later")


class Unavailable(DiscoError):
    """503 with Retry-After: what a client backs off on (docs/taskfarm.md, the protocol's step 5)."""

    status = 503
    code = "unavailable"
    headers = {"Retry-After": str(UNAVAILABLE_RETRY_S)}
