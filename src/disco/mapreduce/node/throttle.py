"""Rate limit on a worker's MSG events, counted as Disco counts them.

Each task's MSG events are counted over the last second. Up to 5 are answered at once; past
that each reply is held back 200 ms. A task with 10 or more in one second is failing its
job (Disco's "worker is behaving badly"): a task that prints in a loop gets there within a
second even when it waits for every reply (5 at once, then one each 200 ms).

Tasks of jobs run with ``batch_messages=True`` gather their prints into fewer messages
and never come near the limit (`disco.worker.stdio`).
"""

from __future__ import annotations

from collections import deque

PER_SECOND = 5
DELAY = 0.2
FATAL_COUNT = 2 * PER_SECOND


class MsgThrottle:
    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def check(self, now: float) -> float | None:
        """Seconds to hold the reply back, or None when the worker is misbehaving."""
        self._times.append(now)
        while self._times and now - self._times[0] > 1.0:
            self._times.popleft()
        n = len(self._times)
        if n >= FATAL_COUNT:
            return None
        return DELAY if n > PER_SECOND else 0.0

    @property
    def count(self) -> int:
        """Messages in the last second, as of the last check."""
        return len(self._times)
