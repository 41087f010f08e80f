"""Time formats of the job event log."""

from __future__ import annotations

import time


def event_timestamp(when: float | None = None) -> str:
    """Event log timestamps, `YYYY/MM/DD HH:MM:SS` in local time, as Disco wrote them."""
    return time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(time.time() if when is None else when))


def duration(seconds: float) -> str:
    """A short human duration for event messages: `0.412 s`, `3 min 12 s`, `2 h 05 min`."""
    if seconds < 60:
        return f"{seconds:.3f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
