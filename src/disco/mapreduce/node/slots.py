"""How many tasks run at once on this node: the master's slot count, which may change."""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class SlotGate:
    """An `async with` gate letting at most `limit` holders in, first come first served."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = max(1, value)
        self._wake()

    async def __aenter__(self) -> None:
        if self.held < self._limit and not self._waiters:
            self.held += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # let in just as it was cancelled: pass the slot on
            elif fut in self._waiters:
                # Not there when a release (_wake) met the cancelled future first and
                # dropped it already.
                self._waiters.remove(fut)
            raise

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._release()

    def _release(self) -> None:
        self.held -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.held < self._limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.held += 1
                fut.set_result(None)
