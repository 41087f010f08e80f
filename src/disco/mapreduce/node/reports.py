"""How tasks ended, sent to the master in batches, each behind the events that precede it.

A report is sent with every other report that is ready at that moment, in one request that
also carries the node's pending events (so a task's events come before its end in the job's
log). While a request is out, new reports gather for the next one; while the node has enough
queued tasks to keep its slots busy, they also gather for BATCH_WINDOW first. A report whose task the
master has written off meanwhile (`dropped()` true) is not sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx

from disco.mapreduce.node.client import MasterClient, SessionExpired
from disco.mapreduce.node.events import EventSender

log = logging.getLogger(__name__)

RETRY_PAUSE = 0.5
BATCH_WINDOW = 0.02

Pending = tuple[dict[str, Any], Callable[[], bool], asyncio.Future[None]]


class ResultSender:
    def __init__(self, client: MasterClient, events: EventSender,
                 busy: Callable[[], bool] = lambda: False) -> None:
        self.client = client
        self.events = events
        self.busy = busy  # enough work waits here: reports may gather for BATCH_WINDOW
        self._pending: list[Pending] = []
        self._ready = asyncio.Event()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def report(self, report: dict[str, Any], dropped: Callable[[], bool]) -> None:
        """Returns once the master has the report (or it no longer wants it)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((report, dropped, fut))
        self._ready.set()
        await fut

    def drop(self) -> None:
        """The session ended: nothing pending will be wanted."""
        pending, self._pending = self._pending, []
        for _report, _dropped, fut in pending:
            if not fut.done():
                fut.set_result(None)

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            if self.busy():
                # Nothing here waits for the master's answer: fewer, larger requests.
                await asyncio.sleep(BATCH_WINDOW)
            self._ready.clear()
            batch, self._pending = self._send_or_settle(self._pending), []
            if not batch:
                continue
            try:
                await self._send(batch)
            except Exception:  # noqa: BLE001 - this loop must outlive any one batch
                # Were it to end, every later task would wait for its report forever,
                # listed as running. These reports are lost: the master, no longer seeing
                # their tasks listed, runs them again.
                log.exception("reporting %d task ends failed", len(batch))
                _settle(batch)

    @staticmethod
    def _send_or_settle(batch: list[Pending]) -> list[Pending]:
        keep = []
        for item in batch:
            if item[2].done():
                continue
            if item[1]():
                item[2].set_result(None)
            else:
                keep.append(item)
        return keep

    async def _send(self, batch: list[Pending]) -> None:
        while batch:
            failed = False
            async with self.events.lock:
                events = self.events.take()
                try:
                    await self.client.results([r for r, _d, _f in batch], events)
                except SessionExpired:
                    # The master has given these tasks to other nodes (a restarted master
                    # never knew this session): settled, not retried. A task that ended just
                    # after its master restarted, before this node's poll heard so, lands here.
                    pass
                except (httpx.HTTPError, ValueError) as exc:
                    log.warning("cannot report %d task ends: %s", len(batch), exc)
                    self.events.put_back(events)
                    failed = True
            if failed:
                await asyncio.sleep(RETRY_PAUSE)
                batch = self._send_or_settle(batch)
                continue
            _settle(batch)
            return


def _settle(batch: list[Pending]) -> None:
    for _r, _d, fut in batch:
        if not fut.done():
            fut.set_result(None)
