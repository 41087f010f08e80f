"""Job names: `<prefix>@<megaseconds hex>:<seconds hex>:<microseconds hex>`, as Disco's."""

from __future__ import annotations

import time
from collections.abc import Container


def new_jobname(prefix: str, taken: Container[str], now_ns: int | None = None) -> str:
    micros = (time.time_ns() if now_ns is None else now_ns) // 1000
    while True:
        mega, rest = divmod(micros, 10**12)
        secs, usecs = divmod(rest, 10**6)
        name = f"{prefix}@{mega:x}:{secs:x}:{usecs:x}"
        if name not in taken:
            return name
        micros += 1  # two jobs in the same microsecond: take the next one
