"""Job events from this node's workers, sent to the master in batches.

One request per event would cost a round trip per MSG; instead events gather for up to 0.2 s.
Reports of tasks' ends carry the events pending at that moment (`take`), so a task's events
precede its end in the job's log.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from disco.mapreduce.node.client import MasterClient, SessionExpired

log = logging.getLogger(__name__)

MAX_PENDING = 10_000  # while the master is away, keep at most this many (the newest)
INTERVAL = 0.2


class EventSender:
    def __init__(self, client: MasterClient) -> None:
        self.client = client
        self._pending: list[list[str]] = []
        self.lock = asyncio.Lock()

    def add(self, job: str, msg: str) -> None:
        self._pending.append([job, msg])
        if len(self._pending) > MAX_PENDING:
            del self._pending[: len(self._pending) - MAX_PENDING]

    def take(self) -> list[list[str]]:
        """Every pending event, for a request that carries them itself (made holding `lock`,
        so that no batch sent earlier can arrive after it)."""
        batch, self._pending = self._pending, []
        return batch

    def put_back(self, batch: list[list[str]]) -> None:
        """Events taken for a request that failed: they go out first next time."""
        self._pending[:0] = batch

    async def flush(self) -> None:
        async with self.lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            try:
                await self.client.events(batch)
            except SessionExpired:
                pass  # the events belong to tasks the master has written off
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("cannot send %d events to the master: %s", len(batch), exc)
                self._pending[:0] = batch

    async def run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            await self.flush()

    def drop(self) -> None:
        self._pending.clear()
