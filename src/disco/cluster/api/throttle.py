"""Slows down token guessing: a client address that has sent too many unknown tokens
in the last window gets 429 until its oldest failure leaves the window.

In memory and per process, which is all a single service manager needs; a restart
forgets it. While a client is held back its tokens are not even looked at, a right
one included: otherwise the answers would still tell a guesser when it is right.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from starlette.requests import Request

from disco.errors import DiscoError

# Addresses remembered at once; the quietest are forgotten first, so a flood of sources
# costs bounded memory (each can lose at most its own history).
MAX_CLIENTS = 10_000


class TooManyFailedAuthentications(DiscoError):
    status = 429
    code = "too_many_failed_authentications"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed authentications from this address; try again in {retry_after_s} s",
                         details={"retry_after_s": retry_after_s})
        self.headers = {"Retry-After": str(retry_after_s)}


class FailedAuthThrottle:
    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        # FastAPI runs sync routes in a thread pool: several requests may be here at once.
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Raises TooManyFailedAuthentications while `client` is over the limit."""
        with self._lock:
            failures = self._recent(client)
            if len(failures) < self.limit:
                return
            wait = failures[0] + self.window_s - self._clock()
        raise TooManyFailedAuthentications(max(1, math.ceil(wait)))

    def record_failure(self, client: str) -> None:
        with self._lock:
            failures = self._recent(client)
            failures.append(self._clock())
            self._failures[client] = failures
            self._failures.move_to_end(client)
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)

    def _recent(self, client: str) -> deque[float]:
        # At most `limit` kept: while a client is held back, nothing is recorded for it anyway.
        failures = self._failures.get(client) or deque(maxlen=self.limit)
        horizon = self._clock() - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            self._failures.pop(client, None)
        return failures


def client_address(request: Request) -> str:
    """The address the request came from (the peer's, not a header the client could set)."""
    return request.client.host if request.client else "unknown"
