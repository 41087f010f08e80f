"""Exponential backoff with full jitter: min(cap, base·2ⁿ)·U(0,1), n = failures in a row, and a
server's Retry-After when that is longer. Full jitter spreads a crowd of clients that all lost the
server at once, so a restarted server is not hit by all of them in the same second."""

from __future__ import annotations

import math
import random
import time
from email.utils import parsedate_to_datetime


class Backoff:
    def __init__(self, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self.until = 0.0  # monotonic time before which no request is made
        self.rng = rng or random.Random()

    def delay(self, retry_after: float | None = None) -> float:
        wait = min(self.cap, self.base * 2 ** self.failures) * self.rng.random()
        return max(wait, retry_after or 0.0)

    def failed(self, retry_after: float | None = None) -> float:
        wait = self.delay(retry_after)
        self.failures += 1
        self.until = time.monotonic() + wait
        return wait

    def succeeded(self) -> None:
        self.failures = 0
        self.until = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self.until

    def remaining(self) -> float:
        return max(0.0, self.until - time.monotonic())


def retry_after(header: str | None) -> float | None:
    """Seconds from a Retry-After header, in either of its forms (RFC 9110, 10.2.3): a number of
    seconds, or an HTTP date (a proxy in front of a stopped server often sends the date); a date
    gone by is 0. Anything else is read as absent."""
    if not header:
        return None
    try:
        seconds = float(header)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # not an HTTP date (those are GMT)
        return None
    return max(0.0, when.timestamp() - time.time())
