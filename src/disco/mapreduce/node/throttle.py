"""Rate limit on a worker's MSG events, as Disco applies it.

Up to 5 messages a second are answered at once; past that each reply is held back 200 ms, which
keeps a worker that waits for its replies at about 5 a second. A worker that still gets more
than 15 into one second (it must be sending without waiting) is failing the job.
"""

from __future__ import annotations

from collections import deque

PER_SECOND = 5
DELAY = 0.2
FATAL_FACTOR = 3


class MsgThrottle:
    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def check(self, now: float) -> float | None:
        """Seconds to hold the reply back, or None when the worker is misbehaving."""
        self._times.append(now)
        while self._times and now - self._times[0] > 1.0:
            self._times.popleft()
        n = len(self._times)
        if n > PER_SECOND * FATAL_FACTOR:
            return None
        return DELAY if n > PER_SECOND else 0.0
