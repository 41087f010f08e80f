"""Group commit: one writer thread runs the work of several requests in one transaction and
commits them together, so one fsync (SQLite WAL synchronous=FULL, or PostgreSQL's WAL flush)
carries many requests' leases and reports. Each request is answered only after that commit: a
lease or an `accepted` is as durable as before. The work functions run one after another, in
arrival order, as if each had its transaction; they see each other's changes, as serial
transactions would. If any of them raises, the whole group is rolled back and each is run again
alone, in a transaction of its own (store.retrying), so one request's error never undoes
another's work and never leaks into its answer.

Work that can share statements with its neighbours (the protocol's exchanges: exchange.Exchange)
says so with a `batch_key`: consecutive works with the same key are run by one call of
`run_together`, which answers each of them as if it had run alone, in order. On PostgreSQL every
statement is a round trip the writer waits for: a group of fifty one-unit requests went from some
four hundred statements to about ten (docs/benchmarks.md)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.orm import Session

T = TypeVar("T")
MAX_GROUP = 64  # requests per transaction: bounds the latency one commit adds to the first of them


class GroupCommitter:
    def __init__(self, store: Any) -> None:
        self.store = store
        self._jobs: queue.SimpleQueue[tuple[Callable[[Session], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="farm-group-commit", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[Session], T]) -> T:
        """`work`'s result once the transaction it ran in has committed; its exception otherwise."""
        return self.submit_future(work).result()

    def submit_future(self, work: Callable[[Session], T]) -> Future[T]:
        """The same, as a future: an event loop awaits it (asyncio.wrap_future) without a thread."""
        done: Future[T] = Future()
        self._jobs.put((work, done))
        return done

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                group.append(job)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[tuple[Callable[[Session], Any], Future[Any]]]) -> None:
        results: list[Any] = []
        try:
            with self.store.session(write=True) as session:
                for works in _runs([work for work, _ in group]):
                    if len(works) == 1:
                        results.append(works[0](session))
                    else:
                        results.extend(works[0].run_together(session, works))
        except BaseException:  # noqa: BLE001 - every caller gets its own outcome below
            results = []
        if len(results) == len(group):
            for (_, done), result in zip(group, results):
                done.set_result(result)
            return
        from disco.taskfarm.store import retrying  # the store imports this module

        for work, done in group:
            try:
                done.set_result(retrying(self.store, work))
            except BaseException as exc:  # noqa: BLE001 - handed to the request that owns it
                done.set_exception(exc)


def _runs(works: list[Callable[[Session], Any]]) -> list[list[Any]]:
    """The works in order, consecutive ones with the same `batch_key` together."""
    runs: list[list[Any]] = []
    last = None
    for work in works:
        key = getattr(work, "batch_key", None)
        if runs and key is not None and key is last:
            runs[-1].append(work)
        else:
            runs.append([work])
        last = key
    return runs
